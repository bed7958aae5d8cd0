output "services" {
  description = "Function key -> Cloud Run service name."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.service_config[0].service }
}

output "urls" {
  description = "Function key -> deterministic run.app URL (what the environment and the push subscriptions use)."
  value       = { for k, f in var.functions : k => f.url }
}

output "service_uris" {
  description = "Function key -> the URI Cloud Run reports, to compare with `urls`."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.service_config[0].uri }
}

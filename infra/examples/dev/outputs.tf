output "gateway_url" {
  description = "The gateway's URL (noetl --gateway)."
  value       = module.noetl.gateway_url
}

output "callback_url" {
  description = "The callback function's URL."
  value       = module.noetl.callback_url
}

output "payload_bucket" {
  description = "The payload bucket."
  value       = module.noetl.payload_bucket
}

output "topics" {
  description = "Topic key -> name."
  value       = module.noetl.topics
}

output "service_account_emails" {
  description = "Service account key -> email."
  value       = module.noetl.service_account_emails
}

output "gateway_url" {
  description = "The gateway's URL: `noetl --gateway URL` (NOETL_GATEWAY), with a token from `noetl token create --target gcp`."
  value       = module.functions.urls["gateway"]
}

output "callback_url" {
  description = "The callback function's public URL (NOETL_CALLBACK_URL)."
  value       = module.functions.urls["callback"]
}

output "function_urls" {
  description = "Every function's deterministic run.app URL."
  value       = module.functions.urls
}

output "function_service_uris" {
  description = "The URI Cloud Run reports for each function (compare with function_urls)."
  value       = module.functions.service_uris
}

output "payload_bucket" {
  description = "The payload bucket (NOETL_PAYLOAD_URL is gs://<bucket>/payloads)."
  value       = module.storage.payload_bucket
}

output "source_bucket" {
  description = "The bucket holding the function source zips."
  value       = module.storage.source_bucket
}

output "topics" {
  description = "Topic key -> topic name."
  value       = module.pubsub.topic_names
}

output "subscriptions" {
  description = "Subscription name -> subscription id."
  value       = module.pubsub.subscription_ids
}

output "tasks_queue" {
  description = "The Cloud Tasks queue of timers: name and location."
  value       = module.tasks.queue
}

output "service_account_emails" {
  description = "Service account key -> email."
  value       = module.iam.service_account_emails
}

output "secrets" {
  description = "Secret ids whose values must be added with `gcloud secrets versions add` (see README)."
  value       = values(module.secrets.secret_ids)
}

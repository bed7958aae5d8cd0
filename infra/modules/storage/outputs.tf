output "payload_bucket" {
  description = "Name of the payload bucket."
  value       = google_storage_bucket.payloads.name
}

output "source_bucket" {
  description = "Name of the bucket holding the function source."
  value       = google_storage_bucket.source.name
}

output "source_object" {
  description = "Name of the uploaded function source object."
  value       = google_storage_bucket_object.source.name
}

output "secret_ids" {
  description = "Declared secret name -> secret id (the short name Cloud Functions takes)."
  value       = { for k, s in google_secret_manager_secret.this : k => s.secret_id }
}

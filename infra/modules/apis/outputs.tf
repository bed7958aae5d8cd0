output "services" {
  description = "The enabled services."
  value       = [for s in google_project_service.this : s.service]
}

output "database" {
  description = "The database id."
  value       = google_firestore_database.this.name
}

output "index_ids" {
  description = "Ids of the composite indexes."
  value       = [for i in google_firestore_index.this : i.id]
}

resource "google_project_service" "this" {
  for_each = toset(var.services)

  project = var.project_id
  service = each.value

  # Other workloads of the project may use the same APIs: destroying NoETL leaves them on.
  disable_on_destroy         = false
  disable_dependent_services = false
}

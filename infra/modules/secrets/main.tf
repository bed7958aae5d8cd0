# The secrets only: their values are added out of band (`gcloud secrets versions add`),
# so they never reach the Terraform state.
resource "google_secret_manager_secret" "this" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = each.key
  labels    = var.labels
  annotations = {
    purpose = each.value
  }

  replication {
    auto {}
  }
}

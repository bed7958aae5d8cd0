resource "google_storage_bucket" "payloads" {
  #checkov:skip=CKV_GCP_62:Payload reads and writes are the engine's own traffic; where an audit trail is wanted, Cloud Audit Logs (Data Access) are turned on per project.
  #checkov:skip=CKV_GCP_78:Payloads are written once and never overwritten; versioning would only keep deleted payloads past their lifecycle.
  name                        = var.payload_bucket
  project                     = var.project_id
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  lifecycle_rule {
    condition {
      age = var.delete_after_days
    }
    action {
      type = "Delete"
    }
  }
}

# The function source: one object per artifact, named by its content hash, so a new
# `make package` output is a new object and a new function build.
resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Only Cloud Build reads the function source; access logs add nothing.
  name                        = "${var.payload_bucket}-source"
  project                     = var.project_id
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  versioning {
    enabled = true
  }
}

resource "google_storage_bucket_object" "source" {
  name   = "function-${filesha256(var.source_zip)}.zip"
  bucket = google_storage_bucket.source.name
  source = var.source_zip
}

# Waits for the grants the functions read secrets and data with.
resource "terraform_data" "ready" {
  input = var.ready
}

# One function per declared function. Those fed by Pub/Sub have no event_trigger: the
# project's own push subscription (modules/pubsub) pushes to their URL with the pusher's
# OIDC token, with the declared ack deadline, backoff and dead letter.
resource "google_cloudfunctions2_function" "this" {
  #checkov:skip=CKV_GCP_124:Ingress is per function: ALLOW_INTERNAL_ONLY for the private ones, ALLOW_ALL only for gateway and callback, which are public by design and check every caller's token themselves.
  for_each = var.functions

  project     = var.project_id
  location    = var.region
  name        = each.value.service
  description = "NoETL ${each.key} (infra/deployment.json)"
  labels      = var.labels

  build_config {
    runtime     = var.runtime
    entry_point = each.value.entry_point

    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    timeout_seconds                = each.value.timeout
    available_memory               = each.value.memory
    max_instance_count             = var.max_instance_count
    service_account_email          = var.service_accounts[each.value.account]
    all_traffic_on_latest_revision = true
    # Public functions (gateway, callback) check their callers themselves (bearer
    # tokens, callback tokens); the private ones take Pub/Sub pushes and Cloud Tasks
    # timers only, which come from inside the project (internal ingress) with an OIDC
    # token Cloud Run checks (run.invoker, modules/iam).
    ingress_settings      = each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    environment_variables = each.value.environment

    dynamic "secret_environment_variables" {
      for_each = each.value.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = var.secret_ids[secret_environment_variables.value]
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(regex("^https://([^.]+)\\.", each.value.url)[0]) <= 63
      error_message = "The deterministic run.app URL needs SERVICE_NAME-PROJECT_NUMBER within 63 characters; shorten function_name_prefix."
    }
  }

  depends_on = [terraform_data.ready]
}

# Public functions verify their callers themselves: anyone may reach them.
resource "google_cloud_run_v2_service_iam_member" "public" {
  for_each = { for key, f in var.functions : key => f if f.public }

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

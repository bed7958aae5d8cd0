resource "google_pubsub_topic" "this" {
  #checkov:skip=CKV_GCP_83:Messages are command notes (ids and references, payloads live in the bucket); Google-managed encryption is accepted, a CMEK can be added per project.
  for_each = var.topics

  project = var.project_id
  name    = each.value
  labels  = var.labels
}

# Where the dead letters wait for an operator (pull).
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = var.dead_letter_subscription.name
  topic                      = google_pubsub_topic.this[var.dead_letter_subscription.topic].id
  ack_deadline_seconds       = var.dead_letter_subscription.ack_deadline_seconds
  message_retention_duration = var.dead_letter_subscription.message_retention
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

# Each push-fed function owns its subscription: the project's, not an Eventarc trigger's.
resource "google_pubsub_subscription" "push" {
  for_each = var.push

  project              = var.project_id
  name                 = each.value.subscription
  topic                = google_pubsub_topic.this[each.value.topic].id
  ack_deadline_seconds = each.value.ack_deadline_seconds
  labels               = var.labels

  retry_policy {
    minimum_backoff = "${each.value.min_backoff_seconds}s"
    maximum_backoff = "${each.value.max_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.this[var.dead_letter_subscription.topic].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  push_config {
    # functions-framework reads the topic from the path of a raw Pub/Sub push, as the
    # emulator stack pushes it (emulators/stack.py).
    push_endpoint = "${each.value.endpoint}/projects/${var.project_id}/topics/${var.topics[each.value.topic]}"

    oidc_token {
      service_account_email = var.pusher_email
      audience              = each.value.endpoint
    }
  }

  # Never expires for lack of activity.
  expiration_policy {
    ttl = ""
  }
}

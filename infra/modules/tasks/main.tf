resource "google_cloud_tasks_queue" "timers" {
  project  = var.project_id
  name     = var.queue.name
  location = var.queue.location

  retry_config {
    max_attempts = var.queue.max_attempts
    min_backoff  = "${var.queue.min_backoff_seconds}s"
    max_backoff  = "${var.queue.max_backoff_seconds}s"
  }
}

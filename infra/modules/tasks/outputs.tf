output "queue" {
  description = "The timers queue: name and location."
  value = {
    name     = google_cloud_tasks_queue.timers.name
    location = google_cloud_tasks_queue.timers.location
  }
}

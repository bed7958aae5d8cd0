variable "project_id" {
  description = "Project of the queue."
  type        = string
}

variable "queue" {
  description = "The declaration's `tasks_queue`: name, location, max_attempts, min/max backoff in seconds."
  type = object({
    name                = string
    location            = string
    max_attempts        = number
    min_backoff_seconds = number
    max_backoff_seconds = number
  })

  validation {
    condition     = var.queue.min_backoff_seconds <= var.queue.max_backoff_seconds
    error_message = "tasks_queue.min_backoff_seconds must not exceed max_backoff_seconds."
  }
}

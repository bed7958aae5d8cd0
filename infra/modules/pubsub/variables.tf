variable "project_id" {
  description = "Project of the topics and subscriptions."
  type        = string
}

variable "topics" {
  description = "Topic key -> topic name (the declaration's `topics`)."
  type        = map(string)
}

variable "dead_letter_subscription" {
  description = "The declaration's `dead_letter_subscription`: a pull subscription on the dead-letter topic."
  type = object({
    name                 = string
    topic                = string
    ack_deadline_seconds = number
    message_retention    = string
  })
}

variable "push" {
  description = "Function -> its push subscription (the declaration's `push`) and the function URL it pushes to (endpoint, also the OIDC audience)."
  type = map(object({
    topic                 = string
    subscription          = string
    ack_deadline_seconds  = number
    min_backoff_seconds   = number
    max_backoff_seconds   = number
    max_delivery_attempts = number
    endpoint              = string
  }))

  validation {
    condition     = alltrue([for p in var.push : p.max_delivery_attempts >= 5 && p.max_delivery_attempts <= 100])
    error_message = "Pub/Sub allows 5 to 100 delivery attempts before dead-lettering."
  }

  validation {
    condition     = alltrue([for p in var.push : p.ack_deadline_seconds >= 10 && p.ack_deadline_seconds <= 600])
    error_message = "Pub/Sub ack deadlines are 10 to 600 seconds."
  }
}

variable "pusher_email" {
  description = "Service account whose OIDC token the push requests carry."
  type        = string
}

variable "labels" {
  description = "Labels of the topics and subscriptions."
  type        = map(string)
  default     = {}
}

variable "project_id" {
  description = "Project of the service accounts and grants."
  type        = string
}

variable "service_accounts" {
  description = "Service account key -> account id (the declaration's `service_accounts`)."
  type        = map(string)

  validation {
    condition     = alltrue([for id in values(var.service_accounts) : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", id))])
    error_message = "Service account ids are 6-30 lowercase letters, digits or hyphens."
  }
}

variable "grants" {
  description = "The declaration's `iam`: per service account key, its roles on the project, topics, subscriptions, bucket, queue, secrets, other service accounts and functions."
  type        = any
}

variable "service_agents" {
  description = "Service agent key (pubsub, cloudscheduler) -> its email."
  type        = map(string)
}

variable "agent_grants" {
  description = "The declaration's `service_agents`: per agent key, its roles, in the shape of `grants`."
  type        = any
}

variable "topics" {
  description = "Topic key -> topic id."
  type        = map(string)
}

variable "subscriptions" {
  description = "Subscription name -> subscription id."
  type        = map(string)
}

variable "bucket" {
  description = "Name of the payload bucket."
  type        = string
}

variable "queue" {
  description = "The Cloud Tasks queue: name and location."
  type = object({
    name     = string
    location = string
  })
}

variable "secrets" {
  description = "Secret name -> secret id."
  type        = map(string)
}

variable "functions" {
  description = "Function key -> its Cloud Run service name and location (run.invoker grants)."
  type = map(object({
    service  = string
    location = string
  }))
}

variable "project_id" {
  description = "Project whose services are enabled."
  type        = string
}

variable "services" {
  description = "Service names to enable, e.g. run.googleapis.com (the declaration's `apis`)."
  type        = list(string)

  validation {
    condition     = alltrue([for s in var.services : endswith(s, ".googleapis.com")])
    error_message = "Each service must be an API name ending in .googleapis.com."
  }
}

variable "project_id" {
  description = "Project of the buckets."
  type        = string
}

variable "location" {
  description = "Location of the buckets (the functions' region)."
  type        = string
}

variable "payload_bucket" {
  description = "Name of the payload bucket (the declaration's `bucket.name`, filled)."
  type        = string
}

variable "delete_after_days" {
  description = "Age in days at which payload objects are deleted (the declaration's `bucket.delete_after_days`)."
  type        = number

  validation {
    condition     = var.delete_after_days >= 1
    error_message = "delete_after_days must be at least 1."
  }
}

variable "source_zip" {
  description = "Path of the function artifact (dist/function-<digest>.zip)."
  type        = string
}

variable "force_destroy" {
  description = "Let destroy delete buckets that still hold objects."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels of the buckets."
  type        = map(string)
  default     = {}
}

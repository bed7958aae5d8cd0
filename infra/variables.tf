variable "project_id" {
  description = "The Google Cloud project to deploy NoETL into (it must have billing enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the functions. null takes the declaration's `region` (infra/deployment.json)."
  type        = string
  default     = null

  validation {
    condition     = var.region == null || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "source_zip" {
  description = "Path of the function artifact that `make package` writes: dist/function-<digest>.zip."
  type        = string

  validation {
    condition     = endswith(var.source_zip, ".zip")
    error_message = "source_zip must be the .zip that `make package` writes (dist/function-<digest>.zip)."
  }
}

variable "function_name_prefix" {
  description = "Prefixed to each declared function's name to name its Cloud Function and Cloud Run service (worker -> noetl-worker)."
  type        = string
  default     = "noetl-"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.function_name_prefix))
    error_message = "function_name_prefix must start with a lowercase letter and hold only lowercase letters, digits and hyphens."
  }
}

variable "max_instance_count" {
  description = "Most instances of each function at once."
  type        = number
  default     = 100

  validation {
    condition     = var.max_instance_count >= 1
    error_message = "max_instance_count must be at least 1."
  }
}

variable "enable_apis" {
  description = "Enable the declaration's `apis` on the project (turn off when a project factory manages them)."
  type        = bool
  default     = true
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete the payload and source buckets with objects in them."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels set on the functions, buckets, topics, subscriptions and secrets."
  type        = map(string)
  default     = {}
}

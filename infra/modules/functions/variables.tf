variable "project_id" {
  description = "Project of the functions."
  type        = string
}

variable "region" {
  description = "Region of the functions."
  type        = string
}

variable "runtime" {
  description = "Cloud Functions runtime (the declaration's `runtime`)."
  type        = string

  validation {
    condition     = startswith(var.runtime, "python3")
    error_message = "NoETL's functions are Python 3."
  }
}

variable "source_bucket" {
  description = "Bucket holding the function source zip."
  type        = string
}

variable "source_object" {
  description = "Object name of the function source zip."
  type        = string
}

variable "functions" {
  description = "Function key -> its Cloud Run service name, URL, entry point, public flag, timeout, memory, service account key, filled environment, and secret environment (variable -> secret name)."
  type = map(object({
    service            = string
    url                = string
    entry_point        = string
    public             = bool
    timeout            = number
    memory             = string
    account            = string
    environment        = map(string)
    secret_environment = map(string)
  }))

  validation {
    condition     = alltrue([for f in var.functions : f.timeout >= 1 && f.timeout <= 3600])
    error_message = "An HTTP-served gen2 function's timeout is 1 to 3600 seconds."
  }
}

variable "service_accounts" {
  description = "Service account key -> email; each function runs as the account of its own key."
  type        = map(string)
}

variable "secret_ids" {
  description = "Secret name -> secret id."
  type        = map(string)
}

variable "max_instance_count" {
  description = "Most instances of each function at once."
  type        = number
  default     = 100
}

variable "labels" {
  description = "Labels of the functions."
  type        = map(string)
  default     = {}
}

variable "ready" {
  description = "Ids of grants the functions need before they start (secret access, the bucket, topics); only waited on."
  type        = list(string)
  default     = []
}

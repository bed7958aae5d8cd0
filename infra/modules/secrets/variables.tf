variable "project_id" {
  description = "Project of the secrets."
  type        = string
}

variable "secrets" {
  description = "Secret id -> what it holds (the declaration's `secrets`)."
  type        = map(string)
}

variable "labels" {
  description = "Labels of the secrets."
  type        = map(string)
  default     = {}
}

variable "project_id" {
  description = "The Google Cloud project to deploy a development NoETL into."
  type        = string
}

variable "region" {
  description = "Region of the functions; null takes the declaration's region (infra/deployment.json)."
  type        = string
  default     = null
}

variable "source_zip" {
  description = "The artifact `make package` writes: dist/function-<digest>.zip (the digest changes with the content, so it is named on each apply)."
  type        = string
}

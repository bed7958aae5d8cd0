variable "project_id" {
  description = "Project of the database."
  type        = string
}

variable "database" {
  description = "Database id, (default) for the default database."
  type        = string
}

variable "location" {
  description = "Firestore location, e.g. nam5."
  type        = string
}

variable "type" {
  description = "Database type."
  type        = string

  validation {
    condition     = contains(["FIRESTORE_NATIVE", "DATASTORE_MODE"], var.type)
    error_message = "type must be FIRESTORE_NATIVE or DATASTORE_MODE."
  }
}

variable "point_in_time_recovery" {
  description = "Keep 7 days of versions for point-in-time recovery."
  type        = bool
}

variable "delete_protection" {
  description = "Refuse to delete the database."
  type        = bool
}

variable "indexes" {
  description = "Composite indexes, as the `indexes` of firestore.indexes.json (Firestore's own format)."
  type = list(object({
    collectionGroup = string
    queryScope      = string
    fields = list(object({
      fieldPath   = string
      order       = optional(string)
      arrayConfig = optional(string)
    }))
  }))
}

variable "field_overrides" {
  description = "Single-field index exemptions, as the `fieldOverrides` of firestore.indexes.json; an empty `indexes` list turns every single-field index of the field off."
  type = list(object({
    collectionGroup = string
    fieldPath       = string
    indexes = list(object({
      order       = optional(string)
      arrayConfig = optional(string)
      queryScope  = optional(string)
    }))
  }))
  default = []
}

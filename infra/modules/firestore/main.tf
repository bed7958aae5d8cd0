resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = var.database
  location_id                       = var.location
  type                              = var.type
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = var.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.delete_protection ? "ABANDON" : "DELETE"
}

locals {
  # Keyed by collection group and fields, so reordering the file changes nothing.
  indexes = {
    for index in var.indexes :
    join("/", concat([index.collectionGroup, index.queryScope], [for f in index.fields : "${f.fieldPath}:${coalesce(f.order, f.arrayConfig)}"])) => index
  }
  field_overrides = { for o in var.field_overrides : "${o.collectionGroup}/${o.fieldPath}" => o }
}

resource "google_firestore_index" "this" {
  for_each = local.indexes

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = each.value.collectionGroup
  query_scope = each.value.queryScope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = fields.value.order
      array_config = fields.value.arrayConfig
    }
  }
}

resource "google_firestore_field" "this" {
  for_each = local.field_overrides

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.collectionGroup
  field      = each.value.fieldPath

  # An empty index_config turns the field's single-field indexes off.
  index_config {
    dynamic "indexes" {
      for_each = each.value.indexes
      content {
        order        = indexes.value.order
        array_config = indexes.value.arrayConfig
        query_scope  = indexes.value.queryScope
      }
    }
  }
}

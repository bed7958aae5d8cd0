resource "google_service_account" "this" {
  for_each = var.service_accounts

  project      = var.project_id
  account_id   = each.value
  display_name = "NoETL ${each.key}"
}

locals {
  # Who is granted: NoETL's own accounts and Google's service agents.
  principals = merge(
    { for key, _ in var.service_accounts : "account:${key}" => { member = "serviceAccount:${google_service_account.this[key].email}", grants = try(var.grants[key], {}) } },
    { for key, email in var.service_agents : "agent:${key}" => { member = "serviceAccount:${email}", grants = try(var.agent_grants[key], {}) } },
  )

  # The declaration flattened: one entry per (principal, kind, target, role).
  flat = flatten([
    for principal, p in local.principals : concat(
      [for role in try(p.grants.project, []) : { principal = principal, member = p.member, kind = "project", target = "", role = role }],
      [for role in try(p.grants.bucket, []) : { principal = principal, member = p.member, kind = "bucket", target = "", role = role }],
      [for role in try(p.grants.queue, []) : { principal = principal, member = p.member, kind = "queue", target = "", role = role }],
      flatten([
        for kind in ["topics", "subscriptions", "secrets", "service_accounts", "functions"] : [
          for target, roles in try(p.grants[kind], {}) : [
            for role in roles : { principal = principal, member = p.member, kind = kind, target = target, role = role }
          ]
        ]
      ]),
    )
  ])
  by_kind = {
    for kind in ["project", "bucket", "queue", "topics", "subscriptions", "secrets", "service_accounts", "functions"] :
    kind => { for g in local.flat : "${g.principal}/${g.target}/${g.role}" => g if g.kind == kind }
  }
}

resource "google_project_iam_member" "this" {
  for_each = local.by_kind["project"]

  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

resource "google_pubsub_topic_iam_member" "this" {
  for_each = local.by_kind["topics"]

  project = var.project_id
  topic   = var.topics[each.value.target]
  role    = each.value.role
  member  = each.value.member
}

resource "google_pubsub_subscription_iam_member" "this" {
  for_each = local.by_kind["subscriptions"]

  project      = var.project_id
  subscription = var.subscriptions[each.value.target]
  role         = each.value.role
  member       = each.value.member
}

resource "google_storage_bucket_iam_member" "this" {
  for_each = local.by_kind["bucket"]

  bucket = var.bucket
  role   = each.value.role
  member = each.value.member
}

resource "google_cloud_tasks_queue_iam_member" "this" {
  for_each = local.by_kind["queue"]

  project  = var.project_id
  location = var.queue.location
  name     = var.queue.name
  role     = each.value.role
  member   = each.value.member
}

resource "google_secret_manager_secret_iam_member" "this" {
  for_each = local.by_kind["secrets"]

  project   = var.project_id
  secret_id = var.secrets[each.value.target]
  role      = each.value.role
  member    = each.value.member
}

resource "google_service_account_iam_member" "this" {
  # serviceAccountUser / TokenCreator on one named account each (the invoker, the
  # pusher), never project-wide: what minting their OIDC tokens needs.
  for_each = local.by_kind["service_accounts"]

  service_account_id = google_service_account.this[each.value.target].name
  role               = each.value.role
  member             = each.value.member
}

resource "google_cloud_run_v2_service_iam_member" "this" {
  for_each = local.by_kind["functions"]

  project  = var.project_id
  location = var.functions[each.value.target].location
  name     = var.functions[each.value.target].service
  role     = each.value.role
  member   = each.value.member
}

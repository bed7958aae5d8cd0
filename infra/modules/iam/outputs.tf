output "service_account_emails" {
  description = "Service account key -> email."
  value       = { for k, sa in google_service_account.this : k => sa.email }
}

output "runtime_grants" {
  description = "Ids of every grant a function needs at runtime, on everything but the functions themselves (a function waits for them; the run.invoker grants wait for the functions)."
  value = concat(
    [for m in google_project_iam_member.this : m.id],
    [for m in google_pubsub_topic_iam_member.this : m.id],
    [for m in google_pubsub_subscription_iam_member.this : m.id],
    [for m in google_storage_bucket_iam_member.this : m.id],
    [for m in google_cloud_tasks_queue_iam_member.this : m.id],
    [for m in google_secret_manager_secret_iam_member.this : m.id],
    [for m in google_service_account_iam_member.this : m.id],
  )
}

output "topic_ids" {
  description = "Topic key -> topic id (projects/<project>/topics/<name>)."
  value       = { for k, t in google_pubsub_topic.this : k => t.id }
}

output "topic_names" {
  description = "Topic key -> topic name."
  value       = { for k, t in google_pubsub_topic.this : k => t.name }
}

output "subscription_ids" {
  description = "Subscription name -> subscription id, the push subscriptions and the dead-letter one."
  value = merge(
    { for _, s in google_pubsub_subscription.push : s.name => s.id },
    { (google_pubsub_subscription.dead_letter.name) = google_pubsub_subscription.dead_letter.id },
  )
}

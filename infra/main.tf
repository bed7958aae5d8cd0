# NoETL on Google Cloud, deployed from the one declaration (deployment.json) and
# Firestore's index file. Every name, environment value, timeout, memory size, retry
# policy and role comes from those two files; nothing here repeats them.

locals {
  declaration = jsondecode(file("${path.module}/deployment.json"))
  indexes     = jsondecode(file("${path.module}/${local.declaration.firestore.indexes}"))

  region         = coalesce(var.region, local.declaration.region)
  project_number = data.google_project.this.number

  # Each function's Cloud Run service name, and its deterministic URL
  # https://SERVICE_NAME-PROJECT_NUMBER.REGION.run.app (known before the service exists,
  # so every function's environment may hold the others' URLs without a cycle).
  services = { for name, _ in local.declaration.functions : name => "${var.function_name_prefix}${name}" }
  urls     = { for name, service in local.services : name => "https://${service}-${local.project_number}.${local.region}.run.app" }

  accounts = {
    for key, id in local.declaration.service_accounts : key => "${id}@${var.project_id}.iam.gserviceaccount.com"
  }

  # The declaration's placeholders {project}, {bucket}, {url:<function>},
  # {account:<service account>}, {topic:<topic>}, {queue:name}, {queue:location} become
  # template references (${url.worker}) rendered by templatestring() against these
  # values; an unknown placeholder fails the plan, as emulators/deploy.py:fill refuses one.
  placeholder_values = {
    project = var.project_id
    url     = local.urls
    account = local.accounts
    topic   = local.declaration.topics
    queue   = { for field in ["name", "location"] : field => tostring(local.declaration.tasks_queue[field]) }
  }
  bucket_template = replace(local.declaration.bucket.name, "/\\{([a-z_]+)\\}/", "$${$1}")
  payload_bucket  = templatestring(local.bucket_template, local.placeholder_values)
  placeholders    = merge(local.placeholder_values, { bucket = local.payload_bucket })

  shared_env_templates = {
    for key, value in local.declaration.env :
    key => replace(replace(value, "/\\{([a-z_]+):([a-z_]+)\\}/", "$${$1.$2}"), "/\\{([a-z_]+)\\}/", "$${$1}")
  }
  own_env_templates = {
    for name, spec in local.declaration.functions : name => {
      for key, value in try(spec.env, {}) :
      key => replace(replace(value, "/\\{([a-z_]+):([a-z_]+)\\}/", "$${$1.$2}"), "/\\{([a-z_]+)\\}/", "$${$1}")
    }
  }

  # NOETL_LEASE_SECONDS: the worker's timeout plus 30 s (emulators/deploy.py:lease_seconds).
  lease_margin_seconds = 30
  lease_seconds        = local.declaration.functions.worker.timeout_seconds + local.lease_margin_seconds

  shared_env = merge(
    { for key, template in local.shared_env_templates : key => templatestring(template, local.placeholders) },
    { NOETL_LEASE_SECONDS = tostring(local.lease_seconds) },
  )

  functions = {
    for name, spec in local.declaration.functions : name => {
      service     = local.services[name]
      url         = local.urls[name]
      entry_point = spec.entry_point
      public      = spec.public
      timeout     = spec.timeout_seconds
      memory      = spec.memory
      account     = name
      environment = merge(local.shared_env, {
        for key, template in local.own_env_templates[name] : key => templatestring(template, local.placeholders)
      })
      secret_environment = merge(local.declaration.secret_env, try(spec.secret_env, {}))
      push               = try(spec.push, null)
    }
  }

  service_agents = {
    for agent, _ in local.declaration.service_agents :
    agent => "service-${local.project_number}@gcp-sa-${agent}.iam.gserviceaccount.com"
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

module "apis" {
  source = "./modules/apis"

  project_id = var.project_id
  services   = var.enable_apis ? local.declaration.apis : []
}

module "storage" {
  source = "./modules/storage"

  project_id        = var.project_id
  location          = local.region
  payload_bucket    = local.payload_bucket
  delete_after_days = local.declaration.bucket.delete_after_days
  source_zip        = var.source_zip
  force_destroy     = var.force_destroy_buckets
  labels            = var.labels

  depends_on = [module.apis]
}

module "pubsub" {
  source = "./modules/pubsub"

  project_id               = var.project_id
  topics                   = local.declaration.topics
  dead_letter_subscription = local.declaration.dead_letter_subscription
  push = {
    for name, f in local.functions : name => merge(f.push, { endpoint = f.url }) if f.push != null
  }
  pusher_email = module.iam.service_account_emails["pusher"]
  labels       = var.labels

  depends_on = [module.apis]
}

module "firestore" {
  source = "./modules/firestore"

  project_id             = var.project_id
  database               = local.declaration.firestore.database
  location               = local.declaration.firestore.location
  type                   = local.declaration.firestore.type
  point_in_time_recovery = local.declaration.firestore.point_in_time_recovery
  delete_protection      = local.declaration.firestore.delete_protection
  indexes                = local.indexes.indexes
  field_overrides        = try(local.indexes.fieldOverrides, [])

  depends_on = [module.apis]
}

module "secrets" {
  source = "./modules/secrets"

  project_id = var.project_id
  secrets    = local.declaration.secrets
  labels     = var.labels

  depends_on = [module.apis]
}

module "tasks" {
  source = "./modules/tasks"

  project_id = var.project_id
  queue      = local.declaration.tasks_queue

  depends_on = [module.apis]
}

module "iam" {
  source = "./modules/iam"

  project_id       = var.project_id
  service_accounts = local.declaration.service_accounts
  grants           = local.declaration.iam
  service_agents   = local.service_agents
  agent_grants     = local.declaration.service_agents

  topics        = module.pubsub.topic_ids
  subscriptions = module.pubsub.subscription_ids
  bucket        = module.storage.payload_bucket
  queue         = module.tasks.queue
  secrets       = module.secrets.secret_ids
  functions     = { for name, f in local.functions : name => { service = module.functions.services[name], location = local.region } }

  depends_on = [module.apis]
}

module "functions" {
  source = "./modules/functions"

  project_id         = var.project_id
  region             = local.region
  runtime            = local.declaration.runtime
  source_bucket      = module.storage.source_bucket
  source_object      = module.storage.source_object
  functions          = local.functions
  service_accounts   = module.iam.service_account_emails
  secret_ids         = module.secrets.secret_ids
  max_instance_count = var.max_instance_count
  labels             = var.labels
  # The accessor grants on the secrets exist before a revision reads them.
  ready = module.iam.runtime_grants

  depends_on = [module.apis]
}

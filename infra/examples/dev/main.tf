# A development deployment: the root module with its defaults, the region of the
# declaration, and buckets that destroy cleanly.

locals {
  declaration = jsondecode(file("${path.module}/../../deployment.json"))
  region      = coalesce(var.region, local.declaration.region)
}

provider "google" {
  project = var.project_id
  region  = local.region
}

module "noetl" {
  source = "../.."

  project_id            = var.project_id
  region                = local.region
  source_zip            = var.source_zip
  force_destroy_buckets = true
  labels = {
    app = "noetl"
    env = "dev"
  }
}

# A private, encrypted, versioned bucket for one skewless deployment, with access logs in a central log bucket.

provider "alicloud" {
  region = "cn-hangzhou"
}

module "data" {
  source = "../.."

  bucket_name = "example-skewless-data"
  log_bucket  = "example-central-logs"
  tags        = { team = "ml-platform" }
}

output "bucket_name" {
  description = "Name of the data bucket."
  value       = module.data.bucket_name
}

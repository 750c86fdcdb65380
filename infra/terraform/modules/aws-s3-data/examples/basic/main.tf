# A private, encrypted, versioned bucket for one skewless deployment.

provider "aws" {
  region = "us-east-1"
}

module "data" {
  source = "../.."

  bucket_name = "example-skewless-data"
  tags        = { team = "ml-platform" }
}

output "bucket_name" {
  description = "Name of the data bucket."
  value       = module.data.bucket_name
}

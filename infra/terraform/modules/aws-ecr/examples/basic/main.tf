# The serving image repository: immutable tags, scanned on push.

provider "aws" {
  region = "us-east-1"
}

module "ecr" {
  source = "../.."

  name = "example/skewless-serving"
}

output "repository_url" {
  description = "Where to push the serving image."
  value       = module.ecr.repository_url
}

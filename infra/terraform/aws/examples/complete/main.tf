# The stack in a real account. Credentials come from the standard chain (AWS_PROFILE, SSO, instance role, ...).
#   export TF_VAR_redis_auth_token=... SKEWLESS_REDIS_PASSWORD=$TF_VAR_redis_auth_token
#   terraform init && terraform apply -var vpc_id=vpc-... -var 'subnet_ids=["subnet-a","subnet-b"]'
#   skewless config from-terraform infra/terraform/aws/examples/complete --repo my_repo

provider "aws" {
  region = var.region
}

variable "region" {
  description = "Region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "vpc_id" {
  description = "VPC for Redis (and the SageMaker endpoint)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of vpc_id in two or more AZs."
  type        = list(string)
}

variable "redis_auth_token" {
  description = "Redis AUTH token; clients read the same value from SKEWLESS_REDIS_PASSWORD."
  type        = string
  sensitive   = true
}

module "skewless" {
  source = "../.."

  name                      = "skewless-prod"
  project                   = "credit_scoring"
  vpc_id                    = var.vpc_id
  subnet_ids                = var.subnet_ids
  redis_allowed_cidr_blocks = ["10.0.0.0/8"]
  redis_auth_token          = var.redis_auth_token
  tags                      = { team = "ml-platform" }
}

output "skewless_config" {
  description = "What `skewless config from-terraform` reads."
  value       = module.skewless.skewless_config
}

output "ecr_repository_url" {
  description = "Where to push the serving image."
  value       = module.skewless.ecr_repository_url
}

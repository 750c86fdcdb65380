# The stack in a real account, with the PAI-EAS service on. Credentials come from the standard chain
# (ALICLOUD_ACCESS_KEY/ALICLOUD_SECRET_KEY, a profile, an ECS RAM role, ...).
#   export TF_VAR_tair_password=... SKEWLESS_TAIR_PASSWORD=$TF_VAR_tair_password
#   terraform init && terraform apply -var cr_instance_id=cri-... -var serving_image=<repository_vpc_url>:1.0.0
#   skewless config from-terraform infra/terraform/alibaba/examples/complete --repo my_repo

provider "alicloud" {
  region = var.region
}

variable "region" {
  description = "Region to deploy to."
  type        = string
  default     = "cn-hangzhou"
}

variable "tair_password" {
  description = "Tair password; clients read the same value from SKEWLESS_TAIR_PASSWORD."
  type        = string
  sensitive   = true
}

variable "cr_instance_id" {
  description = "The account's Container Registry EE instance."
  type        = string
}

variable "serving_image" {
  description = "Serving image pushed to cr_repository_url, named through the VPC endpoint (cr_repository_vpc_url:<tag>)."
  type        = string
}

module "skewless" {
  source = "../.."

  name                     = "skewless-prod"
  project                  = "credit_scoring"
  tair_password            = var.tair_password
  tair_allowed_cidr_blocks = ["10.8.0.0/16"]
  cr_instance_id           = var.cr_instance_id
  enable_eas_service       = true
  serving_image            = var.serving_image
  eas_environment          = { SKEWLESS_MODEL = "credit", SKEWLESS_MODEL_STAGE = "production" }
  tags                     = { team = "ml-platform" }
}

output "skewless_config" {
  description = "What `skewless config from-terraform` reads."
  value       = module.skewless.skewless_config
}

output "cr_repository_url" {
  description = "Where to push the serving image."
  value       = module.skewless.cr_repository_url
}

output "eas_service_name" {
  description = "The PAI-EAS serving service."
  value       = module.skewless.eas_service_name
}

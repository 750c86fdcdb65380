# Redis with TLS and an AUTH token in existing private subnets. Pass the token as TF_VAR_redis_auth_token.

provider "aws" {
  region = "us-east-1"
}

variable "vpc_id" {
  description = "VPC of the cache."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the cache."
  type        = list(string)
}

variable "redis_auth_token" {
  description = "Redis AUTH token (16-128 characters)."
  type        = string
  sensitive   = true
}

module "redis" {
  source = "../.."

  name                = "example-skewless-redis"
  vpc_id              = var.vpc_id
  subnet_ids          = var.subnet_ids
  allowed_cidr_blocks = ["10.0.0.0/16"]
  auth_token          = var.redis_auth_token
}

output "url" {
  description = "rediss:// URL of the primary endpoint."
  value       = module.redis.url
}

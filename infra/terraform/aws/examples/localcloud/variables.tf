variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "skewless-local"
}

variable "s3_endpoint" {
  description = "S3 emulator (LocalStack) URL."
  type        = string
  default     = "http://127.0.0.1:4566"
}

variable "moto_endpoint" {
  description = "moto server URL (IAM, STS, EC2, ECR, Glue, SageMaker, ElastiCache)."
  type        = string
  default     = "http://127.0.0.1:5055"
}

variable "elasticache_endpoint" {
  description = "ElastiCache emulator URL. Null uses moto_endpoint; CI points it at a moto with the fixes described in infra/terraform/README.md."
  type        = string
  default     = null
}

variable "local_redis_url" {
  description = "The local cloud's real Redis. The emulated ElastiCache endpoint has no Redis behind it, so skewless_config points here instead."
  type        = string
  default     = "redis://127.0.0.1:6390/0"
}

variable "redis_auth_token" {
  description = "AUTH token given to the emulated ElastiCache group (a dummy: nothing real is protected by it)."
  type        = string
  default     = "local-dummy-auth-token"
  sensitive   = true
}

variable "enable_sagemaker_endpoint" {
  description = "Also create the SageMaker model and endpoint (moto reports it InService at once; nothing runs)."
  type        = bool
  default     = true
}

variable "enable_emr_serverless" {
  description = "Also create the EMR Serverless job runtime role (the application itself needs aws provider >= 4, see infra/terraform/README.md)."
  type        = bool
  default     = true
}

variable "skewless_permissions" {
  description = "Per registry principal, the cloud policies `skewless permissions export` generates (skewless_permissions.auto.tfvars.json in this folder), passed to the stack: its Redis user and ACL access string, and its IAM policy JSON with the role or user it attaches to. Empty: no per-principal policy."
  type = map(object({
    redis_user          = optional(string)
    redis_access_string = optional(string)
    aws_attach_kind     = optional(string)
    aws_attach_name     = optional(string)
    aws_policy_json     = optional(string)
    alibaba_attach_kind = optional(string)
    alibaba_attach_name = optional(string)
    alibaba_policy_json = optional(string)
  }))
  default = {}
}

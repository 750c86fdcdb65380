variable "name" {
  description = "Prefix of every resource name (lowercase letters, digits, hyphens; starts with a letter)."
  type        = string
  default     = "skewless"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name))
    error_message = "name must be 2-24 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "project" {
  description = "skewless project name written to skewless.yaml (registry and online keys are namespaced by it)."
  type        = string
  default     = "skewless"
}

variable "bucket_name" {
  description = "Name of the data bucket. Null derives <name>-data-<account id>-<region>."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC for the Redis replication group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (of vpc_id, two or more AZs recommended) for the Redis replication group."
  type        = list(string)
}

variable "redis_allowed_cidr_blocks" {
  description = "CIDR blocks allowed to reach Redis (e.g. the subnets of serving and materialization jobs)."
  type        = list(string)
  default     = []
}

variable "redis_allowed_security_group_ids" {
  description = "Security groups allowed to reach Redis."
  type        = list(string)
  default     = []
}

variable "redis_auth_token" {
  description = "Redis AUTH token (16-128 characters). Pass it as TF_VAR_redis_auth_token; clients read the same value from SKEWLESS_REDIS_PASSWORD."
  type        = string
  sensitive   = true
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes (primary + replicas); two or more enable automatic failover and Multi-AZ."
  type        = number
  default     = 2
}

variable "redis_engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the bucket, Redis, ECR and the SageMaker volume. Null uses AWS-managed encryption."
  type        = string
  default     = null
}

variable "enable_sagemaker_endpoint" {
  description = "Create a SageMaker model and real-time endpoint for serving_image."
  type        = bool
  default     = false
}

variable "serving_image" {
  description = "Serving image URI (e.g. <ecr_repository_url>:<tag>); required when enable_sagemaker_endpoint is true."
  type        = string
  default     = null
}

variable "model_data_url" {
  description = "s3:// URL of the model archive for the endpoint (under the bucket's models/ prefix). Null when the image needs none."
  type        = string
  default     = null
}

variable "sagemaker_instance_type" {
  description = "Instance type of the SageMaker endpoint."
  type        = string
  default     = "ml.m5.large"
}

variable "enable_emr_serverless" {
  description = "Create an EMR Serverless application (and its job runtime role) for Spark jobs; skewless_config then names engine spark and the submission settings."
  type        = bool
  default     = false
}

variable "emr_release_label" {
  description = "EMR release of the EMR Serverless application (its Spark version)."
  type        = string
  default     = "emr-7.9.0"
}

variable "emr_max_cpu" {
  description = "Most vCPUs the EMR Serverless application may use at once (caps the cost of a run)."
  type        = string
  default     = "64 vCPU"
}

variable "emr_max_memory" {
  description = "Most memory the EMR Serverless application may use at once."
  type        = string
  default     = "256 GB"
}

variable "emr_image_uri" {
  description = "Custom EMR Serverless image with skewless installed. Null: EMR's image plus a packed virtualenv (see docs/emr-serverless.md)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a non-empty bucket. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "skewless_permissions" {
  description = "Per registry principal, the cloud policies `skewless permissions export` generates (write it to skewless_permissions.auto.tfvars.json beside the root module): its Redis user and ACL access string, and its IAM policy JSON with the role or user it attaches to. Empty: no per-principal policy."
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

  validation {
    condition     = alltrue([for p in values(var.skewless_permissions) : p.aws_attach_kind == null ? true : contains(["role", "user"], p.aws_attach_kind)])
    error_message = "aws_attach_kind must be role or user."
  }
}

variable "redis_user_passwords" {
  description = "Password (16 to 128 characters) of each principal's ElastiCache user, by principal name; every principal with a Redis access string needs one."
  type        = map(string)
  default     = {}
  sensitive   = true
}

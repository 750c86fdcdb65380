variable "name" {
  description = "Replication group id and name prefix of the subnet and security groups (lowercase, starts with a letter, max 40 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "name must be 2-40 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC the cache and its security group live in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (in the VPC) for the cache subnet group; use two or more AZs for failover."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must name at least one subnet."
  }
}

variable "allowed_cidr_blocks" {
  description = "CIDR blocks allowed to reach Redis on its port (e.g. the serving subnets); never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for c in var.allowed_cidr_blocks : can(cidrhost(c, 0)) && !startswith(c, "0.0.0.0") && !endswith(c, "/0")
    ])
    error_message = "allowed_cidr_blocks must be CIDR blocks, and none may be 0.0.0.0/0 (or any /0): Redis must not be open to the internet."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to reach Redis on its port (e.g. the serving tasks' group)."
  type        = list(string)
  default     = []
}

variable "auth_token" {
  description = "Redis AUTH token (16-128 printable characters, no spaces, '/', '\"' or '@'). Clients read it from SKEWLESS_REDIS_PASSWORD."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.auth_token) >= 16 && length(var.auth_token) <= 128 && !can(regex("[\\s/\"@]", var.auth_token))
    error_message = "auth_token must be 16-128 characters without whitespace, '/', '\"' or '@'."
  }
}

variable "node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "num_cache_clusters" {
  description = "Nodes in the replication group (1 primary + replicas). Two or more enable automatic failover and Multi-AZ."
  type        = number
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 1 && var.num_cache_clusters <= 6
    error_message = "num_cache_clusters must be between 1 and 6."
  }
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "port" {
  description = "Port Redis listens on."
  type        = number
  default     = 6379
}

variable "snapshot_retention_limit" {
  description = "Days of automatic snapshots to keep (0 disables backups)."
  type        = number
  default     = 3
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for at-rest encryption. Null uses the AWS-managed key."
  type        = string
  default     = null
}

variable "apply_immediately" {
  description = "Apply modifications immediately instead of in the next maintenance window."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

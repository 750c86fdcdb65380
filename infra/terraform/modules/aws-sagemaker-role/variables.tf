variable "name" {
  description = "Name of the SageMaker execution role (also the prefix of its inline policy)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.name))
    error_message = "name must be a valid IAM role name (1-64 characters)."
  }
}

variable "bucket_arn" {
  description = "ARN of the skewless data bucket."
  type        = string
}

variable "read_prefixes" {
  description = "Key prefixes (ending in '/') the role may list and read, e.g. [\"registry/\", \"offline/\", \"models/\"]."
  type        = list(string)

  validation {
    condition     = alltrue([for p in var.read_prefixes : can(regex("^[^*]+/$", p))])
    error_message = "read_prefixes must be non-empty key prefixes ending in '/' and without '*'."
  }
}

variable "write_prefixes" {
  description = "Key prefixes (ending in '/') the role may also write and delete under, e.g. [\"models/\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.write_prefixes : can(regex("^[^*]+/$", p))])
    error_message = "write_prefixes must be non-empty key prefixes ending in '/' and without '*'."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository the role may pull the serving image from."
  type        = string
}

variable "glue_database_name" {
  description = "Glue database whose tables the role may read. Null grants no Glue access."
  type        = string
  default     = null
}

variable "kms_key_arns" {
  description = "Customer-managed KMS keys the role may decrypt and generate data keys with (bucket, images)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

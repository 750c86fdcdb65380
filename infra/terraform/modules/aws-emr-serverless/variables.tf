variable "name" {
  description = "Name of the EMR Serverless application (also the prefix of its execution role, <name>-execution)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,53}$", var.name))
    error_message = "name must be 1-54 letters, digits, '_', '.' or '-' (the role name adds '-execution')."
  }
}

variable "bucket_name" {
  description = "The skewless data bucket the jobs read and write."
  type        = string
}

variable "read_prefixes" {
  description = "Key prefixes (ending in '/') job runs may list and read, e.g. [\"registry/\", \"offline/\", \"jobs/\"]."
  type        = list(string)

  validation {
    condition     = alltrue([for p in var.read_prefixes : can(regex("^[^*]+/$", p))])
    error_message = "read_prefixes must be non-empty key prefixes ending in '/' and without '*'."
  }
}

variable "write_prefixes" {
  description = "Key prefixes (ending in '/') job runs may also write under (training sets), e.g. [\"training-sets/\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.write_prefixes : can(regex("^[^*]+/$", p))])
    error_message = "write_prefixes must be non-empty key prefixes ending in '/' and without '*'."
  }
}

variable "log_prefix" {
  description = "Key prefix (ending in '/') of the job logs; the role may write there and log_uri points at it."
  type        = string
  default     = "emr-logs/"

  validation {
    condition     = can(regex("^[^*]+/$", var.log_prefix))
    error_message = "log_prefix must be a non-empty key prefix ending in '/' and without '*'."
  }
}

variable "release_label" {
  description = "EMR release of the application (its Spark version), e.g. emr-7.9.0."
  type        = string
  default     = "emr-7.9.0"

  validation {
    condition     = can(regex("^emr-[0-9]+\\.[0-9]+\\.[0-9]+$", var.release_label))
    error_message = "release_label must look like emr-7.9.0."
  }
}

variable "architecture" {
  description = "CPU architecture of the workers: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.architecture)
    error_message = "architecture must be X86_64 or ARM64."
  }
}

variable "max_cpu" {
  description = "Most vCPUs the application's workers may use at once, e.g. \"64 vCPU\" (caps the cost of a run)."
  type        = string
  default     = "64 vCPU"
}

variable "max_memory" {
  description = "Most memory the application's workers may use at once, e.g. \"256 GB\"."
  type        = string
  default     = "256 GB"
}

variable "max_disk" {
  description = "Most disk the application's workers may use at once, e.g. \"1000 GB\"."
  type        = string
  default     = "1000 GB"
}

variable "idle_timeout_minutes" {
  description = "Minutes without a job after which the application stops (and stops billing)."
  type        = number
  default     = 15
}

variable "subnet_ids" {
  description = "Private subnets for the workers (needed to reach Redis for materialization). Empty: no VPC access."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the workers (with subnet_ids)."
  type        = list(string)
  default     = []
}

variable "image_uri" {
  description = "Custom EMR Serverless image with skewless installed (ECR URI). Null: EMR's image plus a packed venv."
  type        = string
  default     = null
}

variable "kms_key_arns" {
  description = "Customer-managed KMS keys the role may decrypt and generate data keys with (the bucket's)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

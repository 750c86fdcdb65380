variable "bucket_name" {
  description = "Name of the bucket holding the registry, the offline histories and model artifacts (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits and hyphens, not starting or ending with a hyphen."
  }
}

variable "kms_key_id" {
  description = "Id of a customer-managed KMS key for default encryption (SSE-KMS). Null keeps OSS-managed AES-256."
  type        = string
  default     = null
}

variable "redundancy_type" {
  description = "LRS (one zone) or ZRS (three zones of the region; not offered in every region)."
  type        = string
  default     = "ZRS"

  validation {
    condition     = contains(["LRS", "ZRS"], var.redundancy_type)
    error_message = "redundancy_type must be LRS or ZRS."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which noncurrent object versions are deleted (versioning stays on; this bounds its cost)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "log_bucket" {
  description = "Bucket (same region) receiving this bucket's access logs. Null turns access logging off."
  type        = string
  default     = null
}

variable "log_prefix" {
  description = "Key prefix of the access logs in log_bucket (the bucket name and '/' are appended)."
  type        = string
  default     = "oss-access-logs/"

  validation {
    condition     = can(regex("^[^*]*/$", var.log_prefix))
    error_message = "log_prefix must end in '/' and hold no '*'."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete a non-empty bucket. Keep false for real data."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to the bucket (OSS allows at most 10)."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(var.tags) <= 10
    error_message = "OSS buckets take at most 10 tags."
  }
}

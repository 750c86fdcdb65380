variable "project_name" {
  description = "MaxCompute project name: 3-28 letters, digits and underscores, starting with a letter; unique across Alibaba Cloud."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]{2,27}$", var.project_name))
    error_message = "project_name must be 3-28 letters, digits or underscores, starting with a letter."
  }
}

variable "comment" {
  description = "Description of the project."
  type        = string
  default     = "skewless offline feature histories"
}

variable "default_quota" {
  description = "Nickname of the compute quota jobs of this project use by default. Null keeps the account's default (pay-as-you-go) quota."
  type        = string
  default     = null
}

variable "encryption_algorithm" {
  description = "Storage encryption algorithm (AES256, AESCTR or RC4). Encryption is always on and cannot be turned off later."
  type        = string
  default     = "AESCTR"

  validation {
    condition     = contains(["AES256", "AESCTR", "RC4"], var.encryption_algorithm)
    error_message = "encryption_algorithm must be AES256, AESCTR or RC4."
  }
}

variable "kms_key_id" {
  description = "Id of a customer-managed KMS key (BYOK) for storage encryption. Null uses the MaxCompute default key."
  type        = string
  default     = null
}

variable "backup_retention_days" {
  description = "Days of data backups kept for restore (0-30)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 0 && var.backup_retention_days <= 30
    error_message = "backup_retention_days must be between 0 and 30."
  }
}

variable "allowed_vpc_ips" {
  description = "VPC addresses/CIDRs allowed to reach the project. With both lists empty no IP whitelist is set."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.allowed_vpc_ips, "0.0.0.0/0")
    error_message = "allowed_vpc_ips must not contain 0.0.0.0/0."
  }
}

variable "allowed_public_ips" {
  description = "Public (classic network) addresses/CIDRs allowed to reach the project, e.g. an office egress range."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.allowed_public_ips, "0.0.0.0/0")
    error_message = "allowed_public_ips must not contain 0.0.0.0/0."
  }
}

variable "reader_members" {
  description = "MaxCompute principals given the skewless_reader role, e.g. RAM$<account login>:role/<ram role>."
  type        = list(string)
  default     = []
}

variable "writer_members" {
  description = "MaxCompute principals given the skewless_writer role (ingest and materialization jobs)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags applied to the project."
  type        = map(string)
  default     = {}
}

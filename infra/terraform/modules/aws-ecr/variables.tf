variable "name" {
  description = "Repository name for the skewless serving image."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.name))
    error_message = "name must be a valid ECR repository name (lowercase, digits, '.', '_', '-', '/')."
  }
}

variable "image_tag_mutability" {
  description = "IMMUTABLE (a tag always names the same image; recommended) or MUTABLE."
  type        = string
  default     = "IMMUTABLE"

  validation {
    condition     = contains(["IMMUTABLE", "MUTABLE"], var.image_tag_mutability)
    error_message = "image_tag_mutability must be IMMUTABLE or MUTABLE."
  }
}

variable "scan_on_push" {
  description = "Scan every pushed image for vulnerabilities."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key to encrypt images. Null uses AES-256 (ECR's default encryption)."
  type        = string
  default     = null
}

variable "keep_untagged_days" {
  description = "Days after which untagged images are expired by the lifecycle policy."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

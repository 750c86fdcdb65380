variable "name" {
  description = "Name of the SageMaker model, endpoint configuration and endpoint."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", var.name))
    error_message = "name must be 1-63 letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "image" {
  description = "Serving image URI (e.g. <repository_url>:<tag>), started as `<image> serve` on port 8080."
  type        = string
  nullable    = false
}

variable "execution_role_arn" {
  description = "ARN of the role SageMaker assumes to pull the image and read the model."
  type        = string
}

variable "model_data_url" {
  description = "s3:// URL of the model archive (model.tar.gz), unpacked at /opt/ml/model. Null when the image needs none."
  type        = string
  default     = null
}

variable "environment" {
  description = "Environment variables of the serving container (never secrets: they are visible in the API)."
  type        = map(string)
  default     = {}
}

variable "instance_type" {
  description = "Instance type of the production variant."
  type        = string
  default     = "ml.m5.large"
}

variable "initial_instance_count" {
  description = "Instances of the production variant."
  type        = number
  default     = 1
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for the endpoint's storage volume. Null uses the AWS-managed key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

variable "subnet_ids" {
  description = "Subnets for the model's VPC access (it reads online features from Redis there). Empty: no VPC access."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the model's network interfaces (used with subnet_ids)."
  type        = list(string)
  default     = []
}

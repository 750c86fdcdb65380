variable "instance_id" {
  description = "Id of an existing Container Registry EE instance (cri-...). Null creates a new (subscription) instance."
  type        = string
  default     = null

  validation {
    condition     = var.instance_id == null || can(regex("^cri-[a-z0-9]+$", var.instance_id))
    error_message = "instance_id must look like cri-xxxxxxxx."
  }
}

variable "instance_name" {
  description = "Name of the new EE instance (used only when instance_id is null)."
  type        = string
  default     = "skewless"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,28}[a-z0-9]$", var.instance_name))
    error_message = "instance_name must be 3-30 lowercase letters, digits or hyphens."
  }
}

variable "instance_type" {
  description = "Edition of a new EE instance: Basic, Standard or Advanced."
  type        = string
  default     = "Basic"

  validation {
    condition     = contains(["Basic", "Standard", "Advanced"], var.instance_type)
    error_message = "instance_type must be Basic, Standard or Advanced."
  }
}

variable "instance_period" {
  description = "Months a new EE instance is bought for (1-9, or a multiple of 12)."
  type        = number
  default     = 1

  validation {
    condition     = (var.instance_period >= 1 && var.instance_period <= 9) || (var.instance_period >= 12 && var.instance_period % 12 == 0)
    error_message = "instance_period must be 1-9 or a multiple of 12."
  }
}

variable "namespace" {
  description = "Namespace of the serving repository (2-30 lowercase letters, digits, '_', '-', '.')."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9_.-]{0,28}[a-z0-9])$", var.namespace))
    error_message = "namespace must be 2-30 lowercase letters, digits, '_', '-' or '.', starting and ending with a letter or digit."
  }
}

variable "repository" {
  description = "Name of the serving image repository."
  type        = string
  default     = "serving"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9_./-]{0,62}[a-z0-9])$", var.repository))
    error_message = "repository must be 2-64 lowercase letters, digits, '_', '-', '.' or '/'."
  }
}

variable "vpc_link" {
  description = "VPC and vSwitch to link to the instance's VPC endpoint (with a PrivateZone record), so pulls stay in the VPC. Null links none."
  type = object({
    vpc_id     = string
    vswitch_id = string
  })
  default = null
}

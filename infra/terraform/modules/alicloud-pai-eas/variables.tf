variable "name" {
  description = "EAS service name (3-63 lowercase letters, digits and underscores, starting with a letter; unique in the region)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{2,62}$", var.name))
    error_message = "name must be 3-63 lowercase letters, digits or underscores, starting with a letter."
  }
}

variable "image" {
  description = "Serving image, e.g. <repository_vpc_url>:<tag> of the skewless Container Registry repository."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+[:@][^\\s]+$", var.image))
    error_message = "image must name a tag or digest (<repository>:<tag> or <repository>@sha256:...)."
  }
}

variable "command" {
  description = "Command the container runs."
  type        = string
  default     = "python -m skewless.serving serve"
}

variable "port" {
  description = "Port the server listens on (EAS reserves 8080 and 9090)."
  type        = number
  default     = 8000

  validation {
    condition     = var.port > 0 && var.port < 65536 && !contains([8080, 9090], var.port)
    error_message = "port must be a TCP port other than 8080 and 9090 (EAS reserves those)."
  }
}

variable "environment" {
  description = "Extra environment of the container (SKEWLESS_MODEL, SKEWLESS_REPO, ...). No secrets: the service config is readable through DescribeService."
  type        = map(string)
  default     = {}
}

variable "role_arn" {
  description = "ARN of the RAM role the service assumes (module alicloud-ram)."
  type        = string

  validation {
    condition     = can(regex("^acs:ram::[0-9]+:role/.+$", var.role_arn))
    error_message = "role_arn must look like acs:ram::<account>:role/<name>."
  }
}

variable "instances" {
  description = "Number of service instances."
  type        = number
  default     = 2

  validation {
    condition     = var.instances >= 1
    error_message = "instances must be at least 1."
  }
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = number
  default     = 2
}

variable "memory_mb" {
  description = "Memory per instance, in MB."
  type        = number
  default     = 4000
}

variable "instance_type" {
  description = "ECS instance type of EAS's public resource pool (ignored with resource_group_id)."
  type        = string
  default     = "ecs.c7.large"
}

variable "resource_group_id" {
  description = "Dedicated EAS resource group to run in. Null uses the public pool with instance_type."
  type        = string
  default     = null
}

variable "workspace_id" {
  description = "PAI workspace the service belongs to. Null: the default workspace."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC the service's network interfaces live in (the one Tair is in)."
  type        = string
}

variable "vswitch_id" {
  description = "vSwitch of vpc_id for the service's network interfaces."
  type        = string
}

variable "tair_cidr_block" {
  description = "CIDR block Tair is in (the service may reach it on tair_port only)."
  type        = string

  validation {
    condition     = can(cidrhost(var.tair_cidr_block, 0)) && var.tair_cidr_block != "0.0.0.0/0"
    error_message = "tair_cidr_block must be a CIDR block other than 0.0.0.0/0."
  }
}

variable "tair_port" {
  description = "Port Tair listens on."
  type        = number
  default     = 6379
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

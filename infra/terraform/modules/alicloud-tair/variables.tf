variable "name" {
  description = "Name of the Tair instance."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_.-]{1,127}$", var.name))
    error_message = "name must be 2-128 characters, start with a letter, and hold letters, digits, '_', '.' or '-'."
  }
}

variable "instance_class" {
  description = "Tair DRAM instance class (memory size and architecture), e.g. tair.rdb.2g."
  type        = string
  default     = "tair.rdb.2g"

  validation {
    condition     = startswith(var.instance_class, "tair.rdb.")
    error_message = "instance_class must be a tair_rdb (DRAM) class such as tair.rdb.2g."
  }
}

variable "engine_version" {
  description = "Redis protocol version of the instance (5.0, 6.0 or 7.0)."
  type        = string
  default     = "7.0"

  validation {
    condition     = contains(["5.0", "6.0", "7.0"], var.engine_version)
    error_message = "engine_version must be 5.0, 6.0 or 7.0."
  }
}

variable "node_type" {
  description = "MASTER_SLAVE (a replica that takes over on failure) or STAND_ALONE (one node, for throwaway environments)."
  type        = string
  default     = "MASTER_SLAVE"

  validation {
    condition     = contains(["MASTER_SLAVE", "STAND_ALONE"], var.node_type)
    error_message = "node_type must be MASTER_SLAVE or STAND_ALONE."
  }
}

variable "vpc_id" {
  description = "VPC of the instance."
  type        = string
}

variable "vswitch_id" {
  description = "vSwitch (of vpc_id) the instance attaches to."
  type        = string
}

variable "zone_id" {
  description = "Zone of vswitch_id (the primary node's zone)."
  type        = string
}

variable "secondary_zone_id" {
  description = "Zone of the replica for a two-zone deployment. Null keeps both nodes in zone_id."
  type        = string
  default     = null
}

variable "port" {
  description = "Port Tair listens on."
  type        = number
  default     = 6379

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "password" {
  description = "Password of the default account: 8-32 characters with three of: upper case, lower case, digits, !@#$%^&*()_+-=. Clients read it from SKEWLESS_TAIR_PASSWORD."
  type        = string
  sensitive   = true

  validation {
    condition = (length(var.password) >= 8 && length(var.password) <= 32 && can(regex("^[A-Za-z0-9!@#$%^&*()_+=-]+$", var.password)) &&
    length([for r in ["[A-Z]", "[a-z]", "[0-9]", "[!@#$%^&*()_+=-]"] : r if can(regex(r, var.password))]) >= 3)
    error_message = "password must be 8-32 characters from A-Z a-z 0-9 !@#$%^&*()_+-= using at least three of those classes."
  }
}

variable "allowed_cidr_blocks" {
  description = "Addresses/CIDR blocks allowed to connect (the IP whitelist), e.g. the vSwitch of serving and jobs."
  type        = list(string)

  validation {
    condition = length(var.allowed_cidr_blocks) > 0 && alltrue([
      for c in var.allowed_cidr_blocks : can(cidrhost(strcontains(c, "/") ? c : "${c}/32", 0)) && !startswith(c, "0.0.0.0")
    ])
    error_message = "allowed_cidr_blocks must list at least one address or CIDR block, and none may be 0.0.0.0/0."
  }
}

variable "tags" {
  description = "Tags applied to the instance."
  type        = map(string)
  default     = {}
}

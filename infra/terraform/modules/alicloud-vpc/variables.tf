variable "name" {
  description = "Name of the VPC (the vSwitch is named <name>-<zone>)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_.-]{1,127}$", var.name))
    error_message = "name must be 2-128 characters, start with a letter, and hold letters, digits, '_', '.' or '-'."
  }
}

variable "cidr_block" {
  description = "CIDR block of the VPC (a private range, e.g. 10.0.0.0/16)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.cidr_block))
    error_message = "cidr_block must be a CIDR block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16."
  }
}

variable "vswitch_cidr_block" {
  description = "CIDR block of the vSwitch (inside cidr_block)."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrhost(var.vswitch_cidr_block, 0))
    error_message = "vswitch_cidr_block must be a CIDR block."
  }
}

variable "zone_id" {
  description = "Zone of the vSwitch; Tair must be available there (see the alicloud_kvstore_zones data source)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z0-9-]+$", var.zone_id))
    error_message = "zone_id must be a zone id such as cn-hangzhou-h."
  }
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

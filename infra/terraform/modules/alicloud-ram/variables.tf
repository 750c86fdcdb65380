variable "name" {
  description = "Name of the RAM role (also the prefix of its policy)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]{1,57}$", var.name))
    error_message = "name must be 1-57 letters, digits, '.' or '-' (the policy adds '-access')."
  }
}

variable "trusted_services" {
  description = "Alibaba Cloud services that may assume the role: PAI (which runs EAS services) by default."
  type        = list(string)
  default     = ["pai.aliyuncs.com"]

  validation {
    condition     = length(var.trusted_services) > 0 && alltrue([for s in var.trusted_services : endswith(s, ".aliyuncs.com")])
    error_message = "trusted_services must name services such as pai.aliyuncs.com."
  }
}

variable "bucket_arn" {
  description = "ARN of the skewless data bucket (acs:oss:*:<account>:<bucket>)."
  type        = string

  validation {
    condition     = can(regex("^acs:oss:[^:]*:[^:]*:[a-z0-9-]+$", var.bucket_arn))
    error_message = "bucket_arn must look like acs:oss:*:<account>:<bucket>."
  }
}

variable "read_prefixes" {
  description = "Key prefixes (ending in '/') the role may list and read, e.g. [\"registry/\", \"offline/\", \"models/\"]."
  type        = list(string)

  validation {
    condition     = length(var.read_prefixes) > 0 && alltrue([for p in var.read_prefixes : can(regex("^[^*]+/$", p))])
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

variable "maxcompute_project" {
  description = "MaxCompute project whose tables the role may read. Null grants no MaxCompute access."
  type        = string
  default     = null
}

variable "repository_arn" {
  description = "ARN of the Container Registry EE repository the role may pull the serving image from."
  type        = string

  validation {
    condition     = can(regex("^acs:cr:[^:]+:[^:]+:repository/cri-[^/]+/[^/*]+/[^*]+$", var.repository_arn))
    error_message = "repository_arn must name one repository: acs:cr:<region>:<account>:repository/<instance>/<namespace>/<repository>."
  }
}

variable "kms_key_arns" {
  description = "KMS keys (acs:kms:<region>:<account>:key/<id>) the role may decrypt and generate data keys with."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags applied to the role (RAM policies take tags on domestic-site accounts only, so the policy gets none)."
  type        = map(string)
  default     = {}
}

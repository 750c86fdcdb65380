variable "name" {
  description = "Prefix of every resource name (lowercase letters, digits, hyphens; starts with a letter)."
  type        = string
  default     = "skewless"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name))
    error_message = "name must be 2-24 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "project" {
  description = "skewless project name written to skewless.yaml (registry and online keys are namespaced by it)."
  type        = string
  default     = "skewless"
}

variable "bucket_name" {
  description = "Name of the data bucket. Null derives <name>-data-<account id>-<region>."
  type        = string
  default     = null
}

variable "existing_network" {
  description = "An existing VPC/vSwitch (with the vSwitch's zone and CIDR block) for Tair and PAI-EAS. Null creates one."
  type = object({
    vpc_id     = string
    vswitch_id = string
    zone_id    = string
    cidr_block = string
  })
  default = null
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC this stack creates (unless existing_network)."
  type        = string
  default     = "10.0.0.0/16"
}

variable "vswitch_cidr_block" {
  description = "CIDR block of the vSwitch this stack creates (inside vpc_cidr_block)."
  type        = string
  default     = "10.0.1.0/24"
}

variable "zone_id" {
  description = "Zone of the vSwitch this stack creates. Null picks the first zone offering Tair (DRAM)."
  type        = string
  default     = null
}

variable "endpoint_network" {
  description = "Which OSS and MaxCompute endpoints skewless.yaml names: public (laptops, CI) or vpc (clients inside the VPC)."
  type        = string
  default     = "public"

  validation {
    condition     = contains(["public", "vpc"], var.endpoint_network)
    error_message = "endpoint_network must be public or vpc."
  }
}

variable "offline_engine" {
  description = "Where offline histories live and what computes over them: maxcompute (MaxCompute tables and SQL) or duckdb (Delta tables under oss://<bucket>/offline)."
  type        = string
  default     = "maxcompute"

  validation {
    condition     = contains(["maxcompute", "duckdb"], var.offline_engine)
    error_message = "offline_engine must be maxcompute or duckdb."
  }
}

variable "maxcompute_project_name" {
  description = "MaxCompute project name (unique across Alibaba Cloud). Null derives <name with '_'>_features."
  type        = string
  default     = null
}

variable "maxcompute_account_login" {
  description = "The account's login name (e.g. ml@example.onaliyun.com): makes the serving RAM role a member of the MaxCompute project's reader role. Null adds none."
  type        = string
  default     = null
}

variable "maxcompute_reader_members" {
  description = "Other MaxCompute principals given the project's skewless_reader role."
  type        = list(string)
  default     = []
}

variable "maxcompute_writer_members" {
  description = "MaxCompute principals given the project's skewless_writer role (ingest and materialization jobs)."
  type        = list(string)
  default     = []
}

variable "tair_password" {
  description = "Password of Tair's default account. Pass it as TF_VAR_tair_password; clients read the same value from SKEWLESS_TAIR_PASSWORD."
  type        = string
  sensitive   = true
}

variable "tair_instance_class" {
  description = "Tair DRAM instance class."
  type        = string
  default     = "tair.rdb.2g"
}

variable "tair_node_type" {
  description = "MASTER_SLAVE (with a replica taking over on failure) or STAND_ALONE."
  type        = string
  default     = "MASTER_SLAVE"
}

variable "tair_allowed_cidr_blocks" {
  description = "Further addresses/CIDR blocks allowed to reach Tair (the vSwitch's own block always is)."
  type        = list(string)
  default     = []
}

variable "oss_redundancy_type" {
  description = "Redundancy of the data bucket: ZRS (three zones) or LRS."
  type        = string
  default     = "ZRS"
}

variable "oss_log_bucket" {
  description = "Bucket receiving the data bucket's access logs. Null turns access logging off."
  type        = string
  default     = null
}

variable "kms_key_id" {
  description = "Customer-managed KMS key for the bucket and the MaxCompute project. Null uses service-managed encryption."
  type        = string
  default     = null
}

variable "cr_instance_id" {
  description = "Existing Container Registry EE instance (cri-...). Null buys a new Basic instance (a subscription)."
  type        = string
  default     = null
}

variable "cr_namespace" {
  description = "Container Registry namespace of the serving repository. Null uses name."
  type        = string
  default     = null
}

variable "enable_eas_service" {
  description = "Create a PAI-EAS service running serving_image."
  type        = bool
  default     = false
}

variable "serving_image" {
  description = "Serving image (<cr_repository_vpc_url>:<tag>); required when enable_eas_service is true."
  type        = string
  default     = null
}

variable "eas_instances" {
  description = "Instances of the PAI-EAS service."
  type        = number
  default     = 2
}

variable "eas_instance_type" {
  description = "ECS instance type the PAI-EAS service runs on (public resource pool)."
  type        = string
  default     = "ecs.c7.large"
}

variable "eas_environment" {
  description = "Extra environment of the serving container (SKEWLESS_MODEL, ...; no secrets)."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a non-empty bucket. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource (OSS takes at most 10 in all, two of which this stack sets)."
  type        = map(string)
  default     = {}
}

variable "skewless_permissions" {
  description = "Per registry principal, the cloud policies `skewless permissions export` generates (write it to skewless_permissions.auto.tfvars.json beside the root module): its Redis user and ACL access string, and its RAM policy JSON with the role or user it attaches to. Empty: no per-principal policy."
  type = map(object({
    redis_user          = optional(string)
    redis_access_string = optional(string)
    aws_attach_kind     = optional(string)
    aws_attach_name     = optional(string)
    aws_policy_json     = optional(string)
    alibaba_attach_kind = optional(string)
    alibaba_attach_name = optional(string)
    alibaba_policy_json = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for p in values(var.skewless_permissions) : p.alibaba_attach_kind == null ? true : contains(["role", "user"], p.alibaba_attach_kind)])
    error_message = "alibaba_attach_kind must be role or user."
  }
}

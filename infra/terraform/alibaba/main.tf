# The skewless stack on Alibaba Cloud: OSS bucket (registry/, offline/, models/), a MaxCompute project (offline
# histories and the engine computing over them), Tair (online store), Container Registry EE (serving image), the
# RAM role PAI-EAS assumes and, optionally, a PAI-EAS service, in a VPC/vSwitch of its own or an existing one.
# No provider block: the caller's configuration (or ALICLOUD_REGION / ALICLOUD_PROFILE when applied directly)
# decides where.

data "alicloud_account" "current" {}

data "alicloud_regions" "current" {
  current = true
}

# A zone offering Tair (DRAM), unless the caller names one or brings a network.
data "alicloud_kvstore_zones" "tair" {
  count        = var.existing_network == null && var.zone_id == null ? 1 : 0
  product_type = "Tair_rdb"
}

locals {
  account    = data.alicloud_account.current.id
  region     = data.alicloud_regions.current.regions[0].id
  bucket     = coalesce(var.bucket_name, "${var.name}-data-${local.account}-${local.region}")
  prefixes   = { registry = "registry", offline = "offline", models = "models" }
  maxcompute = var.offline_engine == "maxcompute"
  mc_project = coalesce(var.maxcompute_project_name, "${replace(var.name, "-", "_")}_features")
  zone_id    = var.zone_id != null ? var.zone_id : try(data.alicloud_kvstore_zones.tair[0].ids[0], null)
  tags       = merge({ "skewless:stack" = var.name, "managed-by" = "terraform" }, var.tags)
  kms_keys   = var.kms_key_id == null ? [] : ["acs:kms:${local.region}:${local.account}:key/${var.kms_key_id}"]

  network = var.existing_network != null ? var.existing_network : {
    vpc_id     = module.network[0].vpc_id
    vswitch_id = module.network[0].vswitch_id
    zone_id    = module.network[0].zone_id
    cidr_block = module.network[0].vswitch_cidr_block
  }
  # Clients inside the VPC (PAI-EAS, jobs on ECS) use the internal endpoints; laptops and CI the public ones.
  oss_endpoint = var.endpoint_network == "vpc" ? module.data.intranet_endpoint : module.data.extranet_endpoint
  mc_endpoint  = var.endpoint_network == "vpc" ? module.offline.vpc_endpoint : module.offline.endpoint
  # MaxCompute names a RAM role RAM$<account login>:role/<role>; the serving role reads when the login is known.
  mc_readers = concat(var.maxcompute_reader_members, [
    for login in var.maxcompute_account_login == null ? [] : [var.maxcompute_account_login] :
    format("RAM$%s:role/%s", login, module.serving_role.role_name)
  ])
}

module "network" {
  source = "../modules/alicloud-vpc"
  count  = var.existing_network == null ? 1 : 0

  name               = var.name
  cidr_block         = var.vpc_cidr_block
  vswitch_cidr_block = var.vswitch_cidr_block
  zone_id            = local.zone_id
  tags               = local.tags
}

module "data" {
  source = "../modules/alicloud-oss"

  bucket_name     = local.bucket
  kms_key_id      = var.kms_key_id
  redundancy_type = var.oss_redundancy_type
  log_bucket      = var.oss_log_bucket
  force_destroy   = var.force_destroy
  tags            = local.tags
}

module "offline" {
  source = "../modules/alicloud-maxcompute"

  project_name   = local.mc_project
  kms_key_id     = var.kms_key_id
  reader_members = local.mc_readers
  writer_members = var.maxcompute_writer_members
  tags           = local.tags
}

module "tair" {
  source = "../modules/alicloud-tair"

  name                = "${var.name}-online"
  instance_class      = var.tair_instance_class
  node_type           = var.tair_node_type
  vpc_id              = local.network.vpc_id
  vswitch_id          = local.network.vswitch_id
  zone_id             = local.network.zone_id
  password            = var.tair_password
  allowed_cidr_blocks = distinct(concat([local.network.cidr_block], var.tair_allowed_cidr_blocks))
  tags                = local.tags
}

module "registry" {
  source = "../modules/alicloud-cr"

  instance_id = var.cr_instance_id
  namespace   = coalesce(var.cr_namespace, var.name)
  repository  = "serving"
  vpc_link    = { vpc_id = local.network.vpc_id, vswitch_id = local.network.vswitch_id }
}

module "serving_role" {
  source = "../modules/alicloud-ram"

  name               = "${var.name}-eas"
  bucket_arn         = module.data.bucket_arn
  read_prefixes      = [for p in values(local.prefixes) : "${p}/"]
  write_prefixes     = ["${local.prefixes.models}/"]
  maxcompute_project = module.offline.project_name
  repository_arn     = module.registry.repository_arn
  kms_key_arns       = local.kms_keys
  tags               = local.tags
}

module "serving" {
  source = "../modules/alicloud-pai-eas"
  count  = var.enable_eas_service ? 1 : 0

  name            = "${replace(var.name, "-", "_")}_serving"
  image           = var.serving_image
  role_arn        = module.serving_role.role_arn
  instances       = var.eas_instances
  instance_type   = var.eas_instance_type
  environment     = merge({ SKEWLESS_PROJECT = var.project }, var.eas_environment)
  vpc_id          = local.network.vpc_id
  vswitch_id      = local.network.vswitch_id
  tair_cidr_block = local.network.cidr_block
  tair_port       = module.tair.port
  tags            = local.tags
}

# Least privilege per registry principal (`skewless permissions export`, docs/governance.md): a RAM policy limited to
# the OSS prefixes of the views it may read or ingest, attached to its RAM role or user. (Tair's accounts carry no key
# patterns: apply the Redis ACL rules with `skewless permissions apply-redis-acl` where the instance accepts ACL
# SETUSER.)
locals {
  permission_policies = { for k, p in var.skewless_permissions : k => p if p.alibaba_policy_json != null }
}

resource "alicloud_ram_policy" "permissions" {
  for_each = local.permission_policies

  policy_name     = "${var.name}-${replace(each.key, "_", "-")}"
  description     = "skewless principal ${each.key}: the OSS prefixes of the views it may read or ingest."
  policy_document = each.value.alibaba_policy_json
  force           = true
}

resource "alicloud_ram_role_policy_attachment" "permissions" {
  for_each = { for k, p in local.permission_policies : k => p if p.alibaba_attach_kind == "role" }

  role_name   = each.value.alibaba_attach_name
  policy_name = alicloud_ram_policy.permissions[each.key].policy_name
  policy_type = "Custom"
}

resource "alicloud_ram_user_policy_attachment" "permissions" {
  for_each = { for k, p in local.permission_policies : k => p if p.alibaba_attach_kind == "user" }

  user_name   = each.value.alibaba_attach_name
  policy_name = alicloud_ram_policy.permissions[each.key].policy_name
  policy_type = "Custom"
}

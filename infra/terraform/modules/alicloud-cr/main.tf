# The serving image's home in Container Registry Enterprise Edition: a private namespace (no repositories created
# by a push) and one private repository, on an existing EE instance or a new one. Optionally the instance is
# linked to the deployment's VPC, so PAI-EAS pulls over the VPC endpoint.
#
# EE instances are subscriptions: a new one is billed for `instance_period` months and `terraform destroy` only
# forgets it. Most accounts share one EE instance across projects: pass its id.

data "alicloud_account" "current" {}

data "alicloud_regions" "current" {
  current = true
}

data "alicloud_cr_ee_instances" "existing" {
  count = var.instance_id == null ? 0 : 1
  ids   = [var.instance_id]
}

resource "alicloud_cr_ee_instance" "this" {
  count = var.instance_id == null ? 1 : 0

  instance_name  = var.instance_name
  instance_type  = var.instance_type
  payment_type   = "Subscription"
  period         = var.instance_period
  renewal_status = "ManualRenewal"
}

locals {
  instance_id   = var.instance_id == null ? alicloud_cr_ee_instance.this[0].id : var.instance_id
  instance_name = var.instance_id == null ? var.instance_name : data.alicloud_cr_ee_instances.existing[0].instances[0].name
  region        = data.alicloud_regions.current.regions[0].id
  path          = "${alicloud_cr_ee_namespace.this.name}/${alicloud_cr_ee_repo.this.name}"
}

resource "alicloud_cr_ee_namespace" "this" {
  instance_id        = local.instance_id
  name               = var.namespace
  auto_create        = false
  default_visibility = "PRIVATE"
}

resource "alicloud_cr_ee_repo" "this" {
  instance_id = local.instance_id
  namespace   = alicloud_cr_ee_namespace.this.name
  name        = var.repository
  repo_type   = "PRIVATE"
  summary     = "skewless serving image"
  detail      = "The skewless model server (python -m skewless.serving serve), deployed to PAI-EAS."
}

resource "alicloud_cr_vpc_endpoint_linked_vpc" "this" {
  count = var.vpc_link == null ? 0 : 1

  instance_id                      = local.instance_id
  vpc_id                           = var.vpc_link.vpc_id
  vswitch_id                       = var.vpc_link.vswitch_id
  module_name                      = "Registry"
  enable_create_dns_record_in_pvzt = true
}

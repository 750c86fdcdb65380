# The private network of one skewless deployment: a VPC and one vSwitch in one zone. Tair and the PAI-EAS service
# attach to the vSwitch; nothing in it gets a public address from this module.

resource "alicloud_vpc" "this" {
  vpc_name    = var.name
  cidr_block  = var.cidr_block
  description = "skewless ${var.name}: Tair and the PAI-EAS serving service."
  tags        = var.tags
}

resource "alicloud_vswitch" "this" {
  vswitch_name = "${var.name}-${var.zone_id}"
  vpc_id       = alicloud_vpc.this.id
  cidr_block   = var.vswitch_cidr_block
  zone_id      = var.zone_id
  description  = "skewless ${var.name}: private endpoints in ${var.zone_id}."
  tags         = var.tags
}

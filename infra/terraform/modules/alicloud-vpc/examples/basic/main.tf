# A VPC and one vSwitch for a skewless deployment in Hangzhou.

provider "alicloud" {
  region = "cn-hangzhou"
}

module "network" {
  source = "../.."

  name               = "skewless-example"
  cidr_block         = "10.20.0.0/16"
  vswitch_cidr_block = "10.20.1.0/24"
  zone_id            = "cn-hangzhou-h"
  tags               = { team = "ml-platform" }
}

output "vswitch_id" {
  description = "Id of the vSwitch."
  value       = module.network.vswitch_id
}

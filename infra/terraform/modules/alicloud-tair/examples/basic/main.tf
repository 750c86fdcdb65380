# A Tair instance for skewless's online store in an existing vSwitch, reachable from that vSwitch only.
#   export TF_VAR_tair_password=...   (and SKEWLESS_TAIR_PASSWORD, the same value, wherever skewless runs)

provider "alicloud" {
  region = "cn-hangzhou"
}

variable "tair_password" {
  description = "Password of the Tair default account."
  type        = string
  sensitive   = true
}

module "online" {
  source = "../.."

  name                = "skewless-example-online"
  vpc_id              = "vpc-example"
  vswitch_id          = "vsw-example"
  zone_id             = "cn-hangzhou-h"
  password            = var.tair_password
  allowed_cidr_blocks = ["10.20.1.0/24"]
  tags                = { team = "ml-platform" }
}

output "tair_url" {
  description = "URL skewless connects to."
  value       = module.online.url
}

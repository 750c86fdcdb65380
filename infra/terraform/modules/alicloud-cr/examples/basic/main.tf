# The serving image repository on an existing Container Registry EE instance, pulled over the VPC.

provider "alicloud" {
  region = "cn-hangzhou"
}

module "registry" {
  source = "../.."

  instance_id = "cri-example0123456"
  namespace   = "skewless-example"
  vpc_link    = { vpc_id = "vpc-example", vswitch_id = "vsw-example" }
}

output "repository_url" {
  description = "Where to push the serving image."
  value       = module.registry.repository_url
}

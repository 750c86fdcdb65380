# The skewless serving image as a PAI-EAS service in an existing VPC, with the serving RAM role.

provider "alicloud" {
  region = "cn-hangzhou"
}

module "serving" {
  source = "../.."

  name            = "skewless_example_serving"
  image           = "skewless-registry-vpc.cn-hangzhou.cr.aliyuncs.com/skewless-example/serving:1.0.0"
  role_arn        = "acs:ram::1234567890123456:role/skewless-example-eas"
  environment     = { SKEWLESS_MODEL = "credit", SKEWLESS_MODEL_STAGE = "production" }
  vpc_id          = "vpc-example"
  vswitch_id      = "vsw-example"
  tair_cidr_block = "10.20.1.0/24"
}

output "service_name" {
  description = "Name of the EAS service."
  value       = module.serving.service_name
}

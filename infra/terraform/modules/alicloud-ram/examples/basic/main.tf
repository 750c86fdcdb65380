# The RAM role PAI-EAS assumes for skewless serving: read registry/offline/models, write models, pull one image.

provider "alicloud" {
  region = "cn-hangzhou"
}

module "serving_role" {
  source = "../.."

  name               = "skewless-example-eas"
  bucket_arn         = "acs:oss:*:1234567890123456:example-skewless-data"
  read_prefixes      = ["registry/", "offline/", "models/"]
  write_prefixes     = ["models/"]
  maxcompute_project = "example_skewless_features"
  repository_arn     = "acs:cr:cn-hangzhou:1234567890123456:repository/cri-example0123456/skewless-example/serving"
}

output "role_arn" {
  description = "ARN of the RAM role."
  value       = module.serving_role.role_arn
}

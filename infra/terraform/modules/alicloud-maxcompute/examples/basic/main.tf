# A MaxCompute project for skewless's offline histories; the serving RAM role reads through skewless_reader.

provider "alicloud" {
  region = "cn-hangzhou"
}

module "offline" {
  source = "../.."

  project_name   = "example_skewless_features"
  reader_members = ["RAM$ml-platform@example.onaliyun.com:role/skewless-eas"]
  tags           = { team = "ml-platform" }
}

output "project_name" {
  description = "Name of the MaxCompute project."
  value       = module.offline.project_name
}

# A Glue database for skewless's offline tables.

provider "aws" {
  region = "us-east-1"
}

module "glue" {
  source = "../.."

  database_name = "example_skewless_offline"
  location_uri  = "s3://example-skewless-data/offline/"
}

output "database_name" {
  description = "Name of the Glue database."
  value       = module.glue.database_name
}

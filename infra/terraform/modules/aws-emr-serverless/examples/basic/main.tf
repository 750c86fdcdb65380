# An EMR Serverless application whose jobs read registry/, offline/ and jobs/ and write training-sets/ and emr-logs/.

provider "aws" {
  region = "us-east-1"
}

module "emr" {
  source = "../.."

  name           = "example-skewless-jobs"
  bucket_name    = "example-skewless-data"
  read_prefixes  = ["registry/", "offline/", "jobs/"]
  write_prefixes = ["training-sets/"]
}

output "application_id" {
  description = "Id of the application."
  value       = module.emr.application_id
}

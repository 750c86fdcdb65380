# A SageMaker execution role that reads registry/, offline/ and models/ and writes models/ only.

provider "aws" {
  region = "us-east-1"
}

module "role" {
  source = "../.."

  name               = "example-skewless-sagemaker"
  bucket_arn         = "arn:aws:s3:::example-skewless-data"
  read_prefixes      = ["registry/", "offline/", "models/"]
  write_prefixes     = ["models/"]
  ecr_repository_arn = "arn:aws:ecr:us-east-1:123456789012:repository/example/skewless-serving"
  glue_database_name = "example_skewless_offline"
}

output "role_arn" {
  description = "ARN of the execution role."
  value       = module.role.role_arn
}

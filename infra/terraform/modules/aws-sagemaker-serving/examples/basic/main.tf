# A SageMaker endpoint for the skewless serving image.

provider "aws" {
  region = "us-east-1"
}

variable "execution_role_arn" {
  description = "SageMaker execution role (see the aws-sagemaker-role module)."
  type        = string
}

module "serving" {
  source = "../.."

  name               = "example-skewless-serving"
  image              = "123456789012.dkr.ecr.us-east-1.amazonaws.com/example/skewless-serving:1.0.0"
  execution_role_arn = var.execution_role_arn
  model_data_url     = "s3://example-skewless-data/models/credit/model.tar.gz"
}

output "endpoint_name" {
  description = "Name of the endpoint."
  value       = module.serving.endpoint_name
}

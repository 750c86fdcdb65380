# The stack against the local cloud: S3 on LocalStack, everything else on moto, dummy credentials, loopback only.
# CI applies and destroys this with the aws provider 3.39.0 (see infra/terraform/README.md, "Provider versions").

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  skip_region_validation      = true
  s3_use_path_style           = true
  max_retries                 = 2

  endpoints {
    s3          = var.s3_endpoint
    iam         = var.moto_endpoint
    sts         = var.moto_endpoint
    ec2         = var.moto_endpoint
    ecr         = var.moto_endpoint
    glue        = var.moto_endpoint
    sagemaker   = var.moto_endpoint
    elasticache = coalesce(var.elasticache_endpoint, var.moto_endpoint)
  }
}

# A network for the Redis subnet group (moto's EC2).
resource "aws_vpc" "local" {
  #checkov:skip=CKV2_AWS_11:An emulated VPC on moto; there is no traffic to log.
  #checkov:skip=CKV2_AWS_12:An emulated VPC on moto; its default security group carries no traffic.
  cidr_block = "10.42.0.0/16"
}

resource "aws_subnet" "local" {
  count             = 2
  vpc_id            = aws_vpc.local.id
  cidr_block        = cidrsubnet(aws_vpc.local.cidr_block, 8, count.index)
  availability_zone = ["us-east-1a", "us-east-1b"][count.index]
}

module "stack" {
  source = "../.."

  name                      = var.name
  project                   = "local"
  vpc_id                    = aws_vpc.local.id
  subnet_ids                = aws_subnet.local[*].id
  redis_allowed_cidr_blocks = [aws_vpc.local.cidr_block]
  redis_auth_token          = var.redis_auth_token
  redis_num_cache_clusters  = 1
  redis_engine_version      = "6.x" # the aws provider 3.39 that CI applies with knows no Redis 7 ("7.1")
  force_destroy             = true
  enable_sagemaker_endpoint = var.enable_sagemaker_endpoint
  enable_emr_serverless     = var.enable_emr_serverless
  serving_image             = "${module.stack.ecr_repository_url}:local"
  skewless_permissions      = var.skewless_permissions
}

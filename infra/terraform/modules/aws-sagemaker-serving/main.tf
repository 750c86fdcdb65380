# A SageMaker real-time endpoint running the skewless serving image (one production variant).

resource "aws_sagemaker_model" "this" {
  #checkov:skip=CKV_AWS_370:The serving container must reach Redis (online features) in the VPC; network isolation would cut it off.
  name               = var.name
  execution_role_arn = var.execution_role_arn
  tags               = var.tags

  primary_container {
    image          = var.image
    model_data_url = var.model_data_url
    environment    = var.environment
  }

  dynamic "vpc_config" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      subnets            = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }
}

resource "aws_sagemaker_endpoint_configuration" "this" {
  #checkov:skip=CKV_AWS_98:The volume uses the AWS-managed key unless kms_key_arn names a customer-managed one.
  name        = var.name
  kms_key_arn = var.kms_key_arn
  tags        = var.tags

  production_variants {
    variant_name           = "primary"
    model_name             = aws_sagemaker_model.this.name
    instance_type          = var.instance_type
    initial_instance_count = var.initial_instance_count
  }
}

resource "aws_sagemaker_endpoint" "this" {
  name                 = var.name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.this.name
  tags                 = var.tags
}

# `skewless_config` is the stable shape `skewless config from-terraform` turns into skewless.yaml; the Alibaba
# stack exposes the same keys. Everything else is for operators and other stacks.

output "skewless_config" {
  description = "What skewless.yaml needs: project, region, registry/offline/online URLs and the env var holding the Redis AUTH token."
  value = {
    cloud               = "aws"
    project             = var.project
    region              = local.region
    registry_url        = "s3://${module.data.bucket_name}/${local.prefixes.registry}"
    offline_url         = "s3://${module.data.bucket_name}/${local.prefixes.offline}"
    offline_engine      = var.enable_emr_serverless ? "spark" : "duckdb"
    online_url          = module.redis.url
    online_password_env = "SKEWLESS_REDIS_PASSWORD"
    storage_options     = { region = local.region }
    models_url          = "s3://${module.data.bucket_name}/${local.prefixes.models}"
    glue_database       = module.glue.database_name
    # Where `skewless submit` runs jobs (null: it does not). Alibaba's stack has the key too, null there.
    submit = var.enable_emr_serverless ? {
      target             = "emr-serverless"
      application_id     = module.emr[0].application_id
      execution_role_arn = module.emr[0].execution_role_arn
      log_uri            = module.emr[0].log_uri
      jobs_uri           = "s3://${module.data.bucket_name}/${local.prefixes.jobs}/"
    } : null
  }
}

output "region" {
  description = "Region the stack lives in."
  value       = local.region
}

output "account_id" {
  description = "Account the stack lives in."
  value       = local.account
}

output "bucket_name" {
  description = "Data bucket (prefixes registry/, offline/, models/)."
  value       = module.data.bucket_name
}

output "bucket_arn" {
  description = "ARN of the data bucket."
  value       = module.data.bucket_arn
}

output "redis_replication_group_id" {
  description = "Id of the Redis replication group."
  value       = module.redis.replication_group_id
}

output "redis_primary_endpoint" {
  description = "Primary endpoint host of Redis (TLS)."
  value       = module.redis.primary_endpoint_address
}

output "redis_port" {
  description = "Redis port."
  value       = module.redis.port
}

output "redis_security_group_id" {
  description = "Security group clients must be allowed through (or add theirs to redis_allowed_security_group_ids)."
  value       = module.redis.security_group_id
}

output "ecr_repository_url" {
  description = "Where to push the serving image."
  value       = module.ecr.repository_url
}

output "ecr_repository_arn" {
  description = "ARN of the serving image repository."
  value       = module.ecr.repository_arn
}

output "sagemaker_role_arn" {
  description = "SageMaker execution role."
  value       = module.sagemaker_role.role_arn
}

output "glue_database_name" {
  description = "Glue database for offline tables."
  value       = module.glue.database_name
}

output "sagemaker_endpoint_name" {
  description = "SageMaker endpoint name, or null when enable_sagemaker_endpoint is false."
  value       = try(module.serving[0].endpoint_name, null)
}

output "emr_application_id" {
  description = "EMR Serverless application id, or null when enable_emr_serverless is false."
  value       = try(module.emr[0].application_id, null)
}

output "emr_execution_role_arn" {
  description = "EMR Serverless job runtime role, or null when enable_emr_serverless is false."
  value       = try(module.emr[0].execution_role_arn, null)
}

output "permission_policies" {
  description = "Per registry principal with a cloud identity, the id (ARN) of its generated policy."
  value       = { for k, p in aws_iam_policy.permissions : k => p.arn }
}

output "redis_user_group_id" {
  description = "ElastiCache user group holding the principals' users (attach it to the replication group); null without any."
  value       = length(local.redis_users) > 0 ? aws_elasticache_user_group.permissions[0].user_group_id : null
}

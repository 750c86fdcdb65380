# The skewless stack on AWS: data bucket (registry/, offline/, models/), Redis (online store), ECR (serving image),
# the SageMaker execution role, a Glue database for offline tables and, optionally, a SageMaker endpoint and an EMR
# Serverless application for Spark jobs.
# No provider block: the caller's configuration (or AWS_REGION / AWS_PROFILE when applied directly) decides where.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  account  = data.aws_caller_identity.current.account_id
  region   = data.aws_region.current.id
  bucket   = coalesce(var.bucket_name, "${var.name}-data-${local.account}-${local.region}")
  prefixes = { registry = "registry", offline = "offline", models = "models", jobs = "jobs", entities = "entities", training_sets = "training-sets", emr_logs = "emr-logs" }
  kms_keys = var.kms_key_arn == null ? [] : [var.kms_key_arn]
  tags     = merge({ "skewless:stack" = var.name, "managed-by" = "terraform" }, var.tags)
}

module "data" {
  source = "../modules/aws-s3-data"

  bucket_name   = local.bucket
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy
  tags          = local.tags
}

module "redis" {
  source = "../modules/aws-redis"

  name                       = "${var.name}-redis"
  vpc_id                     = var.vpc_id
  subnet_ids                 = var.subnet_ids
  allowed_cidr_blocks        = var.redis_allowed_cidr_blocks
  allowed_security_group_ids = concat(var.redis_allowed_security_group_ids, aws_security_group.serving[*].id, aws_security_group.emr[*].id)
  auth_token                 = var.redis_auth_token
  node_type                  = var.redis_node_type
  num_cache_clusters         = var.redis_num_cache_clusters
  engine_version             = var.redis_engine_version
  kms_key_arn                = var.kms_key_arn
  tags                       = local.tags
}

module "ecr" {
  source = "../modules/aws-ecr"

  name        = "${var.name}/serving"
  kms_key_arn = var.kms_key_arn
  tags        = local.tags
}

module "glue" {
  source = "../modules/aws-glue"

  catalog_id    = local.account
  database_name = "${replace(var.name, "-", "_")}_offline"
  location_uri  = "s3://${module.data.bucket_name}/${local.prefixes.offline}/"
}

module "sagemaker_role" {
  source = "../modules/aws-sagemaker-role"

  name               = "${var.name}-sagemaker-execution"
  bucket_arn         = module.data.bucket_arn
  read_prefixes      = [for p in ["registry", "offline", "models"] : "${local.prefixes[p]}/"]
  write_prefixes     = ["${local.prefixes.models}/"]
  ecr_repository_arn = module.ecr.repository_arn
  glue_database_name = module.glue.database_name
  kms_key_arns       = local.kms_keys
  tags               = local.tags
}

module "serving" {
  source = "../modules/aws-sagemaker-serving"
  count  = var.enable_sagemaker_endpoint ? 1 : 0

  name               = "${var.name}-serving"
  image              = var.serving_image
  execution_role_arn = module.sagemaker_role.role_arn
  model_data_url     = var.model_data_url
  instance_type      = var.sagemaker_instance_type
  kms_key_arn        = var.kms_key_arn
  subnet_ids         = var.subnet_ids
  security_group_ids = aws_security_group.serving[*].id
  environment        = { SKEWLESS_PROJECT = var.project }
  tags               = local.tags
}

# The endpoint's network interfaces: out to Redis and to AWS APIs over HTTPS (S3, ECR, logs), nothing in.
resource "aws_security_group" "serving" {
  #checkov:skip=CKV2_AWS_5:Attached to the SageMaker model's vpc_config (module.serving), which checkov does not follow.
  count       = var.enable_sagemaker_endpoint ? 1 : 0
  name        = "${var.name}-serving"
  description = "SageMaker endpoint of ${var.name}: egress to Redis and HTTPS only."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_security_group_rule" "serving_to_redis" {
  count                    = var.enable_sagemaker_endpoint ? 1 : 0
  description              = "Online feature reads from Redis"
  type                     = "egress"
  from_port                = module.redis.port
  to_port                  = module.redis.port
  protocol                 = "tcp"
  security_group_id        = aws_security_group.serving[0].id
  source_security_group_id = module.redis.security_group_id
}

resource "aws_security_group_rule" "serving_https" {
  #checkov:skip=CKV_AWS_382:HTTPS egress to AWS APIs (S3, ECR, CloudWatch Logs), whose addresses are not fixed.
  count             = var.enable_sagemaker_endpoint ? 1 : 0
  description       = "AWS APIs over HTTPS (S3, ECR, CloudWatch Logs)"
  type              = "egress"
  from_port         = 443
  to_port           = 443
  protocol          = "tcp"
  security_group_id = aws_security_group.serving[0].id
  cidr_blocks       = ["0.0.0.0/0"]
}

# Spark jobs on EMR Serverless (`skewless submit`): read the registry, the histories, entity tables and the staged
# entry point; write training sets and logs. Workers run in the Redis subnets so materialization reaches it.
module "emr" {
  source = "../modules/aws-emr-serverless"
  count  = var.enable_emr_serverless ? 1 : 0

  name               = "${var.name}-jobs"
  bucket_name        = module.data.bucket_name
  read_prefixes      = [for p in ["registry", "offline", "entities", "jobs"] : "${local.prefixes[p]}/"]
  write_prefixes     = ["${local.prefixes.training_sets}/"]
  log_prefix         = "${local.prefixes.emr_logs}/"
  release_label      = var.emr_release_label
  max_cpu            = var.emr_max_cpu
  max_memory         = var.emr_max_memory
  subnet_ids         = var.subnet_ids
  security_group_ids = aws_security_group.emr[*].id
  image_uri          = var.emr_image_uri
  kms_key_arns       = local.kms_keys
  tags               = local.tags
}

# The job workers' network interfaces: out to Redis and to AWS APIs over HTTPS (S3), nothing in.
resource "aws_security_group" "emr" {
  #checkov:skip=CKV2_AWS_5:Attached to the EMR Serverless application's network_configuration (module.emr), which checkov does not follow.
  count       = var.enable_emr_serverless ? 1 : 0
  name        = "${var.name}-jobs"
  description = "EMR Serverless workers of ${var.name}: egress to Redis and HTTPS only."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_security_group_rule" "emr_to_redis" {
  count                    = var.enable_emr_serverless ? 1 : 0
  description              = "Materialization writes to Redis"
  type                     = "egress"
  from_port                = module.redis.port
  to_port                  = module.redis.port
  protocol                 = "tcp"
  security_group_id        = aws_security_group.emr[0].id
  source_security_group_id = module.redis.security_group_id
}

resource "aws_security_group_rule" "emr_https" {
  #checkov:skip=CKV_AWS_382:HTTPS egress to AWS APIs (S3, STS), whose addresses are not fixed.
  count             = var.enable_emr_serverless ? 1 : 0
  description       = "AWS APIs over HTTPS (S3, STS)"
  type              = "egress"
  from_port         = 443
  to_port           = 443
  protocol          = "tcp"
  security_group_id = aws_security_group.emr[0].id
  cidr_blocks       = ["0.0.0.0/0"]
}

# Least privilege per registry principal (`skewless permissions export`, docs/governance.md): an IAM policy limited
# to the S3 prefixes of the views it may read or ingest, attached to its role or user, and an ElastiCache user whose
# access string limits it to those views' keys.
locals {
  permission_policies = { for k, p in var.skewless_permissions : k => p if p.aws_policy_json != null }
  redis_users         = { for k, p in var.skewless_permissions : k => p if p.redis_access_string != null }
}

resource "aws_iam_policy" "permissions" {
  for_each = local.permission_policies

  name        = "${var.name}-${each.key}"
  description = "skewless principal ${each.key}: the S3 prefixes of the views it may read or ingest."
  policy      = each.value.aws_policy_json
  tags        = local.tags
}

resource "aws_iam_role_policy_attachment" "permissions" {
  for_each = { for k, p in local.permission_policies : k => p if p.aws_attach_kind == "role" }

  role       = each.value.aws_attach_name
  policy_arn = aws_iam_policy.permissions[each.key].arn
}

# A principal that is an IAM user gets its policy through a group of its own (policies on groups or roles only).
resource "aws_iam_group" "permissions" {
  for_each = { for k, p in local.permission_policies : k => p if p.aws_attach_kind == "user" }

  name = "${var.name}-${each.key}"
}

resource "aws_iam_group_policy_attachment" "permissions" {
  for_each = aws_iam_group.permissions

  group      = each.value.name
  policy_arn = aws_iam_policy.permissions[each.key].arn
}

resource "aws_iam_user_group_membership" "permissions" {
  for_each = aws_iam_group.permissions

  user   = local.permission_policies[each.key].aws_attach_name
  groups = [each.value.name]
}

resource "aws_elasticache_user" "permissions" {
  for_each = local.redis_users

  user_id       = each.value.redis_user
  user_name     = each.value.redis_user
  engine        = "REDIS"
  access_string = each.value.redis_access_string
  passwords     = [var.redis_user_passwords[each.key]]
  tags          = local.tags
}

# A user group must hold a user named "default": this one is switched off.
resource "aws_elasticache_user" "default" {
  count = length(local.redis_users) > 0 ? 1 : 0

  user_id              = "${var.name}-default"
  user_name            = "default"
  engine               = "REDIS"
  access_string        = "off -@all"
  no_password_required = true
  tags                 = local.tags
}

resource "aws_elasticache_user_group" "permissions" {
  count = length(local.redis_users) > 0 ? 1 : 0

  user_group_id = "${var.name}-principals"
  engine        = "REDIS"
  user_ids      = concat(aws_elasticache_user.default[*].user_id, [for u in aws_elasticache_user.permissions : u.user_id])
  tags          = local.tags
}

# The RAM role PAI-EAS assumes for the skewless serving service (STS credentials inside the container, no
# AccessKeys): list and read only the given prefixes of the data bucket (write only write_prefixes), read the
# MaxCompute project, pull only the serving repository, use only the given KMS keys.

data "alicloud_account" "current" {}

locals {
  account  = data.alicloud_account.current.id
  prefixes = distinct(concat(var.read_prefixes, var.write_prefixes))
  project  = "acs:odps:*:${local.account}:projects/${var.maxcompute_project}"
  # Optional statements are for-expressions (tuples), not `cond ? [] : [{...}]`: concat must not unify objects of
  # different shapes into one list type.
  statements = concat(
    [
      {
        # list only the skewless prefixes
        Effect    = "Allow"
        Action    = ["oss:ListObjects", "oss:ListObjectVersions"]
        Resource  = [var.bucket_arn]
        Condition = { StringLike = { "oss:Prefix" = [for p in local.prefixes : "${p}*"] } }
      },
      { Effect = "Allow", Action = ["oss:GetBucketInfo", "oss:GetBucketLocation"], Resource = [var.bucket_arn] },
      {
        # read objects under them
        Effect   = "Allow"
        Action   = ["oss:GetObject", "oss:GetObjectVersion", "oss:GetObjectMeta"]
        Resource = [for p in local.prefixes : "${var.bucket_arn}/${p}*"]
      },
    ],
    [for prefixes in length(var.write_prefixes) == 0 ? [] : [var.write_prefixes] : {
      # write only under write_prefixes
      Effect   = "Allow"
      Action   = ["oss:PutObject", "oss:DeleteObject", "oss:AbortMultipartUpload", "oss:ListParts"]
      Resource = [for p in prefixes : "${var.bucket_arn}/${p}*"]
    }],
    [for project in var.maxcompute_project == null ? [] : [local.project] : {
      # read the MaxCompute project's tables
      Effect   = "Allow"
      Action   = ["odps:List", "odps:CreateInstance", "odps:Describe", "odps:Select", "odps:Download", "odps:Read"]
      Resource = [project, "${project}/tables/*", "${project}/instances/*"]
    }],
    [
      # Container Registry grants GetAuthorizationToken on "*" only (it has no resource-level permission).
      { Effect = "Allow", Action = ["cr:GetAuthorizationToken"], Resource = ["*"] },
      {
        # pull the serving image only
        Effect   = "Allow"
        Action   = ["cr:PullRepository", "cr:GetRepository"]
        Resource = [var.repository_arn]
      },
    ],
    [for keys in length(var.kms_key_arns) == 0 ? [] : [var.kms_key_arns] : {
      # the given KMS keys only
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource = keys
    }],
  )
}

resource "alicloud_ram_role" "this" {
  role_name            = var.name
  description          = "Assumed by PAI-EAS for the skewless serving service (least privilege)."
  max_session_duration = 3600
  tags                 = var.tags
  assume_role_policy_document = jsonencode({
    Version = "1"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = var.trusted_services }
    }]
  })
}

resource "alicloud_ram_policy" "this" {
  policy_name     = "${var.name}-access"
  description     = "skewless serving: data bucket prefixes, MaxCompute project, serving image."
  policy_document = jsonencode({ Version = "1", Statement = local.statements })
  rotate_strategy = "DeleteOldestNonDefaultVersionWhenLimitExceeded"
}

resource "alicloud_ram_role_policy_attachment" "this" {
  role_name   = alicloud_ram_role.this.role_name
  policy_name = alicloud_ram_policy.this.policy_name
  policy_type = "Custom"
}

# The execution role SageMaker assumes for skewless models: read (and optionally write) only the given prefixes of
# the data bucket, pull only the serving repository, write only SageMaker's own log groups and metrics, read only
# the skewless Glue database.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.id
  partition = data.aws_partition.current.partition
  prefixes  = distinct(concat(var.read_prefixes, var.write_prefixes))
  log_group = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/sagemaker/*"
  catalog   = "arn:${local.partition}:glue:${local.region}:${local.account}"
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "SageMakerAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    # Confused-deputy guard: only SageMaker acting for this account.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ListSkewlessPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in local.prefixes : "${p}*"]
    }
  }

  statement {
    sid       = "BucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "ReadSkewlessPrefixes"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for p in local.prefixes : "${var.bucket_arn}/${p}*"]
  }

  dynamic "statement" {
    for_each = length(var.write_prefixes) > 0 ? [1] : []
    content {
      sid       = "WriteSkewlessPrefixes"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for p in var.write_prefixes : "${var.bucket_arn}/${p}*"]
    }
  }

  # GetAuthorizationToken has no resource-level permissions: AWS only accepts "*" for it.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPullServingImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "SageMakerLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [local.log_group, "${local.log_group}:log-stream:*"]
  }

  # PutMetricData has no resource-level permissions either; the namespace condition scopes it.
  statement {
    sid       = "SageMakerMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*", "skewless"]
    }
  }

  dynamic "statement" {
    for_each = var.glue_database_name == null ? [] : [var.glue_database_name]
    content {
      sid = "ReadSkewlessGlueTables"
      actions = ["glue:GetDatabase", "glue:GetPartition", "glue:GetPartitions", "glue:GetTable", "glue:GetTables",
      "glue:GetTableVersions"]
      resources = [
        "${local.catalog}:catalog",
        "${local.catalog}:database/${statement.value}",
        "${local.catalog}:table/${statement.value}/*",
      ]
    }
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "UseSkewlessKeys"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.kms_key_arns
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "SageMaker execution role for skewless models (least privilege)."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.name}-access"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

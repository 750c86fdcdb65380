# An EMR Serverless Spark application for skewless jobs (training sets, materialization) and the execution role its
# job runs assume: read only the given prefixes of the data bucket (registry, histories, the staged job entry point),
# write only the training-set and log prefixes. Logs go to S3 (the submitter sets each run's log URI to log_uri;
# EMR Serverless writes them with this role), nothing to CloudWatch, so the role has no logs:* permission.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account    = data.aws_caller_identity.current.account_id
  bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
  write      = distinct(concat(var.write_prefixes, [var.log_prefix]))
  prefixes   = distinct(concat(var.read_prefixes, local.write))
}

resource "aws_emrserverless_application" "this" {
  name          = var.name
  release_label = var.release_label
  type          = "spark"
  architecture  = var.architecture

  maximum_capacity {
    cpu    = var.max_cpu
    memory = var.max_memory
    disk   = var.max_disk
  }

  # Started by the first job run, stopped when idle: no capacity is billed between jobs.
  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = var.idle_timeout_minutes
  }

  # Materialization writes to Redis inside the VPC: the workers need subnets and a security group that reaches it.
  dynamic "network_configuration" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  # A custom image with skewless installed; null uses EMR's own image with a packed virtualenv (see the docs).
  dynamic "image_configuration" {
    for_each = var.image_uri == null ? [] : [var.image_uri]
    content {
      image_uri = image_configuration.value
    }
  }

  tags = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "EmrServerlessAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["emr-serverless.amazonaws.com"]
    }

    # Confused-deputy guard: only EMR Serverless acting for this account.
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
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in local.prefixes : "${p}*"]
    }
  }

  statement {
    sid       = "BucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.bucket_arn]
  }

  statement {
    sid       = "ReadSkewlessPrefixes"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for p in local.prefixes : "${local.bucket_arn}/${p}*"]
  }

  # Training sets and logs are written, never deleted: a job cannot remove what another one wrote.
  statement {
    sid       = "WriteTrainingSetsAndLogs"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [for p in local.write : "${local.bucket_arn}/${p}*"]
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
  name                 = "${var.name}-execution"
  description          = "EMR Serverless job runtime role for skewless jobs (least privilege)."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.name}-execution-access"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

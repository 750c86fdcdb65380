# A private, encrypted, versioned OSS bucket. skewless keeps its registry, offline histories and model artifacts
# under fixed prefixes (registry/, offline/, models/) of this one bucket; RAM policies scope access by prefix.

data "alicloud_account" "current" {}

locals {
  arn = "acs:oss:*:${data.alicloud_account.current.id}:${var.bucket_name}"
}

resource "alicloud_oss_bucket" "this" {
  #checkov:skip=CKV_ALI_6:AES-256 server-side encryption is the default; pass kms_key_id to use a customer-managed KMS key.
  #checkov:skip=CKV_ALI_11:Transfer acceleration speeds up cross-continent uploads; skewless reads and writes in-region.
  #checkov:skip=CKV_ALI_12:Access logs go to the account's central log bucket (log_bucket), which this module does not own.
  bucket          = var.bucket_name
  storage_class   = "Standard"
  redundancy_type = var.redundancy_type
  force_destroy   = var.force_destroy
  tags            = var.tags

  versioning {
    status = "Enabled"
  }

  server_side_encryption_rule {
    sse_algorithm     = var.kms_key_id == null ? "AES256" : "KMS"
    kms_master_key_id = var.kms_key_id
  }

  # Versioning keeps every overwritten registry and Delta log object; this bounds what that costs.
  lifecycle_rule {
    id      = "expire-noncurrent-versions"
    enabled = true

    noncurrent_version_expiration {
      days = var.noncurrent_version_expiration_days
    }

    abort_multipart_upload {
      days = 7
    }
  }

  lifecycle_rule {
    id      = "remove-expired-delete-markers"
    enabled = true

    expiration {
      expired_object_delete_marker = true
    }
  }

  dynamic "logging" {
    for_each = var.log_bucket == null ? [] : [var.log_bucket]
    content {
      target_bucket = logging.value
      target_prefix = "${var.log_prefix}${var.bucket_name}/"
    }
  }

  # The ACL and the policy are managed by their own resources below (the inline arguments are deprecated).
  lifecycle {
    ignore_changes = [acl, policy]
  }
}

resource "alicloud_oss_bucket_acl" "this" {
  bucket = alicloud_oss_bucket.this.bucket
  acl    = "private"
}

resource "alicloud_oss_bucket_public_access_block" "this" {
  bucket              = alicloud_oss_bucket.this.bucket
  block_public_access = true
}

# Refuse plain-HTTP access: every skewless client speaks TLS to OSS.
resource "alicloud_oss_bucket_policy" "this" {
  bucket = alicloud_oss_bucket.this.bucket
  policy = jsonencode({
    Version = "1"
    Statement = [{
      Effect    = "Deny"
      Action    = ["oss:*"]
      Principal = ["*"]
      Resource  = [local.arn, "${local.arn}/*"]
      Condition = { Bool = { "acs:SecureTransport" = ["false"] } }
    }]
  })

  depends_on = [alicloud_oss_bucket_public_access_block.this]
}

# The serving image's repository: images scanned on push, tags immutable, untagged layers expired.

resource "aws_ecr_repository" "this" {
  #checkov:skip=CKV_AWS_136:AES-256 is ECR's default encryption; pass kms_key_arn to use a customer-managed KMS key.
  name                 = var.name
  image_tag_mutability = var.image_tag_mutability
  tags                 = var.tags

  image_scanning_configuration {
    scan_on_push = var.scan_on_push
  }

  encryption_configuration {
    encryption_type = var.kms_key_arn == null ? "AES256" : "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Expire untagged images after ${var.keep_untagged_days} days"
      selection = {
        tagStatus   = "untagged"
        countType   = "sinceImagePushed"
        countUnit   = "days"
        countNumber = var.keep_untagged_days
      }
      action = { type = "expire" }
    }]
  })
}

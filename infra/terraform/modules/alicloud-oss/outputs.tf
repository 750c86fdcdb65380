output "bucket_name" {
  description = "Name of the data bucket."
  value       = alicloud_oss_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the data bucket (acs:oss:*:<account>:<bucket>), for RAM policies."
  value       = local.arn
}

output "extranet_endpoint" {
  description = "Public OSS endpoint host of the bucket's region (e.g. oss-cn-hangzhou.aliyuncs.com)."
  value       = alicloud_oss_bucket.this.extranet_endpoint
}

output "intranet_endpoint" {
  description = "VPC-internal OSS endpoint host of the bucket's region (e.g. oss-cn-hangzhou-internal.aliyuncs.com)."
  value       = alicloud_oss_bucket.this.intranet_endpoint
}

output "instance_id" {
  description = "Id of the Tair instance."
  value       = alicloud_redis_tair_instance.this.id
}

output "host" {
  description = "Private (VPC) endpoint host of the instance."
  value       = alicloud_redis_tair_instance.this.connection_domain
}

output "port" {
  description = "Port Tair listens on."
  value       = var.port
}

output "url" {
  description = "tair:// URL of the instance (TLS is on; the password is not part of it)."
  value       = "tair://${alicloud_redis_tair_instance.this.connection_domain}:${var.port}/0"
}

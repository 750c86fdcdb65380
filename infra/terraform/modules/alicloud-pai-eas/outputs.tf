output "service_name" {
  description = "Name of the EAS service (requests go to /api/predict/<service_name>)."
  value       = var.name
}

output "service_id" {
  description = "Id of the EAS service resource."
  value       = alicloud_pai_service.this.id
}

output "security_group_id" {
  description = "Security group of the service's network interfaces."
  value       = alicloud_security_group.this.id
}

output "service_config" {
  description = "The EAS service config (JSON) the service was created with."
  value       = jsonencode(local.service_config)
}

output "role_name" {
  description = "Name of the RAM role."
  value       = alicloud_ram_role.this.role_name
}

output "role_arn" {
  description = "ARN of the RAM role (what the PAI-EAS service config names)."
  value       = alicloud_ram_role.this.arn
}

output "policy_name" {
  description = "Name of the role's custom policy."
  value       = alicloud_ram_policy.this.policy_name
}

output "policy_document" {
  description = "The role's policy document (JSON)."
  value       = alicloud_ram_policy.this.policy_document
}

output "project_name" {
  description = "Name of the MaxCompute project."
  value       = alicloud_maxcompute_project.this.project_name
}

output "region" {
  description = "Region of the project."
  value       = alicloud_maxcompute_project.this.region_id
}

output "endpoint" {
  description = "Public MaxCompute endpoint of the project's region."
  value       = "https://service.${alicloud_maxcompute_project.this.region_id}.maxcompute.aliyun.com/api"
}

output "vpc_endpoint" {
  description = "VPC MaxCompute endpoint of the project's region (for clients inside a VPC)."
  value       = "https://service.${alicloud_maxcompute_project.this.region_id}-vpc.maxcompute.aliyun-inc.com/api"
}

output "reader_role" {
  description = "Project-level role for readers (serving, training sets)."
  value       = alicloud_max_compute_role.this["reader"].role_name
}

output "writer_role" {
  description = "Project-level role for writers (ingest, materialization)."
  value       = alicloud_max_compute_role.this["writer"].role_name
}

output "instance_id" {
  description = "Id of the Container Registry EE instance."
  value       = local.instance_id
}

output "namespace" {
  description = "Namespace of the serving repository."
  value       = alicloud_cr_ee_namespace.this.name
}

output "repository" {
  description = "Name of the serving repository."
  value       = alicloud_cr_ee_repo.this.name
}

output "repository_url" {
  description = "Where to push the serving image (public endpoint; `docker login` with the instance's registry credentials)."
  value       = "${local.instance_name}-registry.${local.region}.cr.aliyuncs.com/${local.path}"
}

output "repository_vpc_url" {
  description = "The same repository through the instance's VPC endpoint (what PAI-EAS pulls from)."
  value       = "${local.instance_name}-registry-vpc.${local.region}.cr.aliyuncs.com/${local.path}"
}

output "repository_arn" {
  description = "ARN of the repository, for RAM policies."
  value       = "acs:cr:${local.region}:${data.alicloud_account.current.id}:repository/${local.instance_id}/${local.path}"
}

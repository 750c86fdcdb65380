# `skewless_config` is the stable shape `skewless config from-terraform` turns into skewless.yaml; it has the AWS
# stack's keys, plus `offline_storage_options` (the MaxCompute store's options) and `online_options` (Tair's `tls`).
# Everything else is for operators and other stacks.

output "skewless_config" {
  description = "What skewless.yaml needs: project, region, registry/offline/online URLs and the env var holding the Tair password."
  value = {
    cloud               = "alibaba"
    project             = var.project
    region              = local.region
    registry_url        = "oss://${module.data.bucket_name}/${local.prefixes.registry}"
    offline_url         = local.maxcompute ? "maxcompute://${module.offline.project_name}" : "oss://${module.data.bucket_name}/${local.prefixes.offline}"
    offline_engine      = var.offline_engine
    online_url          = module.tair.url
    online_password_env = "SKEWLESS_TAIR_PASSWORD"
    storage_options     = { endpoint = "https://${local.oss_endpoint}", region = local.region }
    models_url          = "oss://${module.data.bucket_name}/${local.prefixes.models}"
    maxcompute_project  = module.offline.project_name
    # The offline store's own options when it is not the bucket (MaxCompute: its endpoint); null: storage_options.
    offline_storage_options = local.maxcompute ? { endpoint = local.mc_endpoint } : null
    online_options          = { tls = true }
    # The AWS stack's job submission settings (EMR Serverless). Null here: with offline_engine = maxcompute the
    # jobs already run inside MaxCompute; Alibaba's Spark services (EMR Serverless Spark, MaxCompute Spark) have
    # no skewless submitter yet.
    submit = null
  }
}

output "region" {
  description = "Region the stack lives in."
  value       = local.region
}

output "account_id" {
  description = "Account the stack lives in."
  value       = local.account
}

output "bucket_name" {
  description = "Data bucket (prefixes registry/, offline/, models/)."
  value       = module.data.bucket_name
}

output "bucket_arn" {
  description = "ARN of the data bucket."
  value       = module.data.bucket_arn
}

output "maxcompute_project_name" {
  description = "MaxCompute project of the offline histories."
  value       = module.offline.project_name
}

output "maxcompute_endpoint" {
  description = "MaxCompute endpoint skewless.yaml uses (public or VPC, per endpoint_network)."
  value       = local.mc_endpoint
}

output "tair_instance_id" {
  description = "Id of the Tair instance."
  value       = module.tair.instance_id
}

output "tair_host" {
  description = "Private endpoint host of Tair (TLS)."
  value       = module.tair.host
}

output "tair_port" {
  description = "Tair port."
  value       = module.tair.port
}

output "vpc_id" {
  description = "VPC of Tair and the PAI-EAS service."
  value       = local.network.vpc_id
}

output "vswitch_id" {
  description = "vSwitch of Tair and the PAI-EAS service (add clients' CIDRs to tair_allowed_cidr_blocks)."
  value       = local.network.vswitch_id
}

output "cr_repository_url" {
  description = "Where to push the serving image."
  value       = module.registry.repository_url
}

output "cr_repository_vpc_url" {
  description = "The serving repository through the VPC endpoint (what PAI-EAS pulls)."
  value       = module.registry.repository_vpc_url
}

output "cr_repository_arn" {
  description = "ARN of the serving image repository."
  value       = module.registry.repository_arn
}

output "eas_role_arn" {
  description = "RAM role PAI-EAS assumes for the serving service."
  value       = module.serving_role.role_arn
}

output "eas_service_name" {
  description = "PAI-EAS service name, or null when enable_eas_service is false."
  value       = try(module.serving[0].service_name, null)
}

output "permission_policies" {
  description = "Per registry principal with a cloud identity, the id (name) of its generated policy."
  value       = { for k, p in alicloud_ram_policy.permissions : k => p.policy_name }
}

# An optional PAI-EAS service running the skewless serving image (custom container, `python -m skewless.serving
# serve` in its EAS contract): in the deployment's VPC behind a security group that may only reach Tair and HTTPS,
# with the serving RAM role's STS credentials (no AccessKeys in the config). The service config is the JSON
# document EAS takes (metadata, containers, cloud, options); `terraform output` shows it.
#
# Secrets are not put in the service config (anyone allowed DescribeService reads it): the Tair password reaches
# the container the way the image's entrypoint chooses (e.g. KMS Secrets Manager), as on SageMaker.

locals {
  env = merge({ SKEWLESS_CONTRACT = "eas", SKEWLESS_PORT = tostring(var.port), SKEWLESS_SERVICE_NAME = var.name },
  var.environment)
  service_config = {
    metadata = merge({ name = var.name, instance = var.instances, cpu = var.cpu, memory = var.memory_mb },
    { for k, v in { resource = var.resource_group_id } : k => v if v != null })
    containers = [{
      image   = var.image
      port    = var.port
      command = var.command
      env     = [for k in sort(keys(local.env)) : { name = k, value = local.env[k] }]
    }]
    # A dedicated resource group brings its own machines; otherwise EAS's public pool runs instance_type.
    cloud = merge(
      { networking = { vpc_id = var.vpc_id, vswitch_id = var.vswitch_id, security_group_id = alicloud_security_group.this.id } },
      { for k, v in { computing = { instances = [{ type = var.instance_type }] } } : k => v if var.resource_group_id == null },
    )
    # The custom RAM role: code in the container gets its STS credentials from the standard credential chain.
    options  = { enable_ram_role = true }
    role_arn = var.role_arn
  }
}

resource "alicloud_security_group" "this" {
  security_group_name = "${var.name}-eas"
  vpc_id              = var.vpc_id
  description         = "PAI-EAS service ${var.name}: egress to Tair and HTTPS only."
  inner_access_policy = "Drop"
  tags                = var.tags
}

resource "alicloud_security_group_rule" "to_tair" {
  security_group_id = alicloud_security_group.this.id
  description       = "Online feature reads from Tair"
  type              = "egress"
  ip_protocol       = "tcp"
  nic_type          = "intranet"
  policy            = "accept"
  priority          = 1
  port_range        = "${var.tair_port}/${var.tair_port}"
  cidr_ip           = var.tair_cidr_block
}

resource "alicloud_security_group_rule" "https" {
  security_group_id = alicloud_security_group.this.id
  description       = "Alibaba Cloud APIs over HTTPS (OSS, MaxCompute, Container Registry, STS)"
  type              = "egress"
  ip_protocol       = "tcp"
  nic_type          = "intranet"
  policy            = "accept"
  priority          = 1
  port_range        = "443/443"
  cidr_ip           = "0.0.0.0/0"
}

resource "alicloud_pai_service" "this" {
  service_config = jsonencode(local.service_config)
  workspace_id   = var.workspace_id
  tags           = var.tags
}

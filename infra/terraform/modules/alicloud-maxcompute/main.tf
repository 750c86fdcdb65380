# The MaxCompute project holding skewless's offline feature histories (MaxCompute tables), with two project-level
# roles: a reader (what serving and training-set readers need) and a writer (ingest and materialization jobs).
# MaxCompute authorizes inside a project by its own roles, so least privilege is granted here, not only in RAM.

locals {
  project = alicloud_maxcompute_project.this.project_name
  tables  = "acs:odps:*:projects/${local.project}/tables/*"
  read_statements = [
    { Effect = "Allow", Action = ["odps:List", "odps:CreateInstance"], Resource = ["acs:odps:*:projects/${local.project}"] },
    { Effect = "Allow", Action = ["odps:Describe", "odps:Select", "odps:Download"], Resource = [local.tables] },
    { Effect = "Allow", Action = ["odps:Read", "odps:Download"], Resource = ["acs:odps:*:projects/${local.project}/instances/*"] },
  ]
  write_statements = [
    { Effect = "Allow", Action = ["odps:CreateTable"], Resource = ["acs:odps:*:projects/${local.project}"] },
    { Effect = "Allow", Action = ["odps:Alter", "odps:Update", "odps:Drop"], Resource = [local.tables] },
  ]
  roles = {
    reader = { policy = local.read_statements, members = var.reader_members }
    writer = { policy = concat(local.read_statements, local.write_statements), members = var.writer_members }
  }
  memberships = merge([for role, r in local.roles : { for m in r.members : "${role}/${m}" => { role = role, user = m } }]...)
}

resource "alicloud_maxcompute_project" "this" {
  project_name  = var.project_name
  comment       = var.comment
  default_quota = var.default_quota
  tags          = var.tags

  properties {
    allow_full_scan = false
    type_system     = "2"
    retention_days  = var.backup_retention_days

    # Storage encryption cannot be turned off (or its algorithm changed) once on.
    encryption {
      enable    = true
      algorithm = var.encryption_algorithm
      key       = var.kms_key_id
    }
  }

  security_properties {
    using_acl                 = true
    using_policy              = true
    enable_download_privilege = true
  }

  dynamic "ip_white_list" {
    for_each = length(var.allowed_vpc_ips) + length(var.allowed_public_ips) > 0 ? [1] : []
    content {
      vpc_ip_list = join(",", var.allowed_vpc_ips)
      ip_list     = join(",", var.allowed_public_ips)
    }
  }
}

resource "alicloud_max_compute_role" "this" {
  for_each = local.roles

  project_name = local.project
  role_name    = "skewless_${each.key}"
  type         = "resource"
  policy       = jsonencode({ Version = "1", Statement = each.value.policy })
}

resource "alicloud_max_compute_role_user_attachment" "this" {
  for_each = local.memberships

  project_name = local.project
  role_name    = alicloud_max_compute_role.this[each.value.role].role_name
  user         = each.value.user
}

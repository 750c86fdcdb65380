# Tair (cloud-native, DRAM-based "tair_rdb") as skewless's online store: in the VPC's vSwitch only, TLS on, password
# authentication on, and a whitelist naming the clients allowed in (never 0.0.0.0/0). TairHash (EXHSET/EXHMGET),
# which the skewless Tair adapter uses for per-feature TTL, is part of every tair_rdb instance.
#
# alicloud_redis_tair_instance, not alicloud_kvstore_instance: the latter's instance_type only takes Redis or
# Memcache, while the Tair storage media (tair_rdb, tair_scm, tair_essd) are this resource's.

resource "alicloud_redis_tair_instance" "this" {
  tair_instance_name = var.name
  instance_type      = "tair_rdb"
  instance_class     = var.instance_class
  engine_version     = var.engine_version
  node_type          = var.node_type
  payment_type       = "PayAsYouGo"
  zone_id            = var.zone_id
  secondary_zone_id  = var.secondary_zone_id
  vpc_id             = var.vpc_id
  vswitch_id         = var.vswitch_id
  port               = var.port
  password           = var.password
  vpc_auth_mode      = "Open"
  ssl_enabled        = "Enable"
  security_ips       = join(",", var.allowed_cidr_blocks)
  tags               = var.tags
}

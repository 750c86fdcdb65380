# skewless_config is the stack's, with two documented overrides for the local cloud: online_url points at the
# local Redis (moto's ElastiCache endpoint is made up, nothing listens there) and storage_options carry the
# emulator's endpoint and its dummy credentials. A third: the local cloud runs submitted jobs in local mode with the
# DuckDB engine (no Spark cluster behind moto's EMR Serverless), so offline_engine is duckdb here.

output "skewless_config" {
  description = "The stack's skewless_config, pointed at the local cloud's Redis and S3 emulator."
  value = merge(module.stack.skewless_config, {
    online_url          = var.local_redis_url
    online_password_env = null
    offline_engine      = "duckdb"
    storage_options = {
      region            = module.stack.region
      endpoint_url      = var.s3_endpoint
      access_key_id     = "test"
      secret_access_key = "test"
    }
  })
}

output "stack" {
  description = "Every output of the stack, unchanged (ids, ARNs, endpoints)."
  value       = module.stack
}

output "replication_group_id" {
  description = "Id of the Redis replication group."
  value       = aws_elasticache_replication_group.this.id
}

output "replication_group_arn" {
  description = "ARN of the Redis replication group."
  value       = aws_elasticache_replication_group.this.arn
}

output "primary_endpoint_address" {
  description = "Host name of the primary (read-write) endpoint."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "reader_endpoint_address" {
  description = "Host name of the reader endpoint (spreads reads over replicas)."
  value       = aws_elasticache_replication_group.this.reader_endpoint_address
}

output "port" {
  description = "Port Redis listens on."
  value       = var.port
}

output "security_group_id" {
  description = "Security group guarding the Redis port."
  value       = aws_security_group.this.id
}

output "url" {
  description = "rediss:// URL of the primary endpoint (TLS; the AUTH token is not part of it)."
  value       = "rediss://${aws_elasticache_replication_group.this.primary_endpoint_address}:${var.port}/0"
}

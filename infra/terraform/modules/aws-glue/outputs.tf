output "database_name" {
  description = "Name of the Glue database."
  value       = aws_glue_catalog_database.this.name
}

output "database_arn" {
  description = "ARN of the Glue database."
  value       = aws_glue_catalog_database.this.arn
}

output "catalog_id" {
  description = "Id of the Data Catalog (the account id) holding the database."
  value       = aws_glue_catalog_database.this.catalog_id
}

output "application_id" {
  description = "Id of the EMR Serverless application (start_job_run's applicationId)."
  value       = aws_emrserverless_application.this.id
}

output "application_arn" {
  description = "ARN of the EMR Serverless application."
  value       = aws_emrserverless_application.this.arn
}

output "release_label" {
  description = "EMR release of the application."
  value       = var.release_label
}

output "execution_role_arn" {
  description = "ARN of the job runtime role (start_job_run's executionRoleArn)."
  value       = aws_iam_role.this.arn
}

output "execution_role_name" {
  description = "Name of the job runtime role."
  value       = aws_iam_role.this.name
}

output "log_uri" {
  description = "s3:// URI job logs are written under (the submitter sets it on every run)."
  value       = "s3://${var.bucket_name}/${var.log_prefix}"
}

output "policy_json" {
  description = "The role's inline policy document (for review)."
  value       = data.aws_iam_policy_document.this.json
}

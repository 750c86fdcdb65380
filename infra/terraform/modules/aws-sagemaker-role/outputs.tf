output "role_arn" {
  description = "ARN of the SageMaker execution role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the SageMaker execution role."
  value       = aws_iam_role.this.name
}

output "policy_json" {
  description = "The role's inline policy document (for review)."
  value       = data.aws_iam_policy_document.this.json
}

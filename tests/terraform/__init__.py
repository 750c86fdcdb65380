"""CI checks of the Terraform stacks (infra/terraform)."""

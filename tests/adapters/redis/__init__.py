"""The Redis online store (shared by the AWS and Alibaba clouds)."""

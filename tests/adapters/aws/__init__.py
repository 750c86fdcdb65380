"""AWS adapters: S3 offline store and registry."""

"""The examples/ scripts, each run as a user would against the local cloud."""

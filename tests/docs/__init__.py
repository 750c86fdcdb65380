"""The docs site built in strict mode, and every link kept inside the repository."""

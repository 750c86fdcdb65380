"""The `skewless` command line."""

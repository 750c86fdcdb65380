"""The package as a whole: import-layer contracts, dependency ranges, metadata."""

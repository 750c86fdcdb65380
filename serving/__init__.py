"""Model serving (added by the serving issue)."""

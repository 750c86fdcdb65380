"""Cloud adapters: one sub-package per cloud (installed with the matching extra)."""

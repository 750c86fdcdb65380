"""The offline side: the point-in-time join (one PIT definition, its renderings, the narrow gather, key packing)."""

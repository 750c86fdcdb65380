"""Offline side: where feature histories live (OfflineStore) and what computes over them (engines)."""

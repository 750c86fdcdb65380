"""Online side: the OnlineStore contract, read-time semantics, and the embedded SQLite store."""

from .base import EXPIRED, NOT_FOUND, PRESENT, OnlineStore, ViewRead

__all__ = ["EXPIRED", "NOT_FOUND", "PRESENT", "OnlineStore", "ViewRead"]

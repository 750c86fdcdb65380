"""The definition registry: versioned, append-only, with atomic conditional commits."""

from .plan import Change, Plan
from .registry import Registry
from .store import LocalRegistryStore, RegistryStore

__all__ = ["Change", "LocalRegistryStore", "Plan", "Registry", "RegistryStore"]

"""Factories for the adapters that ship with the core (no extra needed)."""

from __future__ import annotations

from pathlib import Path

from pyarrow.fs import LocalFileSystem

from .offline.delta import DeltaOfflineStore
from .offline.duckdb_engine import DuckDBEngine
from .online.sqlite import SQLiteOnlineStore
from .registry.store import LocalRegistryStore
from .sources import Place


def local_path(url: str, repo_path: Path) -> Path:
    """``file:///abs``, ``file://rel``, ``/abs`` or ``rel`` (relative to the repo)."""
    path = url[len("file://"):] if url.startswith("file://") else url
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_path / p)


def sqlite_online(url: str, repo_path: Path, options: dict) -> SQLiteOnlineStore:
    # sqlite:///rel/path.db (relative to the repo), sqlite:////abs/path.db, sqlite:///:memory:
    rest = url.split("://", 1)[1]
    rest = rest[1:] if rest.startswith("/") else rest
    if rest == ":memory:":
        return SQLiteOnlineStore(":memory:")
    return SQLiteOnlineStore(str(local_path(rest, repo_path)))


def local_offline(url: str, repo_path: Path, options: dict) -> DeltaOfflineStore:
    return DeltaOfflineStore(str(local_path(url, repo_path).resolve()))


def local_registry(url: str, repo_path: Path, options: dict) -> LocalRegistryStore:
    return LocalRegistryStore(local_path(url, repo_path))


def local_source(url: str, repo_path: Path, options: dict) -> Place:
    path = str(local_path(url, repo_path).absolute())
    return Place(LocalFileSystem(), path, url, delta_uri=path)


def duckdb_engine(url: str, repo_path: Path, options: dict) -> DuckDBEngine:
    return DuckDBEngine(memory_limit=options.get("memory_limit"), threads=options.get("threads"),
                        temp_directory=options.get("temp_directory"))


__all__ = ["duckdb_engine", "local_offline", "local_registry", "local_source", "sqlite_online"]

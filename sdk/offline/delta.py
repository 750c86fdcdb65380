"""Offline histories as Delta Lake tables (one per view) through ``deltalake``.

Why Delta: appends are atomic commits with optimistic concurrency, every commit is a readable version (so a
training set records the versions it read and can be rebuilt identically), and the files stay plain Parquet that
any engine scans. The same code serves local folders and object stores (``storage_options``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from ..errors import NotFoundError, StoreUnavailable
from .base import HistoryFiles, OfflineStore


EVOLVED = "skewless.schemaEvolved"


class DeltaOfflineStore(OfflineStore):
    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        self.root = root.rstrip("/")
        self.url = self.root
        self.storage_options = storage_options

    def _uri(self, view: str) -> str:
        return f"{self.root}/{view}"

    def _table(self, view: str, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self._uri(view), version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        except DeltaError as exc:
            if version is not None and "version" in str(exc).lower():
                raise NotFoundError(f"history of view {view!r} has no version {version}") from exc
            raise StoreUnavailable(f"cannot open history of {view!r} at {self._uri(view)}: {exc}",
                                   endpoint=self.root) from exc

    def append(self, view: str, table: pa.Table, *, batch: int) -> int:
        before = self._table(view)
        # Files whose columns differ from the table's (a feature added or removed) make scans union by name;
        # the flag is a table property, so snapshots older than the change still read without unioning.
        evolves = before is not None and set(pa.schema(before.schema().to_arrow()).names) != set(table.column_names)
        try:
            # Flag first, then append: a reader never sees the new files without the flag.
            if evolves and before.metadata().configuration.get(EVOLVED) != "true":
                before.alter.set_table_properties({EVOLVED: "true"}, raise_if_not_exists=False)
            write_deltalake(before if before is not None else self._uri(view), table, mode="append",
                            schema_mode="merge", storage_options=self.storage_options,
                            commit_properties=CommitProperties(custom_metadata={"skewless.batch": str(batch)}))
        except DeltaError as exc:
            raise StoreUnavailable(f"append to history of {view!r} failed: {exc}", endpoint=self.root) from exc
        dt = self._table(view)
        assert dt is not None
        return dt.version()

    def version(self, view: str) -> int | None:
        dt = self._table(view)
        return None if dt is None else dt.version()

    def files(self, view: str, version: int | None) -> HistoryFiles:
        if version is None:
            return HistoryFiles(view, None, [], {}, self.storage_options)
        dt = self._table(view, version)
        if dt is None:
            raise NotFoundError(f"view {view!r} has no history (asked for version {version})")
        schema = pa.schema(dt.schema().to_arrow())
        evolved = dt.metadata().configuration.get(EVOLVED) == "true"
        return HistoryFiles(view, version, list(dt.file_uris()), {f.name: f.type for f in schema},
                            self.storage_options, evolved)

    def drop(self, view: str) -> None:
        if "://" not in self.root or self.root.startswith("file://"):
            shutil.rmtree(Path(self._uri(view).removeprefix("file://")), ignore_errors=True)
        else:  # object stores: the adapter overrides this
            raise NotImplementedError(f"drop is not supported for {self.root}")

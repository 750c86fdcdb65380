"""Training sets as registered objects: a name for what a model was trained on, stored in the feature registry.

A training set records what rebuilds it and what describes it: the history version each view was read at
(``snapshot``), the feature refs, the feature service (when one was asked for), the point-in-time mode and a
fingerprint of the entity rows, and, when asked for, its labels (``label_view:label`` refs) and its split (the
rule and each split's rows and time range: ``split_of`` tells which split any rows fall in). Registering is idempotent (the same definition under the same name is a no-op);
another definition under a taken name is a ``DefinitionError`` unless ``new_version=True``, which commits it as
the name's next version (the registry's per-object versions). A model version points at ``name`` + ``version``.

``statistics`` is the reference the write-time statistics hang on: view -> history version whose statistics
describe this training set (today the snapshot itself; statistics stored per history version need no copy here).
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from .definitions import check_name
from .errors import ConflictError, DefinitionError, ValidationError
from .splits import Split

KIND = "training_set"
_ATTEMPTS = 50
MANAGED_TAG = "skewless.kind"  # the registry keeps managed objects when a repo's `apply` prunes


@dataclass(frozen=True)
class TrainingSet:
    name: str
    features: list[str]
    snapshot: dict[str, int | None]  # view -> history version it was read at
    feature_service: str | None = None
    point_in_time: str = "event"
    entity_fingerprint: str | None = None  # sha256 of the entity rows (Arrow IPC, or the files' bytes)
    entity_rows: int | None = None
    statistics: dict[str, int | None] = field(default_factory=dict)  # view -> history version its stats are of
    description: str = ""
    tags: dict[str, str] = field(default_factory=lambda: {MANAGED_TAG: KIND})
    labels: list[str] = field(default_factory=list)  # "label_view:label" refs (skewless.labels)
    split: dict | None = None  # the request's skewless.Split (Split.to_dict), keys and time column fixed
    split_rows: dict | None = None  # per split: rows, first and last row time (Split.count)
    # stages the request accepted leakage from (allow_leakage=), each with the overlaps found (empty: none)
    allowed_leakage: dict = field(default_factory=dict)
    kind: str = KIND

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("kind")
        for k in ("labels", "split", "split_rows", "allowed_leakage"):  # absent when unused: records written before them compare equal
            if not d[k]:
                d.pop(k)
        return d

    def split_of(self, rows: pa.Table) -> pa.Array:
        """Which split each of ``rows`` (with this training set's time column and split keys) falls in under its
        recorded split rule, null for none: e.g. whether rows an upstream stage was fit on are in the test split."""
        if not self.split:
            raise ValidationError(f"training set {self.name!r} was registered without a split")
        return Split.from_dict(self.split).assign(rows)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingSet":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "kind"})

    @property
    def views(self) -> list[str]:
        return list(self.snapshot)


def fingerprint(entity: Any) -> tuple[str | None, int | None]:
    """(sha256, rows) of an entity table as given to retrieval: a pandas/Arrow table hashed as Arrow IPC, a Parquet
    path or glob as its files' bytes (in name order); a SQL query has no stable content here: (None, None)."""
    h = hashlib.sha256()
    if isinstance(entity, str):
        files = sorted(glob.glob(entity))
        if not files:
            return None, None
        for f in files:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest(), None
    if hasattr(entity, "to_arrow") and not isinstance(entity, pa.Table):
        entity = entity.to_arrow()
    if not isinstance(entity, (pa.Table, pa.RecordBatch)):
        try:
            entity = pa.Table.from_pandas(entity, preserve_index=False)
        except (TypeError, ValueError, pa.ArrowException):
            return None, None
    table = entity if isinstance(entity, pa.Table) else pa.Table.from_batches([entity])
    table = table.replace_schema_metadata(None).combine_chunks()

    class _Sink:  # hashes the IPC bytes without holding them
        closed = False

        def write(self, data):
            h.update(data)
            return len(data)

        def flush(self):
            pass

    with pa.ipc.new_stream(pa.PythonFile(_Sink(), mode="w"), table.schema) as w:
        w.write_table(table)
    return h.hexdigest(), table.num_rows


def from_job(job, name: str, *, description: str = "") -> TrainingSet:
    snapshot = dict(job.snapshot)
    fp, rows = getattr(job, "entity_fingerprint", (None, None))
    split = getattr(job, "split", None)
    return TrainingSet(name=name, features=list(job.features), snapshot=snapshot,
                       feature_service=getattr(job, "feature_service", None),
                       point_in_time=getattr(job, "point_in_time", "event"), entity_fingerprint=fp, entity_rows=rows,
                       statistics=dict(snapshot), description=description, labels=list(getattr(job, "labels", [])),
                       split=split.to_dict() if split is not None else None,
                       split_rows=job.split_rows if split is not None else None,
                       allowed_leakage=dict(getattr(job, "allowed_leakage", None) or {}))


def register(store, ts: TrainingSet, *, new_version: bool = False) -> tuple[TrainingSet, int]:
    """Commit ``ts`` to the feature registry; (the training set, its version). Idempotent for the same definition;
    another definition under the name is a DefinitionError unless ``new_version``."""
    check_name("training set", ts.name)
    if not ts.features or not ts.snapshot:
        raise ValidationError(f"training set {ts.name!r}: no features or no snapshot to register")
    # read_offline on every view it holds, before anything is committed: registering records what was read
    store.authorize_read(list(ts.features))
    spec = ts.to_dict()
    for _ in range(_ATTEMPTS):
        state = store._registry_state(fresh=True)
        entry = state.objects.get(KIND, {}).get(ts.name)
        if entry is not None and entry["spec"] != spec and not new_version:
            changed = sorted(k for k in spec if spec[k] != entry["spec"].get(k))
            raise DefinitionError(f"training set {ts.name!r} (version {entry['version']}) is registered with "
                                  f"another definition (differs in {', '.join(changed)}); register it under another "
                                  "name, or pass new_version=True to make this its next version")
        try:
            store.registry.put(KIND, ts.name, spec, message=f"register training set {ts.name}")
        except ConflictError:  # another commit landed since the read: re-read, re-check, retry
            continue
        state = store._registry_state(fresh=True)
        return ts, state.object_version(KIND, ts.name)
    raise ConflictError(f"training set {ts.name!r}: {_ATTEMPTS} concurrent registry commits won first")


def pinned_snapshots(registry_store) -> list[tuple[str, int, dict[str, int | None]]]:
    """(name, version, snapshot) of every training set version ever registered, read from every registry version
    (a model version may point at an older one): the history versions those snapshots need kept (retention) and
    whose rows they hold (forget)."""
    import json

    seen: dict[tuple[str, int], dict] = {}
    for v in registry_store.versions():
        for name, entry in json.loads(registry_store.read(v)).get("objects", {}).get(KIND, {}).items():
            seen.setdefault((name, entry["version"]), entry["spec"].get("snapshot") or {})
    return [(n, v, snap) for (n, v), snap in sorted(seen.items())]

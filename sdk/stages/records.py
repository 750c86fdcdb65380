"""Run records: one per completed stage run, kept beside the registry versions (registry-store records, written
whole and once): ``stages/<stage>/runs/<n>.json``, ``n`` counting the stage's completed runs. A run's ``key`` is
a hash of everything it read — the stage's definition, each input's definition and history versions, its output
view's definition, the model version, the entity rows — and the stage is fresh when its newest record has the key
a run would have now (a stage whose inputs went back to an earlier state is stale: its view holds a later run's
rows). The record also holds what the leakage guard asks of a stage: the training sets it was fit on."""

from __future__ import annotations

import hashlib
import json

from ..errors import ConfigError, ConflictError

PREFIX = "stages/"


def run_key(what: dict) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _path(stage: str, n: int) -> str:
    return f"{PREFIX}{stage}/runs/{n:010d}.json"


def _no_records(registry_store) -> ConfigError:
    return ConfigError(f"the registry store {registry_store.url} keeps no records: stage runs cannot be recorded "
                       "(resumable, idempotent runs need them)")


def _keys(registry_store, stage: str) -> list[str]:
    try:
        return sorted(k for k in registry_store.record_keys(f"{PREFIX}{stage}/runs/") if k.endswith(".json"))
    except NotImplementedError:
        raise _no_records(registry_store) from None


def completed(registry_store, stage: str) -> list[dict]:
    """Every completed run of ``stage``, oldest first (each with its number ``n``)."""
    return [json.loads(registry_store.read_record(k)) for k in _keys(registry_store, stage)]


def latest(registry_store, stage: str) -> dict | None:
    """The newest completed run of ``stage`` (None: never run), read alone."""
    keys = _keys(registry_store, stage)
    return json.loads(registry_store.read_record(keys[-1])) if keys else None


def put(registry_store, stage: str, doc: dict) -> None:
    """Record completed run ``doc["n"]``. Already recorded with the same key (the same run, recorded by a
    concurrent process) is fine; with another key, another run of the stage completed first: ConflictError."""
    path = _path(stage, doc["n"])
    try:
        registry_store.put_record(path, json.dumps(doc, sort_keys=True, indent=1).encode())
    except ConflictError:
        other = json.loads(registry_store.read_record(path))
        if other["key"] != doc["key"]:
            raise ConflictError(f"stage {stage!r}: another run (of other inputs) completed as run {doc['n']} first; "
                                "run it again") from None
    except NotImplementedError:
        raise _no_records(registry_store) from None

"""Run records: one per completed stage run, kept beside the registry versions (registry-store records, written
whole and once): ``stages/<stage>/runs/<key>.json``. ``key`` is a hash of everything the run read — the stage's
definition, each input's definition version and history version, the model version — so a run whose record
exists is fresh, and the same inputs never run twice. The record holds what the leakage guard asks of a stage: the
training sets it was fit on."""

from __future__ import annotations

import hashlib
import json

from ..errors import ConfigError, ConflictError, NotFoundError

PREFIX = "stages/"


def run_key(what: dict) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _key(stage: str, key: str) -> str:
    return f"{PREFIX}{stage}/runs/{key}.json"


def _no_records(registry_store) -> ConfigError:
    return ConfigError(f"the registry store {registry_store.url} keeps no records: stage runs cannot be recorded "
                       "(resumable, idempotent runs need them)")


def find(registry_store, stage: str, key: str) -> dict | None:
    try:
        return json.loads(registry_store.read_record(_key(stage, key)))
    except NotFoundError:
        return None
    except NotImplementedError:
        raise _no_records(registry_store) from None


def put(registry_store, stage: str, key: str, doc: dict) -> None:
    """Record a completed run; a record already there (a concurrent run of the same inputs) is the same run."""
    try:
        registry_store.put_record(_key(stage, key), json.dumps(doc, sort_keys=True, indent=1).encode())
    except ConflictError:
        pass
    except NotImplementedError:
        raise _no_records(registry_store) from None


def completed(registry_store, stage: str) -> list[dict]:
    """Every completed run of ``stage``, oldest first."""
    try:
        keys = registry_store.record_keys(f"{PREFIX}{stage}/runs/")
    except NotImplementedError:
        return []
    docs = [json.loads(registry_store.read_record(k)) for k in keys if k.endswith(".json")]
    return sorted(docs, key=lambda d: d["completed_at"])

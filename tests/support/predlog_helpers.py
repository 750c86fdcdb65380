"""A small model manifest and prediction-log rows for tests of the log writer itself (no model training needed):
one view ``v`` keyed by ``k`` (Int64) with a Float64 feature ``x``, one output ``y``."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from skewless.definitions import EVENT_TS
from skewless.serving import prediction_log
from skewless.serving.artifact import FORMAT, ModelManifest

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def manifest(name: str = "m") -> ModelManifest:
    view = {"name": "v", "entities": ["k"], "join_keys": {"k": "Int64"},
            "schema": [{"name": "k", "dtype": "Int64", "description": "", "tags": {}},
                       {"name": "x", "dtype": "Float64", "description": "", "tags": {}}],
            "source": None, "ttl_seconds": None, "owner": "", "online": True, "tags": {}, "description": ""}
    return ModelManifest(name=name, flavor="sklearn", flavor_options={}, feature_service="s", feature_refs=["v:x"],
                         feature_views={"v": view}, inputs=[{"name": "x", "dtype": "Float64", "source": "v:x"}],
                         outputs=[{"name": "y", "dtype": "Float64"}], request_keys={"k": "Int64"}, format=FORMAT)


def rows(m: ModelManifest, keys: list, request: str = "r") -> dict[str, list]:
    """A chunk as ServedModel hands it to the writer: one row per key."""
    n = len(keys)
    chunk: dict[str, list] = {"k": list(keys), EVENT_TS: [T0 + timedelta(seconds=i) for i in range(n)]}
    for col, (_, kind, _) in prediction_log.columns(m).items():
        chunk[col] = {"meta": None, "view_ts": [T0] * n, "view_status": ["PRESENT"] * n,
                      "feature": [float(i) for i in range(n)], "output": [0.5] * n}[kind]
    chunk.update({"request_id": [f"{request}{i}" for i in range(n)], "request_row": [0] * n,
                  "model_name": [m.name] * n, "model_version": [1] * n})
    return chunk


@contextmanager
def history_down(store, view: str):
    """The view's history unreachable (its folder replaced by a file: every open fails, as for a store that is
    gone), restored on exit."""
    path = Path(store.offline.root) / view
    aside = path.with_name(path.name + ".aside")
    if path.exists():
        os.replace(path, aside)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("the store is down")
    try:
        yield
    finally:
        history_up(store, view)


def history_up(store, view: str) -> None:
    """Undo ``history_down`` (also after the process that took it down was killed)."""
    path = Path(store.offline.root) / view
    aside = path.with_name(path.name + ".aside")
    if path.is_file():
        path.unlink()
    if aside.exists():
        os.replace(aside, path)


def committed_keys(store, model: str = "m") -> list:
    if store.offline.version(prediction_log.view_name(model)) is None:
        return []
    return sorted(prediction_log.read_log(store, model).column("k").to_pylist())


def clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

"""Feast 0.67 itself as the feature server's client: a Feast repo whose online store is ``remote`` (``path:`` our
server) and whose auth sends our bearer token (Feast's ``kubernetes`` auth with a ``user_token``), run as a
subprocess from Feast's own venv, built once in ``$SKEWLESS_CACHE`` (``skewless.process.cached_venv``, as
``eas_client``): Feast's pins conflict with ours.

The Feast repo declares the same entity and views as ``tests.support.feature_server.driver_repo`` (Feast resolves
references against its own registry before it asks the remote store).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from skewless.process import cached_venv

PIN = "feast[redis]==0.67.0"

_SCRIPT = r"""
import json, sys
from datetime import timedelta
from pathlib import Path
import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

a = json.loads(sys.argv[1])
repo = Path(a["repo"])
repo.mkdir(parents=True, exist_ok=True)
(repo / "feature_store.yaml").write_text(f'''project: fs
registry: {repo}/registry.db
provider: local
online_store:
  type: remote
  path: {a["url"]}
auth:
  type: kubernetes
  user_token: {a["token"]}
entity_key_serialization_version: 3
''')
data = repo / "driver.parquet"
pd.DataFrame({"driver_id": [1], "conv_rate": [0.0], "trips": [0], "city": ["x"], "rating": [0.0],
              "event_timestamp": pd.to_datetime(["2025-01-01"], utc=True)}).to_parquet(data)
src = FileSource(path=str(data), timestamp_field="event_timestamp")
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats = FeatureView(name="driver_stats", entities=[driver], ttl=timedelta(0), source=src,
                    schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64)])
profile = FeatureView(name="driver_profile", entities=[driver], ttl=timedelta(0), source=src,
                      schema=[Field(name="city", dtype=String)])
service = FeatureService(name="driver_service", features=[stats[["conv_rate"]], profile])
store = FeatureStore(repo_path=str(repo))
store.apply([driver, stats, profile, service])
out = {}
try:
    rows = [{"driver_id": i} for i in a["ids"]]
    out["features"] = store.get_online_features(features=["driver_stats:conv_rate", "driver_stats:trips",
                                                          "driver_profile:city"], entity_rows=rows).to_dict()
    out["service"] = store.get_online_features(features=store.get_feature_service("driver_service"),
                                               entity_rows=rows, full_feature_names=True).to_dict()
    if a.get("write"):
        store.write_to_online_store("driver_stats", pd.DataFrame({
            "driver_id": [42], "conv_rate": [0.42], "trips": [4200],
            "event_timestamp": pd.to_datetime([a["write"]], utc=True)}))
        out["written"] = store.get_online_features(features=["driver_stats:conv_rate"],
                                                   entity_rows=[{"driver_id": 42}]).to_dict()
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out, default=str))
"""


def ensure_venv() -> Path:
    """Feast's venv's python, built on first use."""
    return cached_venv("feast-0.67", sys.executable, [PIN])


def feast_reads(python: Path, repo: Path, url: str, token: str, ids: list[int], write: str | None = None) -> dict:
    """What Feast's ``get_online_features(...).to_dict()`` returns through the remote store at ``url``: for three
    features (``features``) and the feature service with full names (``service``); with ``write`` (an ISO time),
    also a row written by ``write_to_online_store`` and read back (``written``). ``error``: what Feast raised."""
    args = dict(repo=str(repo), url=url, token=token, ids=ids, write=write)
    proc = subprocess.run([str(python), "-c", _SCRIPT, json.dumps(args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

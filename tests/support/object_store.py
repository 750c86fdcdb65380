"""What the object-store backends' tests share (S3, OSS): a feature repo whose registry and offline histories live
under one fresh prefix of a bucket, and the checks every such backend must pass beyond the conformance suites."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pandas as pd
import pytest
import yaml

import skewless as sk


def fresh_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def object_store_repo(tmp_path, base_url: str, options: dict, project: str) -> sk.FeatureStore:
    """A repo in ``tmp_path`` with registry ``<base_url>/<fresh>/registry`` and offline ``.../offline`` (DuckDB)."""
    prefix = f"{base_url.rstrip('/')}/{fresh_prefix()}"
    doc = {"project": project,
           "registry": {"url": f"{prefix}/registry", "options": options},
           "offline": {"url": f"{prefix}/offline", "engine": "duckdb", "storage_options": options},
           "online": "sqlite:///online.db"}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "skewless.yaml").write_text(yaml.safe_dump(doc))
    return sk.FeatureStore(tmp_path)


def sources_repo(tmp_path, sources: dict) -> sk.FeatureStore:
    """An embedded repo whose batch sources' options (by URL scheme) come from skewless.yaml's `sources:`."""
    sk.init_repo(tmp_path)
    doc = yaml.safe_load((tmp_path / "skewless.yaml").read_text())
    doc["sources"] = sources
    (tmp_path / "skewless.yaml").write_text(yaml.safe_dump(doc))
    return sk.FeatureStore(tmp_path)


def one_view(store: sk.FeatureStore, name: str = "v") -> sk.FeatureView:
    ent = sk.Entity("ent", join_keys=["k"])
    view = sk.FeatureView(name, entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])
    store.apply([ent, view])
    return view


def rows(*keys: int, x: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"k": list(keys), "event_timestamp": [pd.Timestamp("2024-01-01", tz="UTC")] * len(keys),
                         "x": [x] * len(keys)})


def check_permissions_and_audit_log_in_the_store(store: sk.FeatureStore, list_keys) -> None:
    """A governed repo on an object-store registry: a denied ingest writes nothing and its denial, like the apply
    before it, is a record under the registry's ``audit/`` prefix (listed with the cloud's own client)."""
    view = one_view(store)
    store.ingest("v", rows(1))
    admin = sk.FeatureStore(store.repo_path, principal="admin")
    store.apply([view, *store.list_entities(), sk.Principal("admin"), sk.Principal("intern"),
                 sk.Role("owner", ["apply", "ingest"]), sk.Grant("admins", role="owner", principals=["admin"])])
    history = store.offline.version("v")
    intern = sk.FeatureStore(store.repo_path, principal="intern")
    with pytest.raises(sk.PermissionDenied):
        intern.ingest("v", rows(2, x=9.0))
    assert store.offline.version("v") == history
    assert admin.ingest("v", rows(3)).rows == 1
    records = [(r.principal, r.action, r.outcome) for r in store.audit_log.records()]
    assert records[0][1] == "apply" and records[-2:] == [("intern", "ingest", "denied"), ("admin", "ingest", "allowed")]
    keys = list_keys(store.registry.store.loc.key("audit") + "/")
    assert len(keys) == len(records) and all(k.endswith(".json") for k in keys)


def check_history_lives_in_the_store_and_drop_removes_it(tmp_path, store: sk.FeatureStore, list_keys) -> None:
    """``list_keys(prefix)``: the object keys under ``prefix`` in the bucket, listed with the cloud's own client."""
    one_view(store)
    store.ingest("v", rows(1))
    prefix = store.offline.loc.key("v") + "/"
    keys = list_keys(prefix)
    assert any(k.endswith(".parquet") for k in keys) and any("_delta_log/" in k for k in keys)
    assert not list(tmp_path.glob("**/*.parquet"))  # nothing kept in the repo
    store.offline.drop("v")
    assert list_keys(prefix) == []
    assert store.offline.version("v") is None  # the store stays usable after a drop
    store.ingest("v", rows(2))
    assert store.offline.version("v") is not None


def check_concurrent_applies_never_lose_an_update(tmp_path, first: sk.FeatureStore, writers: int = 6) -> None:
    """Stores apply different views on one registry at once: each lands or gets ConflictError, and every view that
    landed is in the final state (no update silently lost)."""
    from skewless.errors import ConflictError

    ent = sk.Entity("ent", join_keys=["k"])
    first.apply([ent])
    barrier, outcomes = threading.Barrier(writers), []

    def apply(i):
        store = sk.FeatureStore(tmp_path)
        view = sk.FeatureView(f"v{i}", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])
        store.registry.state()
        barrier.wait()
        try:
            store.apply([view])
            outcomes.append(("ok", f"v{i}"))
        except ConflictError:
            outcomes.append(("conflict", f"v{i}"))
    threads = [threading.Thread(target=apply, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = {name for status, name in outcomes if status == "ok"}
    assert len(outcomes) == writers and winners
    state = first.registry.state()
    assert state.version == 1 + len(winners) and first.registry.store.versions() == list(range(1, state.version + 1))
    assert {v.name for v in state.list("feature_view")} == winners


def check_endpoint_that_never_answers_fails_within_bounds(calls_for) -> None:
    """``calls_for(endpoint_url)``: store calls (with read_timeout 1 and max_attempts 2) against that endpoint, each
    of which must fail with StoreUnavailable well within the bounds."""
    from skewless.errors import StoreUnavailable

    with socket.socket() as hole:  # accepts connections (backlog) but never replies
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        for call in calls_for(f"http://127.0.0.1:{hole.getsockname()[1]}"):
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailable):
                call()
            assert time.monotonic() - t0 < 15


def check_forget_leaves_nothing_in_the_bucket(store: sk.FeatureStore, list_keys, read_object) -> None:
    """``forget`` on an object-store history: the report, then every Parquet object under the offline prefix (read
    with the cloud's own client: old versions' files included) holds no row of the key; the newest version reads the
    others (their strings too: the DELETE's rewritten file); the pinned snapshot that held it refuses to rebuild."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from skewless.errors import SnapshotExpired

    ent = sk.Entity("person", join_keys=["k"])
    store.apply([ent, sk.FeatureView("people", [ent], [sk.Field("k", sk.Int64), sk.Field("name", sk.String)])])
    t = pd.Timestamp("2024-01-01", tz="UTC")
    store.ingest("people", pd.DataFrame({"k": [1, 2], "event_timestamp": [t, t], "name": ["ann", "bob"]}))
    entities = pd.DataFrame({"k": [2, 1], "event_timestamp": [t + pd.Timedelta(days=1)] * 2})
    store.get_historical_features(entities, ["people:name"]).register("ts")
    store.ingest("people", pd.DataFrame({"k": [3], "event_timestamp": [t], "name": ["cy"]}))
    report = store.forget("person", [1], purge_now=True)
    assert report.offline_rows == {"people": 1} and report.online_entities == {"people": 1}
    assert report.training_sets == ["ts@1"] and report.complete
    # the leakage guard's record of the training set's rows, read with the cloud's client: the entity's hash is gone
    assert report.training_rows == {"ts@1": 1}
    from skewless import training_rows

    kept = pq.read_table(io.BytesIO(read_object(store.registry.store.loc.key(training_rows.record_key("ts", 1)))))
    ours = training_rows.entity_hashes(pa.table({"k": pa.array([1, 2], pa.int64())}), ["k"], {"k": pa.int64()})
    assert kept.column("entity").to_pylist() == [ours[1].as_py()]  # k=2's row only
    prefix = store.offline.loc.key("people") + "/"
    parquet = [k for k in list_keys(prefix) if k.endswith(".parquet")]
    assert parquet
    for key in parquet:
        table = pq.read_table(io.BytesIO(read_object(key)))
        assert pc.sum(pc.equal(table.column("k"), 1)).as_py() in (None, 0), key
    got = store.get_historical_features(entities.assign(k=[2, 3]), ["people:name"]).to_pandas()
    assert got["name"].tolist() == ["bob", "cy"]
    with pytest.raises(SnapshotExpired):
        store.get_historical_features(entities, ["people:name"], snapshot=store.get_training_set("ts").snapshot)
    assert list_keys(store.registry.store.loc.key("forget") + "/")  # the journal lives beside the registry


def check_stages_in_the_store(store: sk.FeatureStore, list_keys) -> None:
    """Stages on an object-store registry: each completed run is a record under the registry's ``stages/`` prefix (a
    rerun is fresh: none added), a registered training set's kept rows one under ``training_sets/``, and the leakage
    guard reads them back from there (``list_keys``: as in the checks above)."""
    from skewless.repo import load_objects
    from skewless.stages import Stage, run
    from tests.support.stages_repo import CUSTOMERS, FEATURES, TEST_FROM, activity_rows, entity_rows

    (store.repo_path / "features.py").write_text(FEATURES)
    objects = load_objects(store.repo_path)
    store.apply(objects, prune=True)
    store.ingest("activity", activity_rows())
    assert [r.status for r in run(store, "rank")] == ["ran", "ran"]
    assert [r.status for r in run(store, "rank")] == ["fresh", "fresh"]
    runs = list_keys(store.registry.store.loc.key("stages") + "/")
    assert sorted(k.split("/stages/", 1)[1] for k in runs) == ["rank/runs/0000000001.json",
                                                               "scale/runs/0000000001.json"]
    store.get_historical_features(entity_rows(), ["activity:spend"]).register("every_month")
    kept = list_keys(store.registry.store.loc.key("training_sets") + "/")
    assert [k.split("/training_sets/", 1)[1] for k in kept] == ["every_month/v0000000001.rows.parquet"]
    scale = next(o for o in objects if o.name == "scale")
    fitted = sk.FeatureView("fitted", entities=["customer"],
                            schema=[sk.Field("customer_id", sk.Int64), sk.Field("spend_scaled", sk.Float64)])
    fit = Stage("fit_scale", inputs=["activity", "training_set/every_month"], output=fitted, transform=scale.transform)
    store.apply([fitted, fit])
    run(store, "fit_scale", objects=[fit])
    with pytest.raises(sk.LeakageError) as info:
        store.get_historical_features(entity_rows(), ["fitted:spend_scaled"], split=sk.Split(time={"test": TEST_FROM}))
    assert (info.value.stage, info.value.rows) == ("fit_scale", CUSTOMERS * 3)

"""``forget``: an entity's rows erased from every store (local Delta histories incl. a real prediction log, SQLite
rows and aggregation tiles), then a full scan of every store finds nothing of it — every Parquet file under the
offline root (old versions included), every SQLite table; the report names the registered training sets that held
it; a kill -9 at each step and a re-run completes without redoing; and history retention: old versions expire
except those a training set pins, an expired snapshot raises SnapshotExpired."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.errors import SnapshotExpired
from skewless.serving import prediction_log
from tests.support import killed_run, predlog_helpers

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
D, H = timedelta(days=1), timedelta(hours=1)
GONE = 1  # the customer forgotten (join key k)


def _repo(path: Path, retention: timedelta | None = None) -> sk.FeatureStore:
    fs = sk.init_repo(path)
    k = sk.Entity("k", ["k"], dtype=sk.Int64)
    m = sk.Entity("m", ["m"], dtype=sk.Int64)
    fs.apply([k, m,
              sk.FeatureView("profile", [k], [sk.Field("k", sk.Int64), sk.Field("name", sk.String)],
                             history_retention=retention),
              sk.FeatureView("pairs", [k, m], [sk.Field("k", sk.Int64), sk.Field("m", sk.Int64),
                                               sk.Field("y", sk.Float64)]),
              sk.AggregatedView("txn", [k], [sk.Field("k", sk.Int64), sk.Field("amount", sk.Float64),
                                             sk.Field("txn", sk.String)],
                                [sk.Aggregation("amount", "sum", 30 * D)], hop=H, event_id="txn"),
              sk.FeatureView("other", [m], [sk.Field("m", sk.Int64), sk.Field("z", sk.Float64)])])
    # the model's prediction log: its view registered as the model server does, rows written by its real writer
    manifest = predlog_helpers.manifest("m1")
    fs.apply([prediction_log.log_view(manifest)])
    writer = prediction_log.PredictionLogWriter(fs, manifest, spill_dir=path / "spool")
    writer.add(predlog_helpers.rows(manifest, [1, 2, 3, 1]))
    assert writer.close()
    return fs


def _ingest(fs: sk.FeatureStore, keys: list[int], when: datetime) -> None:
    fs.ingest("profile", pd.DataFrame({"k": keys, "event_timestamp": [when] * len(keys),
                                       "name": [f"person {k}" for k in keys]}))
    fs.ingest("pairs", pd.DataFrame({"k": keys, "m": [7] * len(keys), "event_timestamp": [when] * len(keys),
                                     "y": [float(k) for k in keys]}))
    fs.ingest("txn", pd.DataFrame({"k": keys, "event_timestamp": [when] * len(keys), "amount": [10.0] * len(keys),
                                   "txn": [f"t{k}-{when:%j}" for k in keys]}))
    fs.ingest("other", pd.DataFrame({"m": [7], "event_timestamp": [when], "z": [1.0]}))


def _entities(keys: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "m": [7] * len(keys), "event_timestamp": [T0 + 10 * D] * len(keys)})


def _setup(path: Path, retention: timedelta | None = None) -> sk.FeatureStore:
    fs = _repo(path, retention)
    _ingest(fs, [2, 3], T0)
    fs.get_historical_features(_entities([2, 3]), ["profile:name"]).register("before")  # no row of GONE
    _ingest(fs, [GONE, 2], T0 + D)
    fs.get_historical_features(_entities([2]), ["profile:name", "pairs:y"]).register("after")  # GONE's rows in it
    return fs


def scan_everything(fs: sk.FeatureStore, repo: Path, key: int = GONE) -> dict[str, int]:
    """Rows of ``key`` in every Parquet file under the offline root (referenced by any version or not) and in every
    table of the SQLite online store (rows and tiles)."""
    found: dict[str, int] = {}
    root = Path(fs.offline.root.removeprefix("file://"))
    for f in root.rglob("*.parquet"):
        t = pq.read_table(f)
        if "k" in t.column_names:
            n = pc.sum(pc.equal(t.column("k"), key)).as_py() or 0
            if n:
                found[str(f.relative_to(root))] = n
    con = sqlite3.connect(fs.online.path)
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
        if "k" in cols:
            n = con.execute(f'SELECT COUNT(*) FROM "{table}" WHERE k = ?', (key,)).fetchone()[0]
            if n:
                found[f"online:{table}"] = n
    con.close()
    return found


def test_forget_erases_every_store_and_reports_training_sets(tmp_path):
    fs = _setup(tmp_path / "repo")
    before = scan_everything(fs, tmp_path / "repo")
    assert any(k.startswith("profile/") for k in before) and any(k.startswith("predictions_m1/") for k in before)
    assert {"online:fv_profile", "online:fv_pairs", "online:agg_txn"} <= set(before)
    other_online = fs.get_online_features(["profile:name", "txn:amount_sum_30d"], [{"k": 2}], now=T0 + 2 * D)

    report = fs.forget("k", [GONE], purge_now=True)

    assert report.offline_rows == {"profile": 1, "pairs": 1, "txn": 1, "predictions_m1": 2}
    assert report.online_entities == {"profile": 1, "pairs": 1, "txn": 1, "predictions_m1": 0}
    assert report.training_sets == ["after@1"] and report.complete and not report.resumed
    assert scan_everything(fs, tmp_path / "repo") == {}
    # everyone else is untouched, online and offline
    assert fs.get_online_features(["profile:name", "txn:amount_sum_30d"], [{"k": 2}],
                                  now=T0 + 2 * D).to_dict() == other_online.to_dict()
    rows = fs.get_historical_features(_entities([2, 3, GONE]), ["profile:name"]).to_pandas()
    assert rows["name"].tolist()[:2] == ["person 2", "person 3"] and pd.isna(rows["name"].iloc[2])
    # the training set that held the entity refuses to rebuild; the one that never did still rebuilds
    after, before_ts = fs.get_training_set("after"), fs.get_training_set("before")
    with pytest.raises(SnapshotExpired) as exc:
        fs.get_historical_features(_entities([2]), ["profile:name", "pairs:y"], snapshot=after.snapshot)
    assert exc.value.view in ("profile", "pairs")
    again = fs.get_historical_features(_entities([2, 3]), ["profile:name"], snapshot=before_ts.snapshot)
    assert again.to_pandas()["name"].tolist() == ["person 2", "person 3"]
    # audited, with a hash of the keys only
    rec = [r for r in fs.audit_log.records(action="forget")]
    assert len(rec) == 1 and rec[0].resource == "entity:k" and report.keys_sha256[:16] in rec[0].detail
    # forgetting the same keys again redoes nothing
    second = fs.forget("k", [GONE], purge_now=True)
    assert second.resumed and second.offline_rows == report.offline_rows and len(fs.audit_log.records(
        action="forget")) == 1


def test_purge_waits_for_the_views_retention_then_a_retention_run_completes_it(tmp_path):
    fs = _setup(tmp_path / "repo", retention=timedelta(days=30))
    report = fs.forget("k", [GONE])
    assert report.purged["profile"].startswith("pending until") and not report.complete
    assert report.purged["pairs"] == "done"  # no retention declared: purged at once
    left = scan_everything(fs, tmp_path / "repo")
    assert set(left) and all(k.startswith("profile/") for k in left)  # old files of profile only
    # until then the old snapshot still rebuilds, as it was
    after = fs.get_training_set("after")
    old = fs.get_historical_features(_entities([GONE]), ["profile:name"], snapshot={"profile": after.snapshot[
        "profile"]}).to_pandas()
    assert old["name"].tolist() == ["person 1"]
    # a retention run before the time changes nothing of it; after it, the purge completes
    assert fs.retention_run(now=datetime.now(UTC) + 29 * D).forgets_completed == []
    assert scan_everything(fs, tmp_path / "repo") == left
    done = fs.retention_run(now=datetime.now(UTC) + 31 * D)
    assert done.forgets_completed == [report.request]
    assert scan_everything(fs, tmp_path / "repo") == {}
    assert fs.forget("k", [GONE]).complete


CHILD = """
import json, sys
import skewless as sk
r = sk.FeatureStore(sys.argv[1]).forget("k", [1], purge_now=True)
print(json.dumps(r.to_dict()))
"""


@pytest.mark.parametrize("point", ["forget.planned", "forget.offline_deleted:2", "forget.online_deleted:3",
                                   "retention.expiry_recorded:2", "forget.purged:4"])
def test_kill_9_at_each_step_then_a_rerun_completes_without_redoing(tmp_path, point):
    repo = tmp_path / "repo"
    _setup(repo)
    got = killed_run.killed_then_rerun(CHILD, str(repo), kill_at=point, timeout=120)
    assert got["resumed"] and got["complete"]
    # counted once, whatever was done before the kill (the offline counts come from the tagged commits)
    assert got["offline_rows"] == {"profile": 1, "pairs": 1, "txn": 1, "predictions_m1": 2}
    assert got["training_sets"] == ["after@1"]
    assert scan_everything(sk.FeatureStore(repo), repo) == {}
    for view in ("profile", "pairs", "txn", "predictions_m1"):  # one delete commit per view, never two
        hist = sk.FeatureStore(repo).offline._table(view).history()
        assert sum(1 for h in hist if h.get("skewless.forget")) == 1


def test_retention_keeps_every_version_a_training_set_pins_and_expires_the_rest(tmp_path):
    fs = _repo(tmp_path / "repo", retention=timedelta(days=7))
    for day in range(4):
        _ingest(fs, [10 + day], T0 + day * D)
        if day == 1:
            pinned = fs.get_historical_features(_entities([10, 11]), ["profile:name"]).register("pinned")
    fs.offline.compact("profile")  # rewrites the files: only kept versions keep the old ones
    newest = fs.offline.version("profile")
    pin = pinned.snapshot["profile"]
    report = fs.retention_run(["profile"], now=datetime.now(UTC) + 8 * D)
    assert report.expired["profile"]["oldest"] == newest and report.expired["profile"]["kept"] == [pin]
    # the pinned snapshot rebuilds exactly; any other old version refuses
    rebuilt = fs.get_historical_features(_entities([10, 11]), ["profile:name"], snapshot={"profile": pin})
    assert rebuilt.to_pandas()["name"].tolist() == ["person 10", "person 11"]
    with pytest.raises(SnapshotExpired, match="past its retention") as exc:
        fs.get_historical_features(_entities([10]), ["profile:name"], snapshot={"profile": pin + 1})
    assert exc.value.oldest == newest and exc.value.version == pin + 1
    # the newest version reads everything
    assert fs.get_historical_features(_entities([10, 13]), ["profile:name"]).to_pandas()["name"].tolist() == \
        ["person 10", "person 13"]
    # the compacted-away files only the pinned version reads are kept, the others are gone; a second run within the
    # retention changes no file and still reads the pin
    root = Path(fs.offline.root.removeprefix("file://")) / "profile"
    files = sorted(p.name for p in root.glob("*.parquet"))
    assert len(files) == 1 + 2  # the compacted file, the two files version `pin` reads (days 0 and 1)
    fs.retention_run(["profile"], now=datetime.now(UTC) + 8 * D)
    assert sorted(p.name for p in root.glob("*.parquet")) == files
    assert rebuilt.to_pandas()["name"].tolist() == ["person 10", "person 11"]


def test_prediction_log_retention_deletes_old_rows(tmp_path):
    fs = _repo(tmp_path / "repo")
    view = prediction_log.view_name("m1")
    rows = predlog_helpers.T0  # the helper's rows are at T0 + 0..3 s
    report = fs.retention_run(prediction_log_retention=timedelta(days=1),
                              now=rows + timedelta(days=1, seconds=2))  # rows at +0 s and +1 s are older
    assert report.log_rows_deleted == {view: 2}
    left = prediction_log.read_log(fs, "m1")
    assert sorted(left.column("request_id").to_pylist()) == ["r2", "r3"]


def test_cli_forget_and_retention(tmp_path):
    repo = tmp_path / "repo"
    _setup(repo)
    runner = CliRunner()
    out = runner.invoke(app, ["forget", "k", str(GONE), "--purge-now", "--repo", str(repo), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["complete"] and got["offline_rows"]["profile"] == 1 and got["training_sets"] == ["after@1"]
    out = runner.invoke(app, ["forget", "nobody", "1", "--repo", str(repo)])
    assert out.exit_code == 1 and "NotFoundError" in out.output
    out = runner.invoke(app, ["retention", "run", "--prediction-log-days", "36500", "--repo", str(repo), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["log_rows_deleted"] == {"predictions_m1": 0}


def test_forget_by_an_entity_with_two_join_keys(tmp_path):
    fs = sk.init_repo(tmp_path / "repo")
    acct = sk.Entity("account", ["bank", "number"])
    fs.apply([acct, sk.FeatureView("balance", [acct], [sk.Field("bank", sk.String), sk.Field("number", sk.Int64),
                                                       sk.Field("amount", sk.Float64)])])
    fs.ingest("balance", pd.DataFrame({"bank": ["a", "a", "b", "it's"], "number": [1, 2, 1, 1],
                                       "event_timestamp": [T0] * 4, "amount": [1.0, 2.0, 3.0, 4.0]}))
    report = fs.forget("account", [{"bank": "a", "number": 1}, ("it's", 1)], purge_now=True)
    assert report.offline_rows == {"balance": 2} and report.online_entities == {"balance": 2}
    got = fs.get_online_features(["balance:amount"], [{"bank": b, "number": n} for b, n in
                                                     [("a", 1), ("a", 2), ("b", 1), ("it's", 1)]])
    assert got.to_dict()["amount"] == [None, 2.0, 3.0, None]
    left = pq.read_table(str(Path(fs.offline.root.removeprefix("file://")) / "balance"))
    assert sorted(zip(left.column("bank").to_pylist(), left.column("number").to_pylist())) == [("a", 2), ("b", 1)]
    with pytest.raises(sk.ValidationError, match="join keys"):
        fs.forget("account", [("a",)])


def test_forget_needs_ingest_on_every_view_and_a_denial_does_nothing(tmp_path):
    fs = _setup(tmp_path / "repo")
    views = [v for v in fs.list_feature_views()]
    fs.apply([*views, *fs.list_entities(), sk.Principal("admin"), sk.Principal("etl"),
              sk.Role("owner", ["apply", "ingest"]), sk.Grant("admins", role="owner", principals=["admin"]),
              sk.Grant("etl_profile", role="owner", principals=["etl"], resources=["view:profile"])])
    etl = sk.FeatureStore(tmp_path / "repo", principal="etl")
    before = scan_everything(fs, tmp_path / "repo")
    with pytest.raises(sk.PermissionDenied):
        etl.forget("k", [GONE])
    assert scan_everything(fs, tmp_path / "repo") == before
    assert not fs.registry.store.record_keys("forget/")  # nothing recorded either
    report = sk.FeatureStore(tmp_path / "repo", principal="admin").forget("k", [GONE], purge_now=True)
    assert report.complete and scan_everything(fs, tmp_path / "repo") == {}
    assert [r.principal for r in fs.audit_log.records(action="forget")] == ["admin"]


def test_history_retention_is_a_definition_the_plan_shows(tmp_path):
    fs = sk.init_repo(tmp_path / "repo")
    k = sk.Entity("k", ["k"], dtype=sk.Int64)

    def v(retention=None):
        return sk.FeatureView("v", [k], [sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)],
                              history_retention=retention)
    fs.apply([k, v()])
    plan = fs.plan([k, v(timedelta(days=90))])
    assert "history_retention_seconds: None -> 7776000.0" in str(plan) and not plan.breaking
    fs.apply([k, v(timedelta(days=90))])
    assert fs.get_feature_view("v").history_retention == timedelta(days=90)
    with pytest.raises(sk.DefinitionError, match="history_retention"):
        v(timedelta(days=-1))

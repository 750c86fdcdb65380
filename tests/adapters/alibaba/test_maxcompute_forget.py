"""``forget`` on MaxCompute histories (the local MaxCompute emulator, pyodps): the entity's rows erased in place
(``INSERT OVERWRITE`` per affected partition), then a full scan of every table of the store through pyodps finds
nothing of it; registered training sets that held it raise SnapshotExpired, the one that never did still rebuilds;
a re-run redoes nothing; kill -9 at each step (forget's and the store's) then a re-run completes; an ingest racing
the erase neither brings the erased rows back nor loses its own (reproduced deterministically: the erase runs
between the ingest's upload and its commit, and between its start and its upload)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest
from tests.adapters.alibaba.test_maxcompute import mc_repo
from tests.support import killed_run

import skewless as sk
from skewless import ingest as ingest_mod
from skewless.adapters.alibaba.maxcompute_store import MaxComputeOfflineStore
from skewless.errors import SnapshotExpired
from skewless.offline.base import NO_TIES
from skewless.timeutil import new_batch_id

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
D = timedelta(days=1)
GONE = 1  # the customer forgotten (join key k)


def _define(fs: sk.FeatureStore) -> None:
    k = sk.Entity("k", ["k"], dtype=sk.Int64)
    m = sk.Entity("m", ["m"], dtype=sk.Int64)
    fs.apply([k, m,
              sk.FeatureView("profile", [k], [sk.Field("k", sk.Int64), sk.Field("name", sk.String)]),
              sk.FeatureView("pairs", [k, m], [sk.Field("k", sk.Int64), sk.Field("m", sk.Int64),
                                               sk.Field("y", sk.Float64)]),
              sk.FeatureView("other", [m], [sk.Field("m", sk.Int64), sk.Field("z", sk.Float64)])])


def _profile(keys: list[int], when: datetime) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "event_timestamp": [when] * len(keys), "name": [f"person {k}" for k in keys]})


def _ingest(fs: sk.FeatureStore, keys: list[int], when: datetime) -> None:
    fs.ingest("profile", _profile(keys, when))
    fs.ingest("pairs", pd.DataFrame({"k": keys, "m": [7] * len(keys), "event_timestamp": [when] * len(keys),
                                     "y": [float(k) for k in keys]}))
    fs.ingest("other", pd.DataFrame({"m": [7], "event_timestamp": [when], "z": [1.0]}))


def _entities(keys: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "m": [7] * len(keys), "event_timestamp": [T0 + 10 * D] * len(keys)})


def _setup(path, endpoint) -> sk.FeatureStore:
    fs = mc_repo(path, endpoint)
    _define(fs)
    _ingest(fs, [2, 3], T0)
    fs.get_historical_features(_entities([2, 3]), ["profile:name"]).register("before")  # no row of GONE
    _ingest(fs, [GONE, 2], T0 + D)
    _ingest(fs, [GONE], T0 + 2 * D)  # GONE's rows in two date partitions
    fs.get_historical_features(_entities([2]), ["profile:name", "pairs:y"]).register("after")  # GONE's rows in it
    return fs


def scan_everything(fs: sk.FeatureStore, key: int = GONE) -> dict[str, int]:
    """Rows of ``key`` in every table of the store's prefix (histories with every partition and write batch,
    committed or not), counted by MaxCompute SQL through pyodps, and in every table of the SQLite online store."""
    odps, prefix = fs.offline.client.odps, fs.offline.settings.table_prefix
    found = {}
    for table in odps.list_tables(prefix=prefix):
        if "k" not in [c.name for c in table.table_schema.simple_columns]:
            continue
        with odps.execute_sql(f"SELECT COUNT(*) AS n FROM `{table.name}` WHERE k = {key}",
                              hints={"odps.sql.allow.fullscan": "true"}).open_reader() as reader:
            n = [r["n"] for r in reader][0]
        if n:
            found[table.name] = n
    import sqlite3
    con = sqlite3.connect(fs.online.path)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")')]
        if "k" in cols and con.execute(f'SELECT COUNT(*) FROM "{name}" WHERE k = ?', (key,)).fetchone()[0]:
            found[f"online:{name}"] = 1
    con.close()
    return found


def test_forget_erases_the_histories_in_place_and_expires_the_snapshots_that_held_the_entity(tmp_path,
                                                                                                maxcompute_endpoint):
    fs = _setup(tmp_path / "repo", maxcompute_endpoint)
    assert {fs.offline.history_table("profile"), fs.offline.history_table("pairs"), "online:fv_profile"} <= set(
        scan_everything(fs))
    others = fs.get_historical_features(_entities([2, 3]), ["profile:name", "pairs:y"]).to_pandas()
    before_rows = fs.get_training_set("before")

    report = fs.forget("k", [GONE])

    assert report.offline_rows == {"profile": 2, "pairs": 2} and report.training_sets == ["after@1"]
    assert report.complete and report.purged == {"profile": "done", "pairs": "done"}  # nothing left to purge
    assert scan_everything(fs) == {}
    fresh = sk.FeatureStore(fs.repo_path)
    pd.testing.assert_frame_equal(
        fresh.get_historical_features(_entities([2, 3]), ["profile:name", "pairs:y"]).to_pandas(), others)
    # the training set that held the entity refuses to rebuild, with the reason; the one that never did rebuilds
    after = fresh.get_training_set("after")
    with pytest.raises(SnapshotExpired) as exc:
        fresh.get_historical_features(_entities([2]), ["profile:name", "pairs:y"], snapshot=after.snapshot)
    assert exc.value.view in ("profile", "pairs") and "past its retention" in str(exc.value)
    assert f"version {after.snapshot[exc.value.view]}" in str(exc.value)
    again = fresh.get_historical_features(_entities([2, 3]), ["profile:name"], snapshot=before_rows.snapshot)
    assert again.to_pandas()["name"].tolist() == ["person 2", "person 3"]
    # forgetting the same keys again redoes nothing: no new version, the same counts
    versions = {v: fresh.offline.version(v) for v in ("profile", "pairs")}
    second = fresh.forget("k", [GONE])
    assert second.resumed and second.offline_rows == report.offline_rows
    assert {v: fresh.offline.version(v) for v in ("profile", "pairs")} == versions
    # the store's own idempotence, without forget's journal: the tagged erase is found, nothing erased twice
    keyed = {"k": sk.Int64}
    assert fresh.offline.delete_rows("profile", keyed, [(GONE,)], tag=report.request) == (
        2, report.offline_versions["profile"])
    assert fresh.offline.version("profile") == versions["profile"]


CHILD = """
import json, sys
import skewless as sk
r = sk.FeatureStore(sys.argv[1]).forget("k", [1])
print(json.dumps(r.to_dict()))
"""


@pytest.mark.parametrize("point", ["forget.planned", "maxcompute.erase_recorded", "maxcompute.erase_partition",
                                   "forget.offline_deleted:2", "forget.online_deleted:2"])
def test_kill_9_at_each_step_then_a_rerun_completes(tmp_path, maxcompute_endpoint, point):
    repo = tmp_path / "repo"
    fs = _setup(repo, maxcompute_endpoint)
    got = killed_run.killed_then_rerun(CHILD, str(repo), kill_at=point)
    assert got["resumed"] and got["complete"]
    assert got["offline_rows"] == {"profile": 2, "pairs": 2} and got["training_sets"] == ["after@1"]
    assert scan_everything(fs) == {}
    for view in ("profile", "pairs"):  # one erase per view, recorded once, finished once
        metas = [json.loads(r["meta"]) for r in fs.offline._records(view, fs.offline.version(view))]
        assert sum(1 for m in metas if "erase" in m) == 1 and sum(1 for m in metas if "erased" in m) == 1
    rows = fs.get_historical_features(_entities([2, 3]), ["profile:name"]).to_pandas()
    assert rows["name"].tolist() == ["person 2", "person 3"]


def _rows(fs: sk.FeatureStore, keys: list[int], when: datetime) -> tuple[int, pa.Table]:
    view = fs._registry_state(fresh=True).get("feature_view", "profile")
    batch = new_batch_id()
    return batch, ingest_mod.prepare(view, _profile(keys, when), batch=batch, write_time=datetime.now(UTC))


def _names(fs: sk.FeatureStore, keys: list[int]) -> list:
    job = sk.FeatureStore(fs.repo_path).get_historical_features(_entities(keys), ["profile:name"])
    try:
        got = job.to_pandas()
    finally:
        job.close()  # (its entity rows, GONE's key among them, are a table of the store until then)
    return [None if pd.isna(v) else v for v in got["name"]]


def test_an_ingest_uploaded_before_the_erase_and_committed_after_keeps_its_rows_less_the_entitys(
        tmp_path, maxcompute_endpoint):
    fs = _setup(tmp_path / "repo", maxcompute_endpoint)
    batch, rows = _rows(fs, [GONE, 4], T0 + 3 * D)
    erased = []

    def forget_meanwhile(table, prior):  # called by append between its upload and its commit
        if not erased:
            erased.append(sk.FeatureStore(fs.repo_path).forget("k", [GONE]))
        return NO_TIES

    version = fs.offline.append("profile", rows, batch=batch, tie_check=forget_meanwhile)
    assert erased and erased[0].offline_rows["profile"] == 2  # the committed rows: the racing ones were not yet
    assert version > erased[0].offline_versions["profile"]
    assert _names(fs, [4, 2]) == ["person 4", "person 2"]
    assert scan_everything(fs) == {}  # GONE's racing rows too: erased before the ingest committed


class _ForgetBeforeUpload(MaxComputeOfflineStore):
    """The erase starts and finishes after the ingest noted the newest version and before its upload lands: the
    upload brings the erased entity's rows back into the table unless the guard catches it."""

    forget = None

    def _upload(self, view, table, columns):
        if self.forget is not None:
            self.forget, run = None, self.forget
            run()
        return super()._upload(view, table, columns)


def test_an_ingest_uploaded_after_the_erase_does_not_bring_the_entity_back(tmp_path, maxcompute_endpoint):
    fs = _setup(tmp_path / "repo", maxcompute_endpoint)
    store = _ForgetBeforeUpload(fs.offline.settings)
    reports = []
    store.forget = lambda: reports.append(sk.FeatureStore(fs.repo_path).forget("k", [GONE]))
    batch, rows = _rows(fs, [GONE, 4, 5], T0 + 3 * D)

    version = store.append("profile", rows, batch=batch)

    assert reports and store.forget is None and version > reports[0].offline_versions["profile"]
    assert scan_everything(fs) == {}
    assert _names(fs, [4, 5, 2, GONE]) == ["person 4", "person 5", "person 2", None]
    # its first upload was erased whole (a recorded erase of its own batch), then uploaded again less GONE's row
    metas = [json.loads(r["meta"]) for r in store._records("profile", version)]
    assert [m["erase"] for m in metas if "erase" in m][-1].startswith(f"ingest-{batch}-")


class _LoseUpload(MaxComputeOfflineStore):
    """MaxCompute may lose a tunnel upload committing into a partition while an INSERT OVERWRITE rewrites it (the
    emulator runs one write at a time, so it never does): here the erase's rewrite is followed by exactly that
    loss, the batch's rows dropped from the table, before the ingest commits."""

    def lose(self, view, batch):
        hist = self.history_table(view)
        cols = ", ".join(f"`{c.name}`" for c in self.client.odps.get_table(hist).table_schema.simple_columns)
        for p in self.client.odps.get_table(hist).partitions:
            ds = p.partition_spec["ds"]
            self.client.execute(f"INSERT OVERWRITE TABLE `{hist}` PARTITION (ds='{ds}') SELECT {cols} FROM `{hist}` "
                                f"WHERE ds = '{ds}' AND `_skewless_batch` <> {batch}", "lose")


def test_an_ingest_whose_upload_an_erase_lost_uploads_it_again(tmp_path, maxcompute_endpoint):
    fs = _setup(tmp_path / "repo", maxcompute_endpoint)
    store = _LoseUpload(fs.offline.settings)
    batch, rows = _rows(fs, [GONE, 4], T0 + 3 * D)
    done = []

    def forget_and_lose(table, prior):
        if not done:
            done.append(sk.FeatureStore(fs.repo_path).forget("k", [GONE]))
            store.lose("profile", batch)
        return NO_TIES

    store.append("profile", rows, batch=batch, tie_check=forget_and_lose)

    assert done and _names(fs, [4, 2, GONE]) == ["person 4", "person 2", None]
    assert scan_everything(fs) == {}


def test_string_and_composite_keys_render_as_maxcompute_literals(tmp_path, maxcompute_endpoint):
    fs = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    u = sk.Entity("u", ["u", "n"])
    fs.apply([u, sk.FeatureView("names", [u], [sk.Field("u", sk.String), sk.Field("n", sk.Int64),
                                               sk.Field("x", sk.Float64)])])
    odd = ["o'brien", "back\\slash", "both\\'", "plain"]
    fs.ingest("names", pd.DataFrame({"u": odd + odd, "n": [1] * 4 + [2] * 4, "event_timestamp": [T0] * 8,
                                     "x": [float(i) for i in range(8)]}))
    version, keyed = fs.offline.version("names"), {"u": sk.String, "n": sk.Int64}
    gone = [(v, 1) for v in odd[:3]]  # (u, n) pairs: the same names with n=2 stay
    assert fs.offline.count_key_rows("names", version, keyed, gone) == 3
    assert fs.offline.delete_rows("names", keyed, gone, tag="t1") == (3, version + 1)
    newest = fs.offline.version("names")
    assert fs.offline.count_key_rows("names", newest, keyed, [(v, n) for v in odd for n in (1, 2)]) == 5
    assert fs.offline.count_key_rows("names", newest, {"u": sk.String}, [(v,) for v in odd[:3]]) == 3


def test_retention_expires_old_versions_but_the_pinned_ones(tmp_path, maxcompute_endpoint):
    fs = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    k = sk.Entity("k", ["k"], dtype=sk.Int64)
    fs.apply([k, sk.FeatureView("profile", [k], [sk.Field("k", sk.Int64), sk.Field("name", sk.String)],
                                history_retention=timedelta(days=7))])
    for day in range(3):
        fs.ingest("profile", _profile([10 + day], T0 + day * D))
        if day == 0:
            pinned = fs.get_historical_features(_entities([10]), ["profile:name"]).register("pinned")
    newest = fs.offline.version("profile")
    assert fs.retention_run(["profile"], now=datetime.now(UTC) + 3 * D).expired["profile"]["oldest"] == 0  # young
    report = fs.retention_run(["profile"], now=datetime.now(UTC) + 8 * D)
    assert report.expired["profile"] == {"oldest": newest, "kept": [pinned.snapshot["profile"]], "files": 0}
    with pytest.raises(SnapshotExpired):
        fs.get_historical_features(_entities([10]), ["profile:name"], snapshot={"profile": 1})
    job = fs.get_historical_features(_entities([10]), ["profile:name"], snapshot=pinned.snapshot)
    assert job.to_pandas()["name"].tolist() == ["person 10"]


def test_prediction_log_retention_deletes_old_rows(tmp_path, maxcompute_endpoint):
    from skewless.serving import prediction_log
    from tests.support import predlog_helpers

    fs = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    manifest = predlog_helpers.manifest("m1")
    fs.apply([sk.Entity("k", ["k"], dtype=sk.Int64), prediction_log.log_view(manifest)])
    writer = prediction_log.PredictionLogWriter(fs, manifest, spill_dir=tmp_path / "spool")
    writer.add(predlog_helpers.rows(manifest, [1, 2, 3, 1]))
    assert writer.close()
    report = fs.retention_run(prediction_log_retention=timedelta(days=1),
                              now=predlog_helpers.T0 + timedelta(days=1, seconds=2))  # rows at +0 s and +1 s go
    assert report.log_rows_deleted == {prediction_log.view_name("m1"): 2}
    hist = fs.offline.history_table(prediction_log.view_name("m1"))  # every row of the table (read_log reads files)
    with fs.offline.client.odps.execute_sql(f"SELECT request_id FROM `{hist}`",
                                            hints={"odps.sql.allow.fullscan": "true"}).open_reader() as reader:
        assert sorted(r["request_id"] for r in reader) == ["r2", "r3"]


def test_an_ingest_during_an_interrupted_erase_waits_for_it_to_be_finished(tmp_path, maxcompute_endpoint):
    repo = tmp_path / "repo"
    fs = _setup(repo, maxcompute_endpoint)
    killed_run.run(CHILD, str(repo), kill_at="maxcompute.erase_recorded:2")  # pairs erased; profile's recorded
    metas = [json.loads(r["meta"]) for r in fs.offline._records("profile", fs.offline.version("profile"))]
    assert sum(1 for m in metas if "erase" in m) == 1 and not any("erased" in m for m in metas)  # not done
    outcome = []

    def run():
        try:
            outcome.append(fs.ingest("profile", _profile([GONE, 4], T0 + 3 * D), online=False))
        except BaseException as exc:  # (shown by the assertions below)
            outcome.append(exc)
    ingest = threading.Thread(target=run)
    ingest.start()
    ingest.join(3)
    assert ingest.is_alive() and not outcome, outcome  # waiting for the erase its upload may have raced
    resumed = killed_run.last_json(killed_run.run(CHILD, str(repo)))
    ingest.join(60)
    assert outcome and outcome[0].version > resumed["offline_versions"]["profile"], outcome
    assert _names(fs, [4, 2, GONE]) == ["person 4", "person 2", None]
    assert scan_everything(fs) == {}


RACING_CHILD = """
import sys
import skewless as sk
from tests.adapters.alibaba.test_maxcompute_forget import D, GONE, T0, _ForgetBeforeUpload, _rows
fs = sk.FeatureStore(sys.argv[1])
store = _ForgetBeforeUpload(fs.offline.settings)
store.forget = lambda: sk.FeatureStore(sys.argv[1]).forget("k", [GONE])
batch, rows = _rows(fs, [GONE, 4], T0 + 3 * D)
store.append("profile", rows, batch=batch)
"""


def test_an_ingest_killed_while_erasing_its_own_batch_is_finished_by_the_next_one(tmp_path, maxcompute_endpoint):
    repo = tmp_path / "repo"
    fs = _setup(repo, maxcompute_endpoint)
    # the forget erases pairs (1) and profile (2) between the ingest's start and its upload; the ingest's guard
    # records the erase of its own batch (3) and is killed there: its rows, GONE's among them, are left in the table
    killed_run.run(RACING_CHILD, str(repo), kill_at="maxcompute.erase_recorded:3")
    assert scan_everything(fs) == {fs.offline.history_table("profile"): 1}
    store = MaxComputeOfflineStore(fs.offline.settings)
    store.stale_erase_seconds = 0  # (60 s by default)
    batch, rows = _rows(fs, [6], T0 + 3 * D)
    store.append("profile", rows, batch=batch)  # waits on the unfinished erase, finishes it, commits
    assert scan_everything(fs) == {}
    assert _names(fs, [6, 4, 2]) == ["person 6", None, "person 2"]

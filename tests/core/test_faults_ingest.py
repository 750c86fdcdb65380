"""Fault injection on the ingest path: kill -9 at named points (``SKEWLESS_KILL_AT``, see skewless/faults.py), an
online store that is down or hung (a redis-server this test starts, stops and SIGSTOPs on a port of its own), then
a rerun; asserts exact row counts offline and online afterwards: nothing lost, nothing counted twice."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable

import skewless as sk
from skewless.errors import StoreUnavailable, ValidationError
from skewless.ingest import pending_batches
from skewless.localcloud.cloud import redis_binary

UTC = timezone.utc
T = datetime(2024, 1, 1, tzinfo=UTC)
N = 1_000  # rows (and entities) per ingest

# The ingest a child process runs: N rows, one per entity, x = k * 10 + round; prints the IngestResult as JSON.
CHILD = """
import json, sys
from datetime import datetime, timezone
import pandas as pd
import skewless as sk
repo, rnd, batch_id = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
t = datetime(2024, 1, 1, tzinfo=timezone.utc)
n = int(sys.argv[4])
df = pd.DataFrame({"k": range(n), "event_timestamp": [t] * n, "x": [k * 10.0 + rnd for k in range(n)]})
r = sk.FeatureStore(repo).ingest("v", df, batch_id=batch_id)
print(json.dumps({"version": r.version, "already": r.already_ingested, "rows": r.rows, "id": r.batch_id}))
"""


def make_repo(path: Path, online: dict | None = None, store: sk.FeatureStore | None = None) -> sk.FeatureStore:
    """A repo with view ``v`` (k -> x): embedded defaults, ``online`` in place of SQLite, or the given ``store``."""
    store = store or sk.init_repo(path)
    if online is not None:
        cfg = yaml.safe_load((path / "skewless.yaml").read_text())
        cfg["online"] = online
        (path / "skewless.yaml").write_text(yaml.safe_dump(cfg))
        store = sk.FeatureStore(path)
    e = sk.Entity("ent", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])])
    return store


def run_child(repo: Path, rnd: int = 1, batch_id: str = "", kill_at: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    if kill_at:
        env["SKEWLESS_KILL_AT"] = kill_at
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo), str(rnd), batch_id, str(N)], env=env,
                          capture_output=True, text=True, timeout=120)
    if kill_at:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        return None
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def frame(rnd: int) -> pd.DataFrame:
    return pd.DataFrame({"k": range(N), "event_timestamp": [T] * N, "x": [k * 10.0 + rnd for k in range(N)]})


def ingest_here(store: sk.FeatureStore, rnd: int = 1, batch_id: str = "") -> dict:
    """The child's ingest in this process (runs that are not killed need no process of their own)."""
    r = store.ingest("v", frame(rnd), batch_id=batch_id or None)
    return {"version": r.version, "already": r.already_ingested, "rows": r.rows, "id": r.batch_id}


def history(store: sk.FeatureStore, version: int | None = None) -> ds.Dataset | None:
    """The rows of view v at ``version`` (default: the newest), scanned as engines do: the files the store names."""
    version = store.offline.version("v") if version is None else version
    if version is None:
        return None
    files = store.offline.files("v", version)
    paths = [u.split("://", 1)[1] if "://" in u else u for u in files.uris]
    return ds.dataset(paths, format="parquet", filesystem=files.filesystem)


def offline_rows(store: sk.FeatureStore) -> int:
    rows = history(store)
    return 0 if rows is None else rows.count_rows()


def assert_exact_online(store: sk.FeatureStore, rnd: int = 1) -> None:
    got = store.get_online_features(["v:x"], [{"k": k} for k in range(N)]).to_dict()
    assert got["x"] == [k * 10.0 + rnd for k in range(N)]


def assert_exact(store: sk.FeatureStore, rnd: int = 1, offline: int = N) -> None:
    assert offline_rows(store) == offline
    assert_exact_online(store, rnd)
    # Left pending: at most the marker of a write killed before its commit (harmless: the next materialize drops
    # it, as it never knows whether such a write is still in flight); never one of a committed batch.
    rows = history(store)
    committed = set(rows.to_table(columns=["_skewless_batch"]).column(0).to_pylist()) if rows else set()
    assert not set(pending_batches(store.online, "v")) & committed


@pytest.mark.parametrize("batch_id", ["nightly-2024-01-01", ""], ids=["batch_id", "row_hash"])
@pytest.mark.parametrize("point, committed", [
    ("ingest.before_offline_commit", False),  # the marker is set, nothing committed
    ("ingest.after_offline_commit", True),  # committed, nothing online
    ("ingest.online_push_chunk", True),  # committed and pushed, the marker not cleared
])
def test_kill_then_rerun_ingests_exactly_once(tmp_path, point, committed, batch_id):
    store = make_repo(tmp_path / "repo")
    run_child(tmp_path / "repo", batch_id=batch_id, kill_at=point)
    assert offline_rows(store) == (N if committed else 0)
    again = ingest_here(store, batch_id=batch_id)
    assert again["already"] is committed and again["rows"] == N
    assert store.offline.files("v", again["version"]).version == again["version"]  # the reported version exists
    assert_exact(store)
    if batch_id:  # the same batch id once more: still nothing appended
        assert ingest_here(store, batch_id=batch_id)["already"] is True
        assert_exact(store)


def test_batch_ids_are_validated_and_the_row_hash_ignores_layout_and_filled_created_times(tmp_path):
    import pyarrow as pa

    store = make_repo(tmp_path / "repo")
    for bad in ("", "  ", "it's", 'a"b', "back\\slash", "tab\there", "x" * 257, 42):
        with pytest.raises(ValidationError, match="batch_id"):
            store.ingest("v", frame(1), batch_id=bad)
    assert store.offline.version("v") is None  # nothing written
    first = ingest_here(store, rnd=1)
    # the same rows as two chunks (another Arrow layout), ingested later (another filled-in created time)
    table = pa.Table.from_pandas(frame(1), preserve_index=False)
    again = store.ingest("v", pa.concat_tables([table.slice(0, 10), table.slice(10)]))
    assert again.already_ingested and again.batch_id == first["id"]
    changed = frame(1)
    changed.loc[N - 1, "x"] = None  # one value differs: another batch
    assert not store.ingest("v", changed).already_ingested
    assert offline_rows(store) == 2 * N


def test_cli_reports_the_created_version_and_an_already_ingested_batch(tmp_path):
    from typer.testing import CliRunner

    from skewless.cli.main import app

    store = make_repo(tmp_path / "repo")
    for rnd in (1, 2):
        frame(rnd).to_parquet(tmp_path / f"r{rnd}.parquet")
    cli = CliRunner(env={"COLUMNS": "250"})

    def ingest(*args):
        r = cli.invoke(app, ["ingest", "v", *map(str, args), "--repo", str(tmp_path / "repo")], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.stdout.strip()
    first = ingest(tmp_path / "r1.parquet", "--batch-id", "day-1")
    assert first == f"Ingested {N:,} rows into v: history version 0."
    second = ingest(tmp_path / "r2.parquet")
    version = store.offline.version("v")
    assert second == f"Ingested {N:,} rows into v: history version {version}."  # the version created, not + 1
    store.offline.files("v", version)  # exists (the returned number used to give NotFoundError)
    again = ingest(tmp_path / "r1.parquet", "--batch-id", "day-1")
    assert again == ("Already ingested into v (history version 0, batch day-1): nothing appended; its online push "
                     "is complete.")
    assert store.offline.version("v") == version and offline_rows(store) == 2 * N


def test_materialize_repairs_a_push_killed_after_the_commit_without_a_rerun(tmp_path):
    store = make_repo(tmp_path / "repo")
    run_child(tmp_path / "repo", kill_at="ingest.after_offline_commit")
    assert store.get_online_features(["v:x"], [{"k": 0}]).statuses["x"] == ["NOT_FOUND"]
    store.materialize_incremental(T - timedelta(days=1))  # a window holding no rows: only the repair pushes
    assert_exact(store)


def test_orphan_data_files_of_a_killed_write_are_vacuumed_when_old_enough(tmp_path):
    store = make_repo(tmp_path / "repo")
    ingest_here(store, rnd=1)
    table = Path(store.offline._uri("v"))
    before = {p.name for p in table.glob("*.parquet")}
    # What a writer killed between writing its data file and committing leaves: a file no log entry names.
    old, young = table / "part-00000-0-orphan-old-c000.snappy.parquet", table / "part-00000-0-orphan-new-c000.snappy.parquet"
    for f in (old, young):
        pq.write_table(pq.read_table(table / sorted(before)[0]), f)
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    ingest_here(sk.FeatureStore(tmp_path / "repo"), rnd=2)  # the next writer (a process of its own) cleans up
    assert not old.exists() and young.exists()  # a young file may belong to a commit in flight: kept
    assert before <= {p.name for p in table.glob("*.parquet")}  # every committed file kept
    assert_exact(store, rnd=2, offline=2 * N)
    for v in range(store.offline.version("v") + 1):  # every version still reads
        DeltaTable(str(table), version=v).count()
    assert store.offline.clean_orphans("v", min_age_hours=0) == [young.name]
    assert not young.exists()


# -- the online store down or hung ------------------------------------------------------------------------------
@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (its pid is ours to stop, SIGSTOP and kill)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []

    def start():
        p = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--protected-mode", "no"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return p
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("own redis-server did not start")
    start.port = port
    yield start
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()


def redis_repo(tmp_path, own_redis):
    return make_repo(tmp_path / "repo", {"url": f"redis://127.0.0.1:{own_redis.port}/0", "options": {
        "connect_timeout": 0.3, "socket_timeout": 0.5, "retries": 1, "key_prefix": "faults"}})


def test_online_store_down_fails_fast_typed_and_a_rerun_completes_exactly(tmp_path, own_redis):
    server = own_redis()
    store = redis_repo(tmp_path, own_redis)
    server.kill()
    server.wait()
    t = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.ingest("v", frame(1))
    assert time.monotonic() - t < 3.0
    assert offline_rows(store) == 0  # the marker could not be set: nothing was committed
    own_redis()
    assert ingest_here(store)["already"] is False
    assert_exact(store)


def test_online_store_hung_fails_fast_typed_and_a_rerun_completes_exactly(tmp_path, own_redis):
    server = own_redis()
    store = redis_repo(tmp_path, own_redis)
    ingest_here(store, rnd=1)
    os.kill(server.pid, signal.SIGSTOP)
    try:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.ingest("v", frame(2))
        assert time.monotonic() - t < 4.0
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert offline_rows(store) == N
    assert ingest_here(store, rnd=2)["already"] is False
    assert_exact(store, rnd=2, offline=2 * N)


# -- object stores: the same on S3 (LocalStack) and OSS (the local shim) ----------------------------------------------
def test_s3_orphan_files_are_vacuumed_and_every_version_still_reads(tmp_path, localstack_s3, local_cloud):
    import boto3
    from tests.adapters.aws.test_s3 import BUCKET, s3_repo

    local_cloud.ensure_bucket(BUCKET, localstack_s3)
    store = make_repo(tmp_path / "repo", store=s3_repo(tmp_path / "repo", localstack_s3))
    ingest_here(store, rnd=1)
    ingest_here(store, rnd=2)
    s3 = boto3.client("s3", endpoint_url=localstack_s3, region_name="us-east-1")
    prefix = store.offline.loc.key("v") + "/"
    orphan = prefix + "part-00000-0-orphan-c000.snappy.parquet"
    s3.put_object(Bucket=BUCKET, Key=orphan, Body=b"PAR1 a killed writer's upload")
    assert store.offline.clean_orphans("v") == []  # younger than an hour: may be a commit in flight
    assert store.offline.clean_orphans("v", min_age_hours=0) == [orphan[len(prefix):]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert orphan not in keys
    assert [history(store, v).count_rows() for v in (0, store.offline.version("v"))] == [N, 2 * N]
    assert_exact(store, rnd=2, offline=2 * N)


def test_oss_kill_between_upload_and_commit_then_rerun_and_clean(tmp_path, oss_endpoint, moto_endpoint, local_cloud):
    import oss2
    import pyarrow as pa
    from tests.adapters.alibaba.test_oss import BUCKET, oss_repo

    local_cloud.ensure_bucket(BUCKET, moto_endpoint)  # the shim fronts moto's buckets
    oss = oss_endpoint
    store = make_repo(tmp_path / "repo", store=oss_repo(tmp_path / "repo", oss))
    ingest_here(store, rnd=1)
    run_child(tmp_path / "repo", rnd=2, batch_id="b2", kill_at="oss.before_log_entry")
    assert offline_rows(store) == N  # uploaded, never committed: invisible
    prefix = store.offline.loc.key("v") + "/"
    bucket = store.offline.oss.bucket

    def data_files():
        return {o.key[len(prefix):] for o in oss2.ObjectIteratorV2(bucket, prefix=prefix)
                if "_delta_log/" not in o.key}
    committed = {p for v in range(store.offline.version("v") + 1) for p in
                 pa.table(store.offline._table("v", v).get_add_actions(flatten=True))
                 .column("path").to_pylist()}
    orphans = data_files() - committed
    assert len(orphans) == 1
    again = ingest_here(store, rnd=2, batch_id="b2")
    assert again["already"] is False  # nothing had been committed
    assert_exact(store, rnd=2, offline=2 * N)
    assert orphans <= data_files()  # young: kept by the automatic sweep
    assert store.offline.clean_orphans("v", min_age_hours=0) == sorted(orphans)
    assert not orphans & data_files()
    assert_exact(store, rnd=2, offline=2 * N)
    assert ingest_here(store, rnd=2, batch_id="b2")["already"] is True


def test_maxcompute_kill_between_upload_and_commit_then_rerun_counts_once(tmp_path, maxcompute_endpoint):
    import pyarrow as pa
    from tests.adapters.alibaba.test_maxcompute import mc_repo

    store = make_repo(tmp_path / "repo", store=mc_repo(tmp_path / "repo", maxcompute_endpoint))
    off = store.offline
    ingest_here(store, rnd=1)
    run_child(tmp_path / "repo", rnd=2, batch_id="b2", kill_at="maxcompute.before_commit")

    def count(where: str = "") -> int:
        sql = f"SELECT COUNT(1) AS n FROM `{off.history_table('v')}` {where}"
        return next(off.client.result(off.client.execute(sql, "count"), "count", pa.schema([("n", pa.int64())])))[0][0].as_py()

    def visible() -> int:  # what every read sees: rows of batches the newest commit names
        return count(f"WHERE `_skewless_batch` IN (SELECT `batch` FROM `{off.commit_table('v', off.version('v'))}`)")
    assert (count(), visible()) == (2 * N, N)  # uploaded, never committed: invisible
    again = ingest_here(store, rnd=2, batch_id="b2")
    assert again["already"] is False and again["version"] == off.version("v")
    assert visible() == 2 * N  # the rerun's rows once; the killed run's stay invisible (no commit names them)
    assert_exact_online(store, rnd=2)
    assert ingest_here(store, rnd=2, batch_id="b2")["already"] is True and visible() == 2 * N

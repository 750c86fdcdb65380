"""A stream consumed exactly once across crashes: kill -9 at each stream point (``SKEWLESS_KILL_AT``, several
arrivals in), restart, and the offline history and the online store hold every event once (counts and values).
Also: bad records go to the dead-letter location with their error and never block the good ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import skewless as sk
from skewless.streams.deadletter import DeadLetter
from skewless.streams.memory import MemorySource
from tests.core.test_faults_ingest import history, own_redis  # noqa: F401 - a fixture

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
KEYS, PER_KEY, SHARDS = 50, 40, 3  # 2,000 events

CHILD = """
import sys, json
import skewless as sk
repo, folder = sys.argv[1], sys.argv[2]
s = sk.FeatureStore(repo).stream("v", "memory://" + folder, max_records=int(sys.argv[3]), until_caught_up=True)
print(json.dumps({"batches": s.batches, "rows": s.rows, "dead": s.dead_lettered}))
"""


def make_repo(path: Path) -> sk.FeatureStore:
    store = sk.init_repo(path)
    e = sk.Entity("ent", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], schema=[
        sk.Field("k", sk.Int64), sk.Field("x", sk.Float64), sk.Field("eid", sk.Int64)])])
    return store


def events() -> list[dict]:
    """Event ``eid`` of key k at minute n: x = eid * 0.5; the newest per key is n = PER_KEY - 1."""
    out = []
    for n in range(PER_KEY):
        for k in range(KEYS):
            eid = n * KEYS + k
            out.append({"k": k, "event_timestamp": (T + timedelta(minutes=n)).isoformat(), "x": eid * 0.5,
                        "eid": eid})
    return out


def write_stream(folder: Path, bad: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shards: dict[int, list[str]] = {i: [] for i in range(SHARDS)}
    for ev in events():
        shards[ev["k"] % SHARDS].append(json.dumps(ev))  # a key stays on one shard, in time order
    if bad:
        shards[0].insert(5, "{not json")
        shards[1].insert(7, json.dumps({"k": None, "event_timestamp": T.isoformat(), "x": 1.0, "eid": -1}))
        shards[2].insert(3, json.dumps({"k": 1, "event_timestamp": T.isoformat(), "x": "n/a", "eid": -2}))
    for i, lines in shards.items():
        (folder / f"shard-{i}.jsonl").write_text("\n".join(lines) + "\n")


def run_child(repo: Path, folder: Path, kill_at: str | None, max_records: int = 97):
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    if kill_at:
        env["SKEWLESS_KILL_AT"] = kill_at
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo), str(folder), str(max_records)], env=env,
                          capture_output=True, text=True, timeout=300)
    if kill_at:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        return None
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_exactly_once(store: sk.FeatureStore) -> None:
    rows = history(store).to_table(columns=["k", "x", "eid"]).to_pylist()
    eids = sorted(r["eid"] for r in rows)
    assert eids == list(range(KEYS * PER_KEY))  # every event, once
    assert all(r["x"] == r["eid"] * 0.5 for r in rows)
    got = store.get_online_features(["v:x", "v:eid"], [{"k": k} for k in range(KEYS)]).to_dict()
    newest = [(PER_KEY - 1) * KEYS + k for k in range(KEYS)]
    assert got["eid"] == newest and got["x"] == [e * 0.5 for e in newest]


@pytest.mark.parametrize("point", ["stream.before_offline_commit:3", "stream.after_offline_commit:4",
                                   "stream.online_chunk:5"])
def test_kill_then_restart_consumes_every_event_exactly_once(tmp_path, point):
    store = make_repo(tmp_path / "repo")
    write_stream(tmp_path / "s")
    run_child(tmp_path / "repo", tmp_path / "s", kill_at=point)
    committed_before = history(store).count_rows()
    assert 0 < committed_before < KEYS * PER_KEY  # killed mid-stream, some batches committed
    again = run_child(tmp_path / "repo", tmp_path / "s", kill_at=None)
    assert again["rows"] == KEYS * PER_KEY - committed_before  # resumed where the last commit left off
    assert_exactly_once(store)
    # once more: caught up, nothing appended
    assert run_child(tmp_path / "repo", tmp_path / "s", kill_at=None)["rows"] == 0
    assert_exactly_once(store)


def test_repeated_kills_at_random_points_then_exactly_once(tmp_path):
    import random

    rnd = random.Random(16)
    store = make_repo(tmp_path / "repo")
    write_stream(tmp_path / "s")
    points = ["stream.before_offline_commit", "stream.after_offline_commit", "stream.online_chunk"]
    for _ in range(4):
        run_child(tmp_path / "repo", tmp_path / "s", kill_at=f"{rnd.choice(points)}:{rnd.randint(1, 4)}",
                  max_records=53)
    run_child(tmp_path / "repo", tmp_path / "s", kill_at=None)
    assert_exactly_once(store)


def test_bad_records_go_to_the_dead_letter_with_their_error_and_never_block(tmp_path):
    store = make_repo(tmp_path / "repo")
    write_stream(tmp_path / "s", bad=True)
    stats = store.stream("v", MemorySource.from_folder(tmp_path / "s"), consumer="c", max_records=101,
                         until_caught_up=True)
    assert stats.dead_lettered == 3 and stats.rows == KEYS * PER_KEY
    assert_exactly_once(store)
    dead = DeadLetter(tmp_path / "repo" / "dead-letter").read("v")
    assert sorted(d["shard"] for d in dead) == ["shard-0", "shard-1", "shard-2"]
    by_shard = {d["shard"]: d for d in dead}
    assert "undecodable JSON" in by_shard["shard-0"]["error"] and by_shard["shard-0"]["raw"]
    assert "join key 'k' is null" in by_shard["shard-1"]["error"]
    assert "'x'" in by_shard["shard-2"]["error"] and by_shard["shard-2"]["value"]["eid"] == -2


def test_a_second_consumer_of_the_same_name_cannot_commit_twice(tmp_path):
    from skewless.errors import ConflictError
    from skewless.offline.base import StreamProgress

    store = make_repo(tmp_path / "repo")
    write_stream(tmp_path / "s")
    store.stream("v", MemorySource.from_folder(tmp_path / "s"), consumer="c", max_batches=1, max_records=10)
    progress = store.offline.stream_progress("v", "c")
    assert progress.seq == 1 and sum(int(p) + 1 for p in progress.positions.values()) == 10
    rows = history(store).to_table()
    with pytest.raises(ConflictError, match="micro-batch 1"):  # a stale consumer still at seq 0
        store.offline.append("v", rows, batch=1, progress=StreamProgress("c", 1, {}))


def test_cli_streams_then_compacts_keeping_old_versions_and_answers(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from skewless.cli.main import app

    store = make_repo(tmp_path / "repo")
    write_stream(tmp_path / "s")
    cli = CliRunner(env={"COLUMNS": "250"})
    r = cli.invoke(app, ["stream", "v", "--from", f"memory://{tmp_path / 's'}", "--repo", str(tmp_path / "repo"),
                         "--max-records", "100", "--until-caught-up", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rows"] == KEYS * PER_KEY and out["batches"] == KEYS * PER_KEY // 100
    assert_exactly_once(store)
    before = store.offline.version("v")
    files_before = len(store.offline.files("v", before).uris)
    entity = pd.DataFrame({"k": list(range(KEYS)) * 3, "event_timestamp": [T + timedelta(minutes=m) for m in
                                                                           (0, 17, 90) for _ in range(KEYS)]})
    answer = store.get_historical_features(entity, ["v:x", "v:eid"]).to_pandas()
    r = cli.invoke(app, ["compact", "v", "--repo", str(tmp_path / "repo"), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert done["files_removed"] == files_before and done["version"] == before + 1
    assert len(store.offline.files("v", done["version"]).uris) < files_before
    assert history(store, before).count_rows() == KEYS * PER_KEY  # the old version still reads
    again = store.get_historical_features(entity, ["v:x", "v:eid"]).to_pandas()
    pd.testing.assert_frame_equal(answer, again)
    assert_exactly_once(store)
    # the consumer resumes across the compaction commit: nothing new, nothing appended
    assert store.stream("v", f"memory://{tmp_path / 's'}", until_caught_up=True).rows == 0


def test_online_store_hung_during_an_overlapped_push_fails_typed_commits_nothing_more_then_exactly_once(
        tmp_path, own_redis):  # noqa: F811 - the fixture imported above
    """The online push of a micro-batch runs while the next one is read: the store hanging then still stops the
    consumer with a StoreUnavailable before anything more is committed, and a restart completes exactly once."""
    import yaml

    from skewless.errors import StoreUnavailable

    server = own_redis()
    repo = tmp_path / "repo"
    make_repo(repo)
    cfg = yaml.safe_load((repo / "skewless.yaml").read_text())
    cfg["online"] = {"url": f"redis://127.0.0.1:{own_redis.port}/0", "options": {
        "connect_timeout": 0.3, "socket_timeout": 0.5, "retries": 1, "key_prefix": "stream-faults"}}
    (repo / "skewless.yaml").write_text(yaml.safe_dump(cfg))
    store = sk.FeatureStore(repo)
    write_stream(tmp_path / "s")
    stopped = []

    def hang_after_first_commit() -> bool:  # called after each commit, while that micro-batch's push may run
        if not stopped:
            os.kill(server.pid, signal.SIGSTOP)
            stopped.append(True)
        return False

    try:
        with pytest.raises(StoreUnavailable):
            store.stream("v", MemorySource.from_folder(tmp_path / "s"), consumer="c", max_records=150,
                         until_caught_up=True, stop=hang_after_first_commit)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert stopped and history(store).count_rows() == 150  # the first micro-batch only
    stats = sk.FeatureStore(repo).stream("v", MemorySource.from_folder(tmp_path / "s"), consumer="c",
                                         max_records=150, until_caught_up=True)
    assert stats.rows == KEYS * PER_KEY - 150
    assert_exactly_once(sk.FeatureStore(repo))

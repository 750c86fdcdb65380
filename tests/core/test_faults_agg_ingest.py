"""kill -9 during an ingest into an aggregated view (``SKEWLESS_KILL_AT``, see skewless/faults.py), then a rerun or
a materialize: the online tiles give exactly the values of one clean run, which equal the spec oracle's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.support.agg_online import UTC, AggRepo

N, CARDS = 600, 45  # events, entities: several tile chunks of 10 entities each

# The ingest a child process runs: N events over CARDS cards, event ids with some corrections of earlier ones.
CHILD = """
import sys
from datetime import datetime, timedelta, timezone
import pyarrow as pa
import skewless as sk
from skewless.aggregation import maintain
maintain.ENTITIES_PER_CHUNK = 10
repo, n, cards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = datetime.fromisoformat(sys.argv[5]) if len(sys.argv) > 5 else datetime(2024, 1, 1, tzinfo=timezone.utc)
ev = [t + timedelta(minutes=37 * i) for i in range(n)]
table = pa.table({"card": pa.array([i % cards for i in range(n)], pa.int64()),
                  "event_timestamp": pa.array(ev, pa.timestamp("us", tz="UTC")),
                  "amount": pa.array([None if i % 11 == 0 else (i % 17) * 1.25 for i in range(n)], pa.float64()),
                  "qty": pa.array([i for i in range(n)], pa.int64()),
                  "merchant": pa.array([f"m{i % 5}" for i in range(n)], pa.string()),
                  "paid": pa.array(ev, pa.timestamp("us", tz="UTC")),
                  "txn": pa.array([f"t{i % (n - 50)}" for i in range(n)], pa.string())})
fs = sk.FeatureStore(repo)
if len(sys.argv) > 6:  # a Redis (url, key prefix) instead of the repo's SQLite file
    from skewless.adapters.redis.store import from_url
    fs.__dict__["online"] = from_url(sys.argv[6], None, {"key_prefix": sys.argv[7]})
fs.ingest("txn", table, batch_id=sys.argv[4] or None)
"""


def run_child(repo: Path, batch_id: str = "", kill_at: str | None = None, redis: tuple = ()) -> None:
    """``redis``: (url, key prefix, first event time): the child ingests into that Redis, its events from then."""
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    if kill_at:
        env["SKEWLESS_KILL_AT"] = kill_at
    more = [redis[2].isoformat(), redis[0], redis[1]] if redis else []
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo), str(N), str(CARDS), batch_id, *more], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == (-signal.SIGKILL if kill_at else 0), proc.stderr


def online_values(repo: AggRepo, now) -> dict:
    refs = [f"txn:{a.name}" for a in repo.view.aggregations]
    return repo.fs.get_online_features(refs, [{"card": c} for c in range(CARDS + 1)], now=now).values


T0 = datetime(2024, 1, 1, tzinfo=UTC)  # the child's events start there
NOW = T0 + timedelta(minutes=37 * N)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    repo = AggRepo(tmp_path_factory.mktemp("clean") / "repo", None, clock=None)
    run_child(repo.fs.repo_path)
    return {t: online_values(repo, t) for t in (NOW, NOW + timedelta(days=3))}


def same(a: dict, b: dict) -> bool:
    from tests.support.agg_oracle import same_value

    return a.keys() == b.keys() and all(len(a[k]) == len(b[k]) and all(same_value(x, y) for x, y in zip(a[k], b[k]))
                                        for k in a)


@pytest.mark.parametrize("point", ["ingest.before_offline_commit", "ingest.after_offline_commit",
                                   "ingest.online_push_chunk:2"])
@pytest.mark.parametrize("batch_id", ["", "b-1"])
def test_kill_during_aggregated_ingest_then_rerun_gives_one_clean_run(tmp_path, clean, point, batch_id):
    repo = AggRepo(tmp_path / "repo", None, clock=None)
    run_child(repo.fs.repo_path, batch_id, kill_at=point)
    run_child(repo.fs.repo_path, batch_id)
    assert len(repo.history()) == N  # the rerun appended nothing a second time
    for t, want in clean.items():
        assert same(online_values(repo, t), want)
    repo.check(list(range(CARDS + 1)), [NOW])  # and one clean run is the oracle's


def redis_run(tmp_path: Path, redis_url: str, name: str, kill_at: str | None = None, view=None):
    """A repo whose online store is Redis, the child's ingest run into it (killed at ``kill_at``), its events 40
    days back from today (``agg_online.T0``: Redis expires tiles no window reads any more)."""
    import uuid

    from tests.support.agg_online import T0 as RECENT

    from skewless.adapters.redis.store import from_url

    prefix = "kill" + uuid.uuid4().hex[:12]
    repo = AggRepo(tmp_path / name, from_url(redis_url, None, {"key_prefix": prefix}), view=view, clock=None)
    run_child(repo.fs.repo_path, "b-1", kill_at=kill_at, redis=(redis_url, prefix, RECENT))
    return repo, (redis_url, prefix, RECENT), RECENT + timedelta(minutes=37 * N)


@pytest.mark.parametrize("point", ["ingest.online_push_chunk:2", "ingest.online_push_chunk:4"])
def test_kill_during_a_pipelined_push_into_redis_then_rerun_gives_one_clean_run(tmp_path, redis_url, point):
    """Redis pipelines a push's chunks (the next sent before the one before is read): killed with chunks in flight,
    perhaps half run by the server, the rerun gives exactly the values of one clean run."""
    clean, _, now = redis_run(tmp_path, redis_url, "clean")
    repo, redis, _ = redis_run(tmp_path, redis_url, "killed", kill_at=point)
    nows = (now, now + timedelta(days=3))
    want = {t: online_values(clean, t) for t in nows}
    assert not same(online_values(repo, now), want[now])  # killed before the push was done
    run_child(repo.fs.repo_path, "b-1", redis=redis)
    assert len(repo.history()) == N
    for t in nows:
        assert same(online_values(repo, t), want[t])
    repo.check(list(range(CARDS + 1)), [now])
    for r in (clean, repo):
        r.fs.online.drop_view("txn")
        r.fs.online.close()


def test_materialize_repairs_tiles_of_a_push_killed_mid_way(tmp_path, clean):
    repo = AggRepo(tmp_path / "repo", None, clock=None)
    run_child(repo.fs.repo_path, kill_at="ingest.online_push_chunk:2")
    assert not same(online_values(repo, NOW), clean[NOW])  # half the entities' tiles are missing
    repo.fs.materialize_incremental(NOW)
    for t, want in clean.items():
        assert same(online_values(repo, t), want)


MATERIALIZE = """
import sys
from datetime import datetime, timedelta, timezone
import skewless as sk
from skewless.aggregation import maintain
maintain.ENTITIES_PER_CHUNK = 10
r = sk.FeatureStore(sys.argv[1]).materialize(datetime(2023, 12, 1, tzinfo=timezone.utc),
                                             datetime.fromisoformat(sys.argv[2]))
print(r[0].resumed_from)
"""


@pytest.mark.parametrize("point", ["materialize.before_checkpoint:2", "materialize.after_checkpoint:3"])
def test_kill_during_a_tile_backfill_then_rerun_resumes_to_one_clean_run(tmp_path, clean, point):
    repo = AggRepo(tmp_path / "repo", None, clock=None)
    run_child(repo.fs.repo_path)
    repo.fs.online.drop_view("txn")  # only the history: materialize rebuilds every tile
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    args = [sys.executable, "-c", MATERIALIZE, str(repo.fs.repo_path), NOW.isoformat()]
    killed = subprocess.run(args, env={**env, "SKEWLESS_KILL_AT": point}, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not same(online_values(repo, NOW), clean[NOW])
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 0  # resumed after the entities the killed run had checkpointed
    state = json.loads(repo.fs.online.get_meta("materialize/txn"))
    assert state["done"] and state["rows_done"] == CARDS  # entities, resumed after the last checkpoint
    for t, want in clean.items():
        assert same(online_values(repo, t), want)


@pytest.fixture(scope="module")
def clean_numeric(tmp_path_factory) -> dict:
    from tests.core.test_agg_ingest_own_rows import numeric_view

    repo = AggRepo(tmp_path_factory.mktemp("clean") / "repo", None, view=numeric_view(), clock=None)
    run_child(repo.fs.repo_path)
    return {t: online_values(repo, t) for t in (NOW, NOW + timedelta(days=3))}


@pytest.mark.parametrize("point", ["ingest.before_offline_commit", "ingest.online_push_chunk:2"])
def test_kill_during_a_first_ingest_with_tiles_computed_ahead_then_rerun_gives_one_clean_run(
        tmp_path, clean_numeric, point):
    """A view without event ids and string outputs: the first ingest computes its tiles while it commits
    (``own_rows.Ahead``). Killed while that thread runs, or with parts of them written, the rerun gives exactly the
    values of one clean run, the oracle's."""
    from tests.core.test_agg_ingest_own_rows import numeric_view

    repo = AggRepo(tmp_path / "repo", None, view=numeric_view(), clock=None)
    run_child(repo.fs.repo_path, "b-1", kill_at=point)
    run_child(repo.fs.repo_path, "b-1")
    assert len(repo.history()) == N
    for t, want in clean_numeric.items():
        assert same(online_values(repo, t), want)
    repo.check(list(range(CARDS + 1)), [NOW])


@pytest.mark.parametrize("point", ["ingest.online_push_chunk:2", "ingest.online_push_chunk:4"])
def test_kill_during_a_guarded_first_push_into_redis_then_rerun_gives_one_clean_run(tmp_path, redis_url, point):
    """A first ingest into an empty history of a view without event ids: its tiles go as transactions of HSETs into
    work hashes (``RedisTiles._guarded``), chunks in flight when killed. The rerun (rows committed: a refresh from
    the history, the same transactions over the hashes the killed run wrote) gives exactly the values of one clean
    run; no work hash is left (a transaction without its EXEC is discarded)."""
    from tests.core.test_agg_ingest_own_rows import numeric_view

    clean, _, now = redis_run(tmp_path, redis_url, "clean", view=numeric_view())
    repo, redis, _ = redis_run(tmp_path, redis_url, "killed", kill_at=point, view=numeric_view())
    nows = (now, now + timedelta(days=3))
    want = {t: online_values(clean, t) for t in nows}
    assert not same(online_values(repo, now), want[now])
    run_child(repo.fs.repo_path, "b-1", redis=redis)
    assert len(repo.history()) == N
    for t in nows:
        assert same(online_values(repo, t), want[t])
    repo.check(list(range(CARDS + 1)), [now])
    _no_work_hash_left_then_drop(clean, repo)


@pytest.mark.parametrize("point", ["ingest.online_push_chunk:2", "ingest.online_push_chunk:4"])
def test_kill_during_a_guarded_push_into_existing_tiles_then_rerun_gives_one_clean_run(tmp_path, redis_url, point):
    """A second ingest (another batch, its events between the first's: every tile it touches already holds events)
    of a view without event ids: its transactions open the tile hashes (renamed to work hashes), write, and settle
    them back. Killed with chunks in flight, the rerun gives exactly the values of two clean ingests, the oracle's;
    no work hash is left and no tile hash is lost (a transaction is whole or not at all)."""
    from tests.core.test_agg_ingest_own_rows import numeric_view

    later = timedelta(minutes=13)
    clean, (url, clean_prefix, start), now = redis_run(tmp_path, redis_url, "clean", view=numeric_view())
    run_child(clean.fs.repo_path, "b-2", redis=(url, clean_prefix, start + later))
    repo, redis, _ = redis_run(tmp_path, redis_url, "killed", view=numeric_view())
    run_child(repo.fs.repo_path, "b-2", kill_at=point, redis=(url, redis[1], start + later))
    nows = (now, now + later, now + timedelta(days=3))
    want = {t: online_values(clean, t) for t in nows}
    assert not same(online_values(repo, now + later), want[now + later])  # killed before the push was done
    run_child(repo.fs.repo_path, "b-2", redis=(url, redis[1], start + later))
    assert len(repo.history()) == 2 * N
    for t in nows:
        assert same(online_values(repo, t), want[t])
    repo.check(list(range(CARDS + 1)), [now + later])
    _no_work_hash_left_then_drop(clean, repo)


def _no_work_hash_left_then_drop(*repos: AggRepo) -> None:
    """No work hash (``RedisTiles._guarded``'s ``~w`` names) is left in the repos' Redis; their tiles dropped."""
    for r in repos:
        head = r.fs.online.key_head("txn").decode()
        assert not list(r.fs.online.client.scan_iter(match=f"{head}*~w*", count=10_000))
    for r in repos:
        r.fs.online.drop_view("txn")
        r.fs.online.close()

"""Fault injection for the prediction log flush: the writing process is killed with SIGKILL at several points of a
flush (journal being written, journaled but not committed, committed but journal not yet removed), with the store
down during the flush, and during the spill at shutdown. After a restart, the history holds exactly the rows that
reached a journal: none lost, none twice.

The child process runs the real writer against a real local Delta history; the kill is injected by wrapping the
step it must land in (the wrapper calls SIGKILL on its own process), nothing else is replaced."""

from __future__ import annotations

import signal
import time
import subprocess
import sys
import textwrap

import pytest

import skewless as sk
from skewless.serving.prediction_log import PredictionLogWriter

from tests.support.paths import ROOT
from tests.serving.test_serving import credit  # noqa: F401 - a fixture, taken by name
from tests.support.predlog_helpers import committed_keys, history_up, manifest


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import skewless as sk
    from skewless.serving import journal
    from skewless.serving.prediction_log import PredictionLogWriter
    from tests.support.predlog_helpers import history_down, manifest, rows

    point, repo, spill = sys.argv[1], sys.argv[2], sys.argv[3]
    store = sk.init_repo(repo, project="t")
    w = PredictionLogWriter(store, manifest(), spill_dir=spill, flush_seconds=3600)
    w.add(rows(manifest(), list(range(100))))
    assert w.flush(30)  # 0..99 committed before any fault

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    offline = store.offline
    append = offline.append
    if point == "before_commit":  # journaled, killed as the append starts
        offline.append = die
    elif point == "after_commit":  # the commit landed, killed before the journal is removed
        def append_then_die(*a, **k):
            append(*a, **k)
            die()
        offline.append = append_then_die
    elif point == "mid_journal":  # killed while the journal is written (before its fsync and rename)
        journal.os.fsync = die
    w.add(rows(manifest(), list(range(100, 300))))
    if point == "store_down":  # the flush fails (journal kept), then killed before the store comes back
        with history_down(store, w.view.name):
            assert w.flush(0.5) is False and w.spilled == 200
            die()
    if point == "mid_spill":  # store down at shutdown: a failed flush journaled 100..299, then the spill of the
        with history_down(store, w.view.name):  # last rows is killed half-way
            assert w.flush(0.5) is False
            w.add(rows(manifest(), list(range(300, 350))))
            journal.os.fsync = die
            w.close(5)
    w.flush(30)
    print("not killed")
""").format(root=str(ROOT))

# point -> keys committed after recovery: every row that reached a journal, once.
EXPECTED = {
    "before_commit": list(range(300)),
    "after_commit": list(range(300)),
    "mid_journal": list(range(100)),  # 100..299 never left memory (the torn journal is discarded)
    "store_down": list(range(300)),
    "mid_spill": list(range(300)),  # 300..349 were in the torn spill
}


@pytest.mark.parametrize("point", list(EXPECTED))
def test_kill_9_during_a_flush_then_restart_commits_each_journaled_row_once(tmp_path, point):
    repo, spill = tmp_path / "repo", tmp_path / "spill"
    child = subprocess.run([sys.executable, "-c", CHILD, point, str(repo), str(spill)], capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, (child.stdout, child.stderr)
    store = sk.init_repo(repo, project="t")
    history_up(store, "predictions_m")  # the store comes back (when the child had taken it down)
    got_before = committed_keys(store)
    assert got_before in (list(range(100)), list(range(300)))  # what the kill left: committed or not, never half
    assert (got_before == list(range(300))) == (point == "after_commit")
    for _ in range(2):  # the restart commits the journals; a second restart finds nothing left to do
        w = PredictionLogWriter(store, manifest(), spill_dir=spill, flush_seconds=3600)
        assert w.flush(30), w.last_error
        assert w.close(5) and w.spilled == 0
        assert committed_keys(store) == EXPECTED[point]
    assert not list(spill.rglob("*.arrow*"))  # no journal, no torn file left behind


def test_s3_outage_during_flush_and_kill_after_commit_on_s3(tmp_path, local_cloud, moto_endpoint):
    """The same on an S3 history (moto, behind a TCP proxy this test owns): a kill -9 after the commit is found
    by batch id in S3 (not committed twice); the endpoint refusing connections during a flush and at shutdown
    loses nothing."""
    from urllib.parse import urlsplit

    from tests.support.object_store import object_store_repo
    from tests.serving.test_serving_registry import Proxy

    local_cloud.ensure_bucket("skewless-tests", moto_endpoint)
    parts = urlsplit(moto_endpoint)
    proxy = Proxy((parts.hostname, parts.port))
    options = {"endpoint_url": f"http://127.0.0.1:{proxy.port}", "region": "us-east-1", "access_key_id": "test",
               "secret_access_key": "test", "max_attempts": 1, "connect_timeout": 1, "read_timeout": 5}
    repo, spill = tmp_path / "repo", tmp_path / "spill"
    store = object_store_repo(repo, "s3://skewless-tests", options, "t")
    try:
        child = subprocess.run([sys.executable, "-c", CHILD, "after_commit", str(repo), str(spill)],
                               capture_output=True, text=True, timeout=120)
        assert child.returncode == -signal.SIGKILL, (child.stdout, child.stderr)
        assert committed_keys(store) == list(range(300))
        w = PredictionLogWriter(store, manifest(), spill_dir=spill, flush_seconds=3600)
        assert w.pending == 200  # the adopted journal, already in S3
        assert w.flush(30) and committed_keys(store) == list(range(300))  # found there, not appended again
        proxy.down()
        from tests.support.predlog_helpers import rows

        w.add(rows(manifest(), list(range(300, 400))))
        assert w.flush(1) is False and "StoreUnavailable" in w.last_error
        w.add(rows(manifest(), list(range(400, 450))))
        assert w.close(3) and w.spilled == 150  # shutdown during the outage: spilled, not lost
        proxy.up()
        again = PredictionLogWriter(store, manifest(), spill_dir=spill, flush_seconds=3600)
        assert again.flush(30) and again.close(5)
        assert committed_keys(store) == list(range(450))
    finally:
        proxy.down()


def test_sigterm_under_load_logs_every_answered_prediction_once(credit, tmp_path):  # noqa: F811
    """The image's entry point under 8 clients posting as fast as they can (micro-batches on the thread and on the
    event loop), stopped with SIGTERM mid-stream: every request answered 200 is in the log, none twice, and
    nothing is logged that no client sent; the shutdown reports the log complete."""
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from skewless.serving.prediction_log import read_log
    from tests.serving.test_serving import entry_point, free_port

    port = free_port()
    env = {**os.environ, "SKEWLESS_REPO": str(credit["repo"]), "SKEWLESS_MODEL_DIR": str(credit["artifact"].path),
           "SAGEMAKER_BIND_TO_PORT": str(port), "SKEWLESS_LOG_FLUSH_SECONDS": "0.2"}
    loans = [int(i) for i in credit["loans"].loan_id]
    def logged_ids() -> list:
        table = read_log(credit["store"], "credit")
        return table.column("request_id").to_pylist() if table.num_rows else []

    before = set(logged_ids())
    sent, answered, stop = [], [], threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for n in range(10**6):
                if stop.is_set():
                    return
                rid = f"sigterm-{k}-{n}"
                sent.append(rid)
                try:
                    r = c.post("/invocations", json={"loan_id": loans[n % len(loans)]}, headers={"X-Request-Id": rid})
                except httpx.TransportError:  # the server stopped taking requests
                    return
                if r.status_code == 200:
                    answered.append(rid)
                elif r.status_code not in (429, 503):  # 429: shutting down; 503: not ready any more
                    raise AssertionError(r.text)

    with entry_point(env, port) as run, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, k) for k in range(8)]
        deadline = time.monotonic() + 30
        while len(answered) < 300:  # load flowing, and some of it already flushed (every 0.2 s)
            assert time.monotonic() < deadline and not any(f.done() for f in futures)
            time.sleep(0.05)
        run.proc.send_signal(signal.SIGTERM)  # mid-stream; entry_point's own SIGTERM then finds it stopping
        for f in futures:
            f.result(timeout=60)
        stop.set()
    assert run.proc.returncode in (0, -signal.SIGTERM), run.err
    assert '"prediction_log_complete": true' in run.err
    logged = [r for r in logged_ids() if r not in before]
    assert len(logged) == len(set(logged))  # none twice
    assert set(answered) <= set(logged)  # every answered prediction is logged
    assert set(logged) <= set(sent)  # and only what clients sent
    assert len(answered) >= 300

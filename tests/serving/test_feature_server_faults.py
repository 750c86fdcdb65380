"""The feature server's faults: the online store down (503 at once, recovery without a restart, through a TCP proxy
in front of a real Redis), and SIGTERM under push load (every push answered 200 is in the store, online and in the
history)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from tests.serving.test_serving_registry import Proxy
from tests.support.feature_server import TOKEN, driver_repo, free_port, running, wait_healthy

from skewless import FeatureStore
from skewless.serving.feature_server.server import FeatureServerConfig
from skewless.timeutil import now as utc_now

READ = {"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1]}}


def _errors(client) -> float:
    return float(re.search(r"^skewless_fs_online_store_errors_total (\S+)$", client.get("/metrics").text, re.M)
                 .group(1))


def test_store_down_is_503_at_once_and_recovers_without_restart(tmp_path, redis_url):
    parts = urlsplit(redis_url)
    proxy = Proxy((parts.hostname, parts.port))
    try:
        url = redis_url.replace(f":{parts.port}", f":{proxy.port}")
        opts = f"{{key_prefix: fsout{uuid.uuid4().hex[:8]}, retries: 1, backoff_cap: 0.05, socket_timeout: 1}}"
        driver_repo(tmp_path / "repo", online=f"url: {url}\n  options: {opts}")
        cfg = FeatureServerConfig(repo=str(tmp_path / "repo"), tokens=(TOKEN,), extra={"store_check_seconds": 0.2})
        with running(cfg) as (c, _):
            assert c.post("/get-online-features", json=READ).status_code == 200
            proxy.down()
            down = c.post("/get-online-features", json=READ)
            assert down.status_code == 503 and down.json()["error"] == "StoreUnavailable"
            assert _errors(c) >= 1
            # While it is down: answered at once (the breaker), health says so, and an online push does nothing.
            t0 = time.monotonic()
            for _ in range(20):
                assert c.post("/get-online-features", json=READ).status_code == 503
            assert time.monotonic() - t0 < 2.0
            assert c.get("/health").status_code == 503
            push = c.post("/push", json={"push_source_name": "driver_stats", "df": {
                "driver_id": [1], "conv_rate": [9.9], "trips": [9], "event_timestamp": [utc_now().isoformat()]}})
            assert push.status_code == 503
            proxy.up()
            deadline = time.monotonic() + 20
            while c.get("/health").status_code != 200:
                assert time.monotonic() < deadline, "never recovered"
                time.sleep(0.05)
            back = c.post("/get-online-features", json=READ)
            assert back.status_code == 200 and back.json()["results"][1]["values"] == [0.1]
    finally:
        proxy.down()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_push_load_every_200_push_is_in_the_store(tmp_path, workers):
    """With 2 workers, uvicorn's supervisor passes the SIGTERM to each; each drains its own pushes."""
    repo = tmp_path / "repo"
    driver_repo(repo)
    port = free_port()
    env = {**os.environ, "SKEWLESS_FS_TOKENS": TOKEN, "SKEWLESS_FS_PORT": str(port), "SKEWLESS_REPO": str(repo),
           "SKEWLESS_FS_WORKERS": str(workers)}
    proc = subprocess.Popen([sys.executable, "-m", "skewless", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, alive=lambda: proc.poll() is None)
    when = utc_now().replace(microsecond=0)
    ok: list[int] = []
    both: set[int] = set()  # pushed to online_and_offline
    counter = iter(range(1000, 100000))
    lock = threading.Lock()

    def pusher(to: str):
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
            while True:
                with lock:
                    n = next(counter)
                try:
                    r = c.post("/push", json={"push_source_name": "driver_stats", "to": to, "df": {
                        "driver_id": [n], "conv_rate": [n / 1000], "trips": [n], "event_timestamp": [when.isoformat()]}})
                except httpx.TransportError:
                    return  # the server stopped accepting
                if r.status_code == 200:
                    with lock:
                        ok.append(n)
                        if to == "online_and_offline":
                            both.add(n)
                elif r.status_code != 503:  # uvicorn's own answer while shutting down is 503 at most
                    raise AssertionError(r.text)

    threads = [threading.Thread(target=pusher, args=("online_and_offline" if i % 2 else "online",)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    for t in threads:
        t.join(30)
    # uvicorn re-raises the SIGTERM it handled once its shutdown is complete: the exit says "terminated", the log
    # says the shutdown (pushes drained) finished.
    assert proc.returncode in (0, -signal.SIGTERM) and out.count("Application shutdown complete") == workers, \
        out[-3000:]
    assert len(ok) >= 6, f"too few pushes before SIGTERM ({len(ok)}): the test proves nothing"
    store = FeatureStore(repo)
    resp = store.get_online_features(["driver_stats:trips"], [{"driver_id": n} for n in ok])
    assert resp.to_dict()["trips"] == ok  # every push answered 200 is online
    hist = store.get_historical_features(pd.DataFrame({"driver_id": ok, "event_timestamp": [when + timedelta(1)]
                                                       * len(ok)}), ["driver_stats:trips"]).to_pandas()
    assert both, "no push to online_and_offline was answered before SIGTERM"
    # The history holds exactly the online_and_offline pushes answered 200 (and whatever was written but not yet
    # answered when the connections closed); the online-only ones appended nothing.
    offline = set(hist.dropna()["driver_id"])
    assert both <= offline and not (offline & (set(ok) - both))

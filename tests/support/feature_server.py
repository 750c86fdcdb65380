"""What the feature server's tests share: a small driver repo (three views over one entity, a feature service) on
SQLite or a real Redis, and a real uvicorn running the feature server on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pandas as pd
import uvicorn

import skewless as sk
from skewless.serving.feature_server.server import FeatureServerConfig, build, uvicorn_config

TOKEN = "fs-test-token"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driver_repo(path: Path, online: str | None = None, drivers: int = 3) -> sk.FeatureStore:
    """Views ``driver_stats`` (conv_rate, trips), ``driver_profile`` (city) and ``driver_rating`` (rating, ttl 1 day)
    over ``driver`` (driver_id Int64), each with one row per driver at ``T0`` (``drivers`` drivers from 1);
    feature service ``driver_service``. ``online`` replaces the online store's ``url:`` line of skewless.yaml."""
    store = sk.init_repo(path, project="fs")
    if online:
        (path / "skewless.yaml").write_text((path / "skewless.yaml").read_text().replace(
            "url: sqlite:///data/online.db", online))
        store = sk.FeatureStore(path)
    driver = sk.Entity("driver", join_keys=["driver_id"])
    stats = sk.FeatureView("driver_stats", entities=[driver], schema=[
        sk.Field("driver_id", sk.Int64), sk.Field("conv_rate", sk.Float64), sk.Field("trips", sk.Int64)])
    profile = sk.FeatureView("driver_profile", entities=[driver], schema=[
        sk.Field("driver_id", sk.Int64), sk.Field("city", sk.String)])
    rating = sk.FeatureView("driver_rating", entities=[driver], ttl=timedelta(days=1), schema=[
        sk.Field("driver_id", sk.Int64), sk.Field("rating", sk.Float64)])
    store.apply([driver, stats, profile, rating,
                 sk.FeatureService("driver_service", features=[stats[["conv_rate"]], profile])])
    ids = list(range(1, drivers + 1))
    ts = [T0] * drivers
    store.ingest("driver_stats", pd.DataFrame({"driver_id": ids, "conv_rate": [i / 10 for i in ids],
                                               "trips": [i * 100 for i in ids], "event_timestamp": ts}))
    store.ingest("driver_profile", pd.DataFrame({"driver_id": ids, "city": [f"city{i}" for i in ids],
                                                 "event_timestamp": ts}))
    store.ingest("driver_rating", pd.DataFrame({"driver_id": ids, "rating": [4.5] * drivers, "event_timestamp": ts}))
    return store


def online_of(request, prefix: str) -> str | None:
    """For a test parametrised ``sqlite`` / ``redis``: the ``url:`` line ``driver_repo`` takes (None: SQLite), on
    the session's Redis under a key prefix of its own."""
    if request.param != "redis":
        return None
    url = request.getfixturevalue("redis_url")
    return f"url: {url}\n  options: {{key_prefix: {prefix}{uuid.uuid4().hex[:12]}}}"


def wait_healthy(base: str, alive=lambda: True, timeout: float = 60, why=lambda: "") -> None:
    """Until ``base``/health answers 200; fails after ``timeout`` seconds or once ``alive()`` is false, with
    ``why()`` (e.g. the server's log) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and alive(), f"the feature server at {base} did not start: {why()}"
        time.sleep(0.05)


@contextlib.contextmanager
def running(cfg: FeatureServerConfig, *, healthy: bool = True):
    """(client, app) of a real uvicorn serving ``cfg`` in a thread; the client carries the first token."""
    cfg.host, cfg.port = "127.0.0.1", free_port()
    _, app = build(cfg)
    server = uvicorn.Server(uvicorn_config(app, cfg))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    tokens = cfg.all_tokens()
    client = httpx.Client(base_url=f"http://127.0.0.1:{cfg.port}", timeout=30,
                          headers={"Authorization": f"Bearer {tokens[0]}"} if tokens else None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/health").status_code == 200 or not healthy:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "feature server never became healthy"
            time.sleep(0.05)
        yield client, app
    finally:
        client.close()
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive()

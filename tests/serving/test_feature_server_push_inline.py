"""A small online push alone (no other push, no read being answered) is written on the event loop (no push thread:
two thread wake-ups less per push), with its store calls bounded as an inline read's; one that does not finish in
time is redone on a push thread."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

from tests.serving.test_serving_registry import Proxy
from tests.support.feature_server import TOKEN, driver_repo, running

from skewless import FeatureStore
from skewless.registry.store import RegistryStore
from skewless.serving.feature_server.app import create_app
from skewless.serving.feature_server.server import FeatureServerConfig
from skewless.timeutil import now as utc_now


def push(client, ids, value, to="online"):
    return client.post("/push", json={"push_source_name": "driver_stats", "to": to, "df": {
        "driver_id": ids, "conv_rate": [value] * len(ids), "trips": [1] * len(ids),
        "event_timestamp": [utc_now().isoformat()] * len(ids)}})


def conv_rate(client, ids):
    return client.post("/get-online-features", json={"features": ["driver_stats:conv_rate"],
                                                     "entities": {"driver_id": ids}}).json()["results"][1]["values"]


def threads(app) -> int:
    return len(app.state.server.push_pool._threads)


def test_small_online_pushes_on_the_loop_larger_and_offline_ones_on_threads(tmp_path, redis_url):
    driver_repo(tmp_path / "repo", online=f"url: {redis_url}\n  options: {{key_prefix: fsin{uuid.uuid4().hex[:8]}}}")
    cfg = FeatureServerConfig(repo=str(tmp_path / "repo"), tokens=(TOKEN,), extra={"inline_push_rows": 2})
    with running(cfg) as (c, app):
        assert push(c, [1, 2], 0.7).status_code == 200
        assert conv_rate(c, [1, 2]) == [0.7, 0.7] and threads(app) == 0  # written, no push thread ever started
        srv = app.state.server
        srv.reading += 1  # a read being answered (as at 16 connections): the push leaves the loop to it
        try:
            assert push(c, [1, 2], 0.75).status_code == 200 and threads(app) == 1
        finally:
            srv.reading -= 1
        assert conv_rate(c, [1, 2]) == [0.75, 0.75]
        assert push(c, [1, 2, 3], 0.8).status_code == 200  # more rows than inline_push_rows
        assert conv_rate(c, [1, 2, 3]) == [0.8] * 3 and threads(app) == 1
        bad = push(c, [1], "x")  # validation on the loop: the same 422, nothing written
        assert bad.status_code == 422 and conv_rate(c, [1]) == [0.8]
        assert push(c, [4], 0.9, to="online_and_offline").status_code == 200  # the history: always a thread
        assert conv_rate(c, [4]) == [0.9]


class SlowProxy(Proxy):
    """A proxy whose replies wait ``delay`` seconds (a Redis descheduled, or far away)."""

    delay = 0.0

    def _pump(self, a, b):
        try:
            while data := a.recv(65536):
                if self.delay and a in self.upstreams:
                    time.sleep(self.delay)
                b.sendall(data)
        except OSError:
            pass

    @property
    def upstreams(self):
        return self.conns[1::2]


def test_an_inline_push_that_times_out_is_redone_on_a_thread(tmp_path, redis_url):
    parts = urlsplit(redis_url)
    proxy = SlowProxy((parts.hostname, parts.port))
    try:
        url = redis_url.replace(f":{parts.port}", f":{proxy.port}")
        opts = f"{{key_prefix: fsin{uuid.uuid4().hex[:8]}, socket_timeout: 10}}"
        driver_repo(tmp_path / "repo", online=f"url: {url}\n  options: {opts}")
        cfg = FeatureServerConfig(repo=str(tmp_path / "repo"), tokens=(TOKEN,), extra={"read_timeout": 0.2})
        with running(cfg) as (c, app):
            assert push(c, [1], 0.3).status_code == 200 and threads(app) == 0
            proxy.delay = 0.6
            t0 = time.monotonic()
            r = push(c, [1], 0.4)
            assert r.status_code == 200, r.text  # not a 503: the loop gave up after 0.2 s, a thread finished it
            assert time.monotonic() - t0 >= 0.6 and threads(app) == 1
            proxy.delay = 0.0
            assert conv_rate(c, [1]) == [0.4]
            assert c.get("/health").status_code == 200  # the breaker was not tripped by the loop's timeout
    finally:
        proxy.down()


class ElsewhereRegistry(RegistryStore):
    """The repo's registry files, seen as a store that is not local files (as S3's or OSS's would be)."""

    def __init__(self, local):
        self.local, self.url = local, "elsewhere://" + local.url

    def versions(self):
        return self.local.versions()

    def read(self, version):
        return self.local.read(version)

    def create(self, version, data):
        return self.local.create(version, data)


def test_pushes_stay_off_the_loop_when_the_registry_is_not_local_files(tmp_path, redis_url):
    """A push reads the registry's newest version: from an object store that is a request the online store's
    deadline does not bound, so it never runs on the loop."""
    online = f"url: {redis_url}\n  options: {{key_prefix: fsin{uuid.uuid4().hex[:8]}}}"
    local = driver_repo(tmp_path / "repo", online=online)
    assert create_app(local).state.server._bounded_writes
    remote = FeatureStore(tmp_path / "repo")
    remote.registry.store = ElsewhereRegistry(remote.registry.store)
    assert not create_app(remote).state.server._bounded_writes

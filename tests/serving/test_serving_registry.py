"""Model registry (versions, stages, lineage, digests, concurrent registrations), the plain-Python flavour with
request-time values, overload (429, never a crash), an online-store outage (503, then recovery without restart,
through a real TCP proxy in front of the real Redis) and the `skewless model` CLI."""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app as cli
from skewless.serving import ModelRegistry, package_model, read_log
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now
from tests.serving.test_serving import running

SCORER = '''
import time


class Scorer:
    """Income times a factor read from an artifact file, plus a request-time amount."""

    outputs = [("score", "Float64")]

    def load(self, path):
        with open(path + "/factor.txt") as fh:
            self.factor = float(fh.read())

    def predict(self, frame):
        time.sleep(float(frame["delay"].fillna(0).max()))
        return {"score": (frame["income"] * self.factor + frame["amount"]).tolist()}
'''


def small_repo(path, online: str | None = None):
    store = sk.init_repo(path, project="serving")
    if online:
        (path / "skewless.yaml").write_text((path / "skewless.yaml").read_text().replace(
            "url: sqlite:///data/online.db", online))
        store = sk.FeatureStore(path)
    driver = sk.Entity("driver", join_keys=["driver_id"])
    stats = sk.FeatureView("driver_stats", entities=[driver], schema=[
        sk.Field("driver_id", sk.Int64), sk.Field("income", sk.Float64), sk.Field("trips", sk.Int64)])
    store.apply([driver, stats, sk.FeatureService("scoring", features=[stats[["income"]]])])
    t = datetime(2025, 1, 1, tzinfo=timezone.utc)
    store.ingest("driver_stats", pd.DataFrame({"driver_id": [1, 2, 3], "income": [10.0, 20.0, 30.0],
                                               "trips": [1, 2, 3], "event_timestamp": [t] * 3}))
    job = store.get_historical_features(pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [t] * 2}), "scoring")
    return store, job


def scorer(tmp_path, store, job, factor="2.0"):
    code = tmp_path / "scorer_mod.py"
    code.write_text(SCORER)
    (tmp_path / "factor.txt").write_text(factor)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        mod = importlib.import_module("scorer_mod")
        importlib.reload(mod)
    finally:
        sys.path.remove(str(tmp_path))
    return package_model(mod.Scorer, name="scorer", store=store, feature_service="scoring", training_set=job,
                         request_fields=[sk.Field("amount", sk.Float64), sk.Field("delay", sk.Float64)],
                         artifacts={"factor.txt": str(tmp_path / "factor.txt")})


def test_registry_versions_stages_lineage_and_digest(tmp_path):
    store, job = small_repo(tmp_path / "repo")
    reg = ModelRegistry(store)
    art = scorer(tmp_path, store, job)
    assert art.manifest.flavor == "python" and (art.path / "code" / "scorer_mod.py").exists()
    with ThreadPoolExecutor(4) as pool:  # concurrent registrations never share a version number
        versions = sorted(pool.map(lambda _: reg.register(art).version, range(4)))
    assert versions == [1, 2, 3, 4] and reg.list_models() == ["scorer"]
    assert reg.promote("scorer", 2, "staging") == {"staging": 2}
    assert reg.promote("scorer", 2, "production") == {"production": 2}  # a version is in one stage at a time
    assert reg.promote("scorer", 3, "staging") == {"production": 2, "staging": 3}
    assert reg.get("scorer", stage="production").version == 2 and reg.get("scorer").version == 4
    assert [(e["stage"], e["version"], e["previous"]) for e in reg.stage_history("scorer")] == [
        ("staging", 2, None), ("production", 2, None), ("staging", 3, None)]
    mv = reg.get("scorer", 3)
    assert mv.stages == ("staging",) and mv.training_snapshot == job.snapshot and mv.created_by
    assert mv.manifest.training["feature_view_versions"] == {"driver_stats": 1}
    with pytest.raises(sk.NotFoundError):
        reg.get("scorer", 9)
    with pytest.raises(sk.ValidationError):
        reg.promote("scorer", 1, "prod")
    # the prediction log's view was applied with the model: retrieval can name it
    assert store.get_feature_view("predictions_scorer").online is False
    # digests: an altered artifact is refused
    art_file = next((tmp_path / "repo" / "data" / "registry" / "models" / "scorer" / "artifacts").glob("v*1.json"))
    art_file.chmod(0o644)
    art_file.write_bytes(art_file.read_bytes()[:-1] + b"x")
    with pytest.raises(sk.DefinitionError, match="digest"):
        reg.download("scorer", 1)
    loaded = reg.download("scorer", 2).load()
    out = loaded.predict(pd.DataFrame({"income": [1.0], "amount": [0.5], "delay": [0.0]}))
    assert out == {"score": [2.5]}


def test_package_refuses_inputs_outside_the_service(tmp_path):
    store, job = small_repo(tmp_path / "repo")
    from sklearn.linear_model import LinearRegression

    lr = LinearRegression().fit(pd.DataFrame({"income": [1.0, 2.0], "speed": [1.0, 3.0]}), [0.0, 1.0])
    with pytest.raises(sk.DefinitionError, match="speed"):
        package_model(lr, name="lr", store=store, feature_service="scoring", training_set=job)
    lr = LinearRegression().fit(pd.DataFrame({"income": [1.0, 2.0]}), [0.0, 1.0])
    with pytest.raises(sk.ValidationError, match="lineage"):
        package_model(lr, name="lr", store=store, feature_service="scoring")
    assert package_model(lr, name="lr", store=store, feature_service="scoring", snapshot=job.snapshot
                         ).manifest.outputs == [{"name": "prediction", "dtype": "Float64"}]


def test_python_model_with_request_values_and_overload(tmp_path):
    store, job = small_repo(tmp_path / "repo")
    art = scorer(tmp_path, store, job)
    cfg = ServeConfig(repo=str(tmp_path / "repo"), model_dir=str(art.path), max_queue=2, max_batch_rows=1)
    with running(cfg) as (c, model):
        r = c.post("/invocations", json=[{"driver_id": 1, "amount": 1.5}, {"driver_id": 3, "amount": 0.0}])
        assert r.json()["predictions"] == [{"score": 21.5}, {"score": 60.0}]
        bad = c.post("/invocations", json={"driver_id": 1, "amount": "lots"})
        assert bad.status_code == 422 and bad.json()["column"] == "amount"
        url = str(c.base_url)

        def slow(_):
            with httpx.Client(base_url=url, timeout=30) as cc:
                return cc.post("/invocations", json={"driver_id": 2, "amount": 1.0, "delay": 0.3}).status_code
        with ThreadPoolExecutor(10) as pool:
            codes = list(pool.map(slow, range(10)))
        assert 429 in codes and 200 in codes and set(codes) <= {200, 429}
        assert c.get("/ping").status_code == 200  # still alive and ready
        assert c.post("/invocations", json={"driver_id": 2, "amount": 1.0}).json()["predictions"] == [{"score": 41.0}]
    log = read_log(store, "scorer").to_pandas()
    assert len(log) == 2 + codes.count(200) + 1
    assert set(log.columns) >= {"driver_id", "request__amount", "driver_stats__income", "output__score"}


def test_a_prediction_past_its_timeout_is_504_and_the_server_keeps_serving(tmp_path):
    """The Scorer sleeps ``delay`` seconds. Past the 0.5 s timeout the caller gets 504 with the reason at once,
    requests behind it are answered (on a fresh predict thread), /ping stays 200; readiness drops only while
    ``max_overrunning`` timed-out predictions still run, and comes back when they end."""
    store, job = small_repo(tmp_path / "repo")
    art = scorer(tmp_path, store, job)
    cfg = ServeConfig(repo=str(tmp_path / "repo"), model_dir=str(art.path), predict_timeout=0.5,
                      extra={"max_overrunning": 2})
    with running(cfg) as (c, model):
        url = str(c.base_url)

        def call(delay: float, driver: int = 1, rows: int = 1):
            """``rows`` > 8: never a batch the batcher may run inline on the event loop (it could not be left)."""
            with httpx.Client(base_url=url, timeout=30) as cc:
                t0 = time.monotonic()
                r = cc.post("/invocations", json=[{"driver_id": driver, "amount": 0.0, "delay": delay}] * rows)
                return r, time.monotonic() - t0

        def overrunning() -> float:
            line = [x for x in c.get("/metrics").text.splitlines() if x.startswith("skewless_predictions_overrunning")]
            return float(line[0].split()[-1])

        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(call, 2.0, 1, 9)
            time.sleep(0.2)  # queued behind the sleeping batch
            fast = pool.submit(call, 0.0, 3)
            (r_slow, t_slow), (r_fast, t_fast) = slow.result(), fast.result()
        assert r_slow.status_code == 504 and r_slow.json()["error"] == "PredictTimeout"
        assert "0.5s request timeout" in r_slow.json()["message"]
        assert t_slow < 1.5  # answered at its deadline, not when the model woke up (2 s)
        assert r_fast.status_code == 200 and r_fast.json()["predictions"] == [{"score": 60.0}] and t_fast < 1.5
        assert c.get("/ping").status_code == 200 and overrunning() == 1.0

        r, _ = call(2.0, 1, 9)  # a second one still running: the bound (2) is reached
        assert r.status_code == 504
        ping = c.get("/ping")
        assert ping.status_code == 503 and "2 predictions that timed out are still running" in ping.json()["reason"]
        deadline = time.monotonic() + 10
        while c.get("/ping").status_code != 200:  # the first sleeper ends: under the bound, ready again
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert overrunning() == 1.0
        while overrunning() != 0.0:  # and the second
            assert time.monotonic() < deadline
            time.sleep(0.1)

        for _ in range(3):  # fast lone requests: the batcher may then run the next one inline on the event loop
            assert call(0.0)[0].status_code == 200
        r, took = call(1.0)  # inline (not interruptible) or on the thread (abandoned): 504 either way
        assert r.status_code == 504 and took < 2.0
        assert call(0.0, 2)[0].json()["predictions"] == [{"score": 40.0}]
        assert 'skewless_requests_total{route="sagemaker",status="504"} 3.0' in c.get("/metrics").text
    # the model computed the timed-out rows too: they are in the log (9 + 9 + 1 timed out, 5 answered)
    assert len(read_log(store, "scorer")) == 24


class Proxy:
    """A TCP proxy to a real server: ``down()`` drops every connection and refuses new ones, ``up()`` serves again
    on the same port (what an online store outage looks like to the model server)."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.conns, self.sock = target, [], None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.up()

    def up(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    def _accept(self, sock):
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self):
        try:  # wakes the thread blocked in accept(); close() alone would leave the port listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns = []


def store_errors(client) -> float:
    text = client.get("/metrics").text
    return float(re.search(r"^skewless_online_store_errors_total (\S+)$", text, re.M).group(1))


def recover(client, proxy) -> None:
    proxy.up()
    deadline = utc_now() + timedelta(seconds=20)
    while client.get("/ping").status_code != 200:
        assert utc_now() < deadline, "never recovered"
        time.sleep(0.05)


def test_online_store_outage_is_503_and_recovers_without_restart(tmp_path, redis_url):
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    proxy = Proxy((parts.hostname, parts.port))
    try:
        url = redis_url.replace(f":{parts.port}", f":{proxy.port}")
        opts = f"{{key_prefix: outage{os.getpid()}, retries: 1, backoff_cap: 0.05, socket_timeout: 1}}"
        store, job = small_repo(tmp_path / "repo", online=f"url: {url}\n  options: {opts}")
        art = scorer(tmp_path, store, job)
        cfg = ServeConfig(repo=str(tmp_path / "repo"), model_dir=str(art.path))
        with running(cfg) as (c, _):
            ask = lambda: c.post("/invocations", json={"driver_id": 1, "amount": 0.0})  # noqa: E731
            assert ask().status_code == 200
            proxy.down()
            down = ask()
            assert down.status_code == 503 and down.json()["error"] == "StoreUnavailable"
            assert c.get("/ping").status_code == 503
            # The prediction's read and the probe it starts race to report the failure; either counts.
            after_prediction = store_errors(c)
            assert after_prediction >= 1
            recover(c, proxy)
            assert ask().json()["predictions"] == [{"score": 20.0}]
            assert store_errors(c) == after_prediction  # answered requests count nothing
            # A failure only a readiness probe sees counts too (the counter once counted predictions' alone).
            proxy.down()
            deadline = utc_now() + timedelta(seconds=20)
            while c.get("/ping").status_code != 503:
                assert utc_now() < deadline, "the probe never saw the store down"
                time.sleep(0.05)
            assert store_errors(c) > after_prediction
            recover(c, proxy)
    finally:
        proxy.down()


def test_cli_package_list_promote(tmp_path):
    store, job = small_repo(tmp_path / "repo")
    job.to_parquet(tmp_path / "train.parquet")
    (tmp_path / "scorer_cli.py").write_text(SCORER.replace('open(path + "/factor.txt")', 'open(__file__)') .replace(
        "float(fh.read())", "1.0"))
    runner = CliRunner()
    repo = str(tmp_path / "repo")
    r = runner.invoke(cli, ["model", "package", f"{tmp_path / 'scorer_cli.py'}:Scorer", "--name", "cli_model",
                            "--service", "scoring", "--training-set", str(tmp_path / "train.parquet"),
                            "--stage", "staging", "-r", repo])
    assert r.exit_code == 0, r.output
    assert "version 1 in stage staging" in r.output
    r = runner.invoke(cli, ["model", "promote", "cli_model", "1", "production", "-r", repo])
    assert r.exit_code == 0 and "production=v1" in r.output
    r = runner.invoke(cli, ["model", "list", "-r", repo])
    assert "cli_model" in r.output and "production=v1" in r.output
    r = runner.invoke(cli, ["model", "list", "cli_model", "-r", repo], env={"COLUMNS": "250"})
    assert "driver_stats" in r.output and "python" in r.output
    r = runner.invoke(cli, ["model", "promote", "cli_model", "7", "production", "-r", repo])
    assert r.exit_code == 1 and "NotFoundError" in r.output

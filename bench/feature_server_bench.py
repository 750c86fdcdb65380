"""The HTTP feature server vs ``feast serve`` (Feast 0.67), same Redis, same data (``./run shell -m
bench.feature_server_bench``).

    ./run shell -m bench.feature_server_bench [--entities N] [--seconds S] [--concurrency C] [--rounds R]
                                              [--no-feast] [--push-rate EVENTS_PER_S] [--tag T] [--publish]
                                              [--baseline GIT_REF] [--workers N] [--mixed]

One entity ``driver`` (Int64) and three views (``driver_stats``: conv_rate, acc_rate, trips; ``driver_profile``:
city, age; ``driver_rating``: rating, reviews), ``--entities`` drivers each, written to the local cloud's Redis by
skewless (ingest) and by Feast (materialize from the same Parquet files) under their own key spaces. Requests:
``1x3`` (one entity, the seven features of the three views) and ``100x3`` (100 entities, the same features), random
ids, pre-built bodies cycled by wrk (``bench/serving_wrk.lua``, wrk and the trivial-ASGI calibration as
``serving_bench``). Latency p50/p99 at 1 connection, requests/s at ``--concurrency`` connections. skewless runs
with a bearer token (production's shape); Feast without auth (its default).

Freshness: ``/push`` at ``--push-rate`` events/s (batches of ``--push-batch`` rows, paced), each push's time from
send to its answer (the rows are readable from then on: the push writes before it answers), and the time until a
separate ``/get-online-features`` sees its value, for every push. The first ``--push-warmup`` pushes are not
counted (a server's first push loads the view, its layout and the write script; its time is reported apart).

``--mixed``: reads at ``--concurrency`` connections while pushes run at ``--push-rate`` (what each costs the other).

Comparisons in one run: ``--baseline REF`` also runs the server of git REF (its code laid out as the installed
package, first on PYTHONPATH), ``--workers N`` also runs this code with N worker processes; the servers are measured
in alternating order round by round, each with the load average before and after.

Where the time goes: the in-process stages of a ``1x3`` request (``--stage-calls`` calls each, medians: JSON parse,
the store's read with its Redis round trip, the JSON answer) and, per server, its CPU per request at
``--concurrency`` connections (server CPU / req/s), beside the trivial ASGI app's (uvicorn's HTTP floor) and the
same fixed answer as a direct route of skewless' protocol (``bench.serving_apps.trivial_direct``: the floor of the
stack ``skewless serve`` answers ``/get-online-features`` with, no ASGI request cycle). The
machine may be shared: the 1-minute load average is recorded before and after each server's runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.serving_bench import ROOT, Server, free_port, measure, uvicorn_server
from bench.verdict import result_dirs

WORK = ROOT / ".bench" / "feature_server"
TOKEN = "bench-token"
VIEWS = {"driver_stats": {"conv_rate": "Float64", "acc_rate": "Float64", "trips": "Int64"},
         "driver_profile": {"city": "String", "age": "Int64"},
         "driver_rating": {"rating": "Float64", "reviews": "Int64"}}
FEATURES = [f"{v}:{f}" for v, fs in VIEWS.items() for f in fs]
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def view_frames(n: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ids = np.arange(1, n + 1, dtype=np.int64)
    ts = pd.Series([T0] * n)
    return {"driver_stats": pd.DataFrame({"driver_id": ids, "conv_rate": rng.random(n), "acc_rate": rng.random(n),
                                          "trips": rng.integers(0, 1000, n), "event_timestamp": ts}),
            "driver_profile": pd.DataFrame({"driver_id": ids, "city": [f"city{i % 97}" for i in ids],
                                            "age": rng.integers(18, 80, n), "event_timestamp": ts}),
            "driver_rating": pd.DataFrame({"driver_id": ids, "rating": rng.random(n) * 5,
                                           "reviews": rng.integers(0, 500, n), "event_timestamp": ts})}


def build_skewless(repo: Path, redis_url: str, frames: dict) -> None:
    import skewless as sk

    store = sk.init_repo(repo, project="fsbench")
    (repo / "skewless.yaml").write_text((repo / "skewless.yaml").read_text().replace(
        "url: sqlite:///data/online.db", f"url: {redis_url}\n  options: {{key_prefix: fsbench}}"))
    store = sk.FeatureStore(repo)
    driver = sk.Entity("driver", join_keys=["driver_id"])
    dt = {"Float64": sk.Float64, "Int64": sk.Int64, "String": sk.String}
    views = [sk.FeatureView(v, entities=[driver], schema=[sk.Field("driver_id", sk.Int64)]
                            + [sk.Field(f, dt[t]) for f, t in fs.items()]) for v, fs in VIEWS.items()]
    store.apply([driver, *views])
    for v, df in frames.items():
        store.ingest(v, df)


_FEAST_SETUP = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String
a = json.loads(sys.argv[1])
types = {"Float64": Float64, "Int64": Int64, "String": String}
open(a["repo"] + "/feature_store.yaml", "w").write(f'''project: fsbench
registry: {a["repo"]}/registry.db
provider: local
online_store:
  type: redis
  connection_string: "{a["redis"]}"
entity_key_serialization_version: 3
''')
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
views = [FeatureView(name=v, entities=[driver], ttl=timedelta(0), schema=[Field(name=f, dtype=types[t]) for f, t in fs.items()],
                     source=FileSource(path=f'{a["repo"]}/{v}.parquet', timestamp_field="event_timestamp"))
         for v, fs in a["views"].items()]
store = FeatureStore(repo_path=a["repo"])
store.apply([driver, *views])
store.materialize(datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc))
print("ok")
"""


def build_feast(python: Path, repo: Path, redis_url: str, frames: dict) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    for v, df in frames.items():
        df.to_parquet(repo / f"{v}.parquet")
    host_port = redis_url.split("://", 1)[1].split("/")[0]
    args = {"repo": str(repo), "redis": f"{host_port},db=0", "views": VIEWS}
    subprocess.run([str(python), "-c", _FEAST_SETUP, json.dumps(args)], check=True, cwd=repo)


class _Tree(Server):
    """A server whose work runs in child processes (feast serve: gunicorn's master and its worker)."""

    def cpu(self) -> float:
        import psutil

        procs = [psutil.Process(self.proc.pid)]
        procs += procs[0].children(recursive=True)
        return sum(t.user + t.system for p in procs for t in [p.cpu_times()])


def bodies(n: int, entities: int, count: int = 200) -> list[str]:
    rng = random.Random(entities)
    return [json.dumps({"features": FEATURES, "entities": {"driver_id": [rng.randint(1, n) for _ in range(entities)]}})
            for _ in range(count)]


def check_same_answers(skewless_url: str, feast_url: str, body: str) -> None:
    """Both servers answer the same values for the same request (so the comparison measures the same work)."""
    import httpx

    a = httpx.post(skewless_url + "/get-online-features", content=body, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}).json()
    b = httpx.post(feast_url + "/get-online-features", content=body,
                   headers={"Content-Type": "application/json"}).json()
    # Feast 0.67 lists a view's features in another order than requested; clients read them by name.
    def by_name(doc):
        return {n: ([round(x, 9) if isinstance(x, float) else x for x in r["values"]], r["statuses"])
                for n, r in zip(doc["metadata"]["feature_names"], doc["results"])}
    assert by_name(a) == by_name(b), (a, b)


def baseline_tree(ref: str) -> Path:
    """The code at git ``ref`` laid out as the installed ``skewless`` package (``sdk/`` is ``skewless``, ``serving/``
    its ``serving`` and so on, as the editable install maps them), for a server run with it first on PYTHONPATH: the
    previous code measured in the same run as the current one."""
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    dest = WORK / f"baseline-{sha}"
    pkg = dest / "skewless"
    if not pkg.exists():
        import shutil
        import tarfile
        import tempfile

        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            tar = subprocess.run(["git", "archive", "--format=tar", sha, "sdk", "adapters", "serving", "localstack"],
                                 cwd=ROOT, check=True, capture_output=True).stdout
            tarfile.open(fileobj=__import__("io").BytesIO(tar)).extractall(tmp, filter="data")
            shutil.move(Path(tmp) / "sdk", Path(tmp) / "skewless")
            for folder, name in (("adapters", "adapters"), ("serving", "serving"), ("localstack", "localcloud")):
                shutil.move(Path(tmp) / folder, Path(tmp) / "skewless" / name)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(tmp) / "skewless", pkg)
    return dest


def loaded(fn, *args, **kwargs) -> dict:
    """``fn``'s result with the machine's 1-minute load average before and after (the machine may be shared)."""
    before = os.getloadavg()[0]
    out = fn(*args, **kwargs)
    return {**out, "load_before": round(before, 2), "load_after": round(os.getloadavg()[0], 2)}


def stages(repo: Path, body_file: Path, calls: int) -> dict:
    """Median microseconds of each in-process stage of ``POST /get-online-features`` (what the server's route runs
    between the body and the answer's bytes), over the bench's 1x3 bodies."""
    from skewless import FeatureStore
    from skewless.serving.feature_server import feast_json

    store = FeatureStore(repo)
    raw = [line.encode() for line in body_file.read_text().splitlines()]
    reqs = [feast_json.parse_online(b, 1000) for b in raw]

    def read(req):
        return store.get_online_features(req.features, req.rows, full_feature_names=req.full_feature_names)

    resps = [read(r) for r in reqs]  # warm: the plan, the connection
    cases = {"parse_json": lambda i: feast_json.parse_online(raw[i], 1000), "online_read": lambda i: read(reqs[i]),
             "render_json": lambda i: feast_json.render_online(reqs[i], resps[i])}
    out = {}
    for name, fn in cases.items():
        times = []
        for k in range(calls):
            t0 = time.perf_counter()
            fn(k % len(raw))
            times.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(times) * 1e6, 1)
    return out


class LeanClient:
    """The timed loops' HTTP client: the standard library's keep-alive ``http.client`` with the JSON encoded by
    ``json.dumps`` (as httpx encodes ``json=``) inside the timed interval. Not httpx: on this 2-core host its layers
    cost ~1.2 ms of client CPU per request paced 10 ms apart (http.client ~0.55 ms, against a server answering in
    ~5 us), and a freshness cycle is two requests timed end to end on the same cores as the server, so httpx put
    1.5-2.5 ms of the client's own work into every push -> visible figure (bench/results/feature_server_i16fs_fresh.md)."""

    def __init__(self, port: int):
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, doc) -> tuple[int, bytes]:
        self.conn.request("POST", path, json.dumps(doc, separators=(",", ":")).encode(), self.headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def close(self) -> None:
        self.conn.close()


def freshness(server: Server, rate: int, batch: int, seconds: float, warmup: int = 20) -> dict:
    """``/push`` (online) at ``rate`` events/s in batches of ``batch``: per push, send -> answer (readable from then
    on), and send -> a read that sees it; the first ``warmup`` pushes not counted (the first one's time apart).
    Also the server's CPU per push (its process CPU over the measured run / pushes, the reads included), and this
    client's (``LeanClient``: it runs on the same cores)."""
    import resource

    cpu0 = server.cpu()
    client, reader = LeanClient(server.port), LeanClient(server.port)
    answered, visible = [], []
    interval = batch / rate
    n_push = int(seconds * rate / batch) + warmup
    next_id = 10_000_000
    first_ms = None
    start = time.perf_counter()
    late = 0
    for k in range(n_push):
        due = start + k * interval
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - due > interval:
            late += 1
        ids = list(range(next_id, next_id + batch))
        next_id += batch
        stamp = datetime.now(timezone.utc).isoformat()
        marker = float(k)
        body = {"push_source_name": "driver_stats", "to": "online", "df": {
            "driver_id": ids, "conv_rate": [marker] * batch, "acc_rate": [0.5] * batch, "trips": [k] * batch,
            "event_timestamp": [stamp] * batch}}
        t0 = time.perf_counter()
        status, text = client.post("/push", body)
        t1 = time.perf_counter()
        assert status == 200, text
        while True:
            status, text = reader.post("/get-online-features", {"features": ["driver_stats:conv_rate"],
                                                                "entities": {"driver_id": [ids[-1]]}})
            doc = json.loads(text)
            if doc["results"][1]["values"] == [marker]:
                seen = time.perf_counter()
                break
        if k == 0:
            first_ms = round((seen - t0) * 1000, 2)
        if k < warmup:
            continue
        if k == warmup:
            measured_from, cpu0, late = t0, server.cpu(), 0
            mine0 = resource.getrusage(resource.RUSAGE_SELF)
        answered.append(t1 - t0)
        visible.append(seen - t0)
    wall = time.perf_counter() - measured_from
    mine = resource.getrusage(resource.RUSAGE_SELF)
    client.close()
    reader.close()

    def pct(xs, q):
        return round(sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2)
    n_push -= warmup
    return {"rate_target": rate, "rate_achieved": round(n_push * batch / wall), "batch": batch, "pushes": n_push,
            "warmup_pushes": warmup, "first_push_visible_ms": first_ms,
            "server_cpu_ms_per_push": round((server.cpu() - cpu0) / n_push * 1000, 2),
            "client_cpu_ms_per_push": round((mine.ru_utime + mine.ru_stime - mine0.ru_utime - mine0.ru_stime)
                                            / n_push * 1000, 2),
            "late_pushes": late, "push_p50_ms": pct(answered, 0.5), "push_p99_ms": pct(answered, 0.99),
            "visible_p50_ms": pct(visible, 0.5), "visible_p99_ms": pct(visible, 0.99)}


def mixed(server: Server, rate: int, batch: int, seconds: float, body_file: Path, connections: int) -> dict:
    """Reads under wrk at ``connections`` (``body_file``'s requests) while ``/push`` runs at ``rate`` events/s in
    batches of ``batch`` on another connection: what pushes cost the reads, and what reads cost the pushes."""
    import threading

    from bench.serving_bench import wrk

    stop, answered = threading.Event(), []

    def pusher():
        client = LeanClient(server.port)
        try:
            next_id, due = 20_000_000, time.perf_counter()
            while not stop.is_set():
                ids = list(range(next_id, next_id + batch))
                next_id += batch
                body = {"push_source_name": "driver_stats", "to": "online", "df": {
                    "driver_id": ids, "conv_rate": [1.0] * batch, "acc_rate": [0.5] * batch, "trips": [1] * batch,
                    "event_timestamp": [datetime.now(timezone.utc).isoformat()] * batch}}
                t0 = time.perf_counter()
                status, text = client.post("/push", body)
                answered.append(time.perf_counter() - t0)
                assert status == 200, text
                due += batch / rate
                time.sleep(max(0.0, due - time.perf_counter()))
        finally:
            client.close()
    thread = threading.Thread(target=pusher, daemon=True)
    thread.start()
    time.sleep(1.0)  # the pushes' warm-up
    answered.clear()
    os.environ["AUTH"] = f"Bearer {TOKEN}"  # bench/serving_wrk.lua's header
    try:
        reads = wrk(server.url + "/get-online-features", body_file, connections, seconds, server)
    finally:
        os.environ.pop("AUTH")
        stop.set()
        thread.join(30)
    xs = sorted(answered)
    return {"read_rps": reads["rps"], "read_p50_ms": reads["p50_ms"], "read_p99_ms": reads["p99_ms"],
            "pushes": len(xs), "push_rate_achieved": round(len(xs) * batch / seconds),
            "push_p50_ms": round(xs[len(xs) // 2] * 1000, 2), "push_p99_ms": round(xs[int(len(xs) * .99)] * 1000, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, default=10_000, help="drivers per view")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-feast", action="store_true")
    ap.add_argument("--push-rate", type=int, default=10_000, help="events/s for the freshness run (0: no "
                    "freshness run)")
    ap.add_argument("--push-warmup", type=int, default=20, help="pushes before the freshness run, not counted")
    ap.add_argument("--only", choices=("http", "freshness"), help="run only the HTTP load (with the in-process "
                    "stages) or only the freshness run")
    ap.add_argument("--mixed", action="store_true", help="also read at --concurrency connections while /push runs "
                    "at --push-rate (each server, each round)")
    ap.add_argument("--push-batch", type=int, default=100, help="rows per push in the freshness run")
    ap.add_argument("--stage-calls", type=int, default=3000, help="in-process stages: calls per stage")
    ap.add_argument("--baseline", metavar="REF", help="also run the feature server of git REF (e.g. main), in "
                    "the same rounds: a change measured against the previous code")
    ap.add_argument("--workers", type=int, default=0, help="also run skewless serve with this many worker "
                    "processes (SKEWLESS_FS_WORKERS)")
    ap.add_argument("--tag", default="feature_server", help="results file name: bench/out/<tag>.{json,md}")
    ap.add_argument("--publish", action="store_true",
                    help="also write bench/results/<tag>.{json,md}, the published results the docs cite")
    args = ap.parse_args(argv)
    if args.push_rate < 0 or args.push_batch < 1:
        ap.error("--push-rate must be >= 0 and --push-batch >= 1")
    http, fresh_run = args.only != "freshness", args.only != "http" and args.push_rate > 0
    WORK.mkdir(parents=True, exist_ok=True)
    (ROOT / ".bench" / "serving").mkdir(parents=True, exist_ok=True)  # serving_bench.Server's logs
    from skewless.localcloud import LocalCloud

    cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", ROOT / ".skewless-local"))
    cloud.acquire(["redis"])
    servers: list[Server] = []
    try:
        url = cloud.endpoints()["redis"]
        frames = view_frames(args.entities)
        import shutil

        shutil.rmtree(WORK / "repo", ignore_errors=True)
        shutil.rmtree(WORK / "feast", ignore_errors=True)
        print(f"==> skewless repo: {args.entities} drivers x 3 views into Redis", flush=True)
        build_skewless(WORK / "repo", url, frames)
        files = {}
        for name, k in (("1x3", 1), ("100x3", 100)):
            files[name] = WORK / f"bodies-{name}.jsonl"
            files[name].write_text("\n".join(bodies(args.entities, k)) + "\n")
        stage_us = {}
        if http:
            print("==> in-process stages of a 1x3 request", flush=True)
            stage_us = stages(WORK / "repo", files["1x3"], args.stage_calls)
        port = free_port()
        env = {"SKEWLESS_REPO": str(WORK / "repo"), "SKEWLESS_FS_PORT": str(port), "SKEWLESS_FS_TOKENS": TOKEN,
               "SKEWLESS_LOG_LEVEL": "WARNING", "SKEWLESS_FS_MAX_ENTITIES": "1000"}
        sk = Server("skewless-fs", [sys.executable, "-m", "skewless", "serve"], env, "/health", port)
        servers.append(sk)
        base = None
        if args.baseline:
            bport = free_port()
            tree = baseline_tree(args.baseline)
            base = Server("skewless-fs-baseline", [sys.executable, "-m", "skewless", "serve"],
                          {**env, "SKEWLESS_FS_PORT": str(bport), "PYTHONPATH": str(tree)}, "/health", bport)
            servers.append(base)
            where = subprocess.run([sys.executable, "-c", "import skewless.serving.feature_server.app as m; "
                                    "print(m.__file__)"], env={**os.environ, "PYTHONPATH": str(tree)},
                                   capture_output=True, text=True, check=True).stdout
            assert where.startswith(str(tree)), f"the baseline would run this checkout's code: {where}"
        multi = None
        if args.workers > 1:
            mport = free_port()
            multi = _Tree(f"skewless-fs-w{args.workers}", [sys.executable, "-m", "skewless", "serve"],
                          {**env, "SKEWLESS_FS_PORT": str(mport), "SKEWLESS_FS_WORKERS": str(args.workers)},
                          "/health", mport)
            servers.append(multi)
        triv = uvicorn_server("trivial-fs", "bench.serving_apps:trivial", {}, "/", factory=False)
        servers.append(triv)
        from skewless.serving.http_protocol import PROTOCOL_PATH

        dport = free_port()  # the same fixed answer through the protocol's direct route (skewless serve's floor)
        direct = Server("trivial-direct-fs", [sys.executable, "-m", "uvicorn", "bench.serving_apps:trivial_direct",
                                              "--host", "127.0.0.1", "--port", str(dport), "--no-access-log",
                                              "--log-level", "warning", "--http", PROTOCOL_PATH], {}, "/", dport)
        servers.append(direct)
        feast = None
        if http and not args.no_feast:
            from skewless.process import cached_venv

            python = cached_venv("feast-0.67", sys.executable, ["feast[redis]==0.67.0"])
            print("==> Feast repo: the same rows, materialized into the same Redis", flush=True)
            build_feast(python, WORK / "feast", url, frames)
            fport = free_port()
            feast = _Tree("feast-serve", [str(python.parent / "feast"), "-c", str(WORK / "feast"), "serve", "-h",
                                           "127.0.0.1", "-p", str(fport), "--no-access-log", "-w", "1",
                                          "--max-requests", "0"],  # else its worker restarts every ~1000 requests
                           {}, "/health", fport)
            servers.append(feast)
            check_same_answers(sk.url, feast.url, files["100x3"].read_text().splitlines()[0])
        rows = []
        for rnd in range(1, args.rounds + 1 if http else 1):
            os.environ.pop("AUTH", None)
            rows.append({"case": "trivial ASGI (calibration)", "body": "1x3", "round": rnd,
                         **loaded(measure, triv, "/", files["1x3"], args)})
            rows.append({"case": "trivial direct route (calibration)", "body": "1x3", "round": rnd,
                         **loaded(measure, direct, "/", files["1x3"], args)})
            for body in ("1x3", "100x3"):
                os.environ["AUTH"] = f"Bearer {TOKEN}"
                # alternated: the baseline first in odd rounds, this code first in even ones (shared machine)
                pair = [(f"skewless serve ({args.baseline})", base), ("skewless serve", sk),
                        (f"skewless serve, {args.workers} workers", multi)]
                for case, srv in (pair if rnd % 2 else pair[::-1]):
                    if srv is not None:
                        rows.append({"case": case, "body": body, "round": rnd,
                                     **loaded(measure, srv, "/get-online-features", files[body], args)})
                os.environ.pop("AUTH")
                if feast is not None:
                    rows.append({"case": "feast serve 0.67", "body": body, "round": rnd,
                                 **loaded(measure, feast, "/get-online-features", files[body], args)})
        os.environ.pop("AUTH", None)
        print("==> freshness: /push -> online", flush=True)
        fresh = []  # per round, each server (alternating order, as above)
        for rnd in range(1, args.rounds + 1 if fresh_run else 1):
            pair = [(f"skewless serve ({args.baseline})", base), ("skewless serve", sk)]
            for case, srv in (pair if rnd % 2 else pair[::-1]):
                if srv is not None:
                    fresh.append({"case": case, "round": rnd, **loaded(
                        freshness, srv, args.push_rate, args.push_batch, seconds=max(args.seconds, 5),
                        warmup=args.push_warmup)})
        mix = []
        for rnd in range(1, args.rounds + 1 if args.mixed and args.push_rate > 0 else 1):
            pair = [(f"skewless serve ({args.baseline})", base), ("skewless serve", sk)]
            for case, srv in (pair if rnd % 2 else pair[::-1]):
                if srv is not None:
                    mix.append({"case": case, "round": rnd, **loaded(
                        mixed, srv, args.push_rate, args.push_batch, args.seconds, files["1x3"], args.concurrency)})
        doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
               "command": "./run shell -m bench.feature_server_bench " + " ".join(argv if argv is not None
                                                                                 else sys.argv[1:]),
               "entities": args.entities, "concurrency": args.concurrency, "seconds": args.seconds,
               "http": rows, "freshness": fresh, "mixed": mix, "stages_us": stage_us, "baseline": args.baseline}
        for folder in result_dirs(args.publish):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{args.tag}.json").write_text(json.dumps(doc, indent=1))
            (folder / f"{args.tag}.md").write_text(markdown(doc) + "\n")
        print(markdown(doc))
    finally:
        for s in servers:
            s.stop()
        cloud.release()
    return 0


def markdown(doc: dict) -> str:
    c = doc["concurrency"]
    lines = [f"Feature server vs feast serve ({doc['when']}, {doc['machine']}). Command: `{doc['command']}`. "
             f"{doc['entities']:,} drivers x 3 views in the local Redis; wrk 1 thread, latency at 1 connection, "
             f"throughput at {c} connections, {doc['seconds']} s each; medians over rounds.", "",
             f"| server | request | p50 ms (1 conn) | p99 ms (1 conn) | req/s ({c} conn) | p99 ms ({c} conn) | "
             f"CPU server / wrk | server CPU us/request ({c} conn) | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["case"], r["body"]) for r in doc["http"]}, key=lambda k: (k[1], k[0]))
    for case, body in keys:
        rs = [r for r in doc["http"] if r["case"] == case and r["body"] == body]

        def med(part, key, rs=rs):
            return statistics.median(r[part][key] for r in rs)
        lines.append(f"| {case} | {body} | {med('latency_c1', 'p50_ms'):.3f} | {med('latency_c1', 'p99_ms'):.3f} | "
                     f"{med('throughput', 'rps'):,.0f} | {med('throughput', 'p99_ms'):.2f} | "
                     f"{med('throughput', 'server_cpu'):.2f} / {med('throughput', 'client_cpu'):.2f} | "
                     f"{statistics.median(r['throughput']['server_cpu'] / r['throughput']['rps'] * 1e6 for r in rs):.0f} | "
                     f"{min(r.get('load_before', 0) for r in rs):.1f}-{max(r.get('load_after', 0) for r in rs):.1f} |")
    fresh = doc["freshness"] if isinstance(doc["freshness"], list) else [{"case": "skewless serve", **doc["freshness"]}]
    if fresh:
        lines += [""]
    for f in fresh:
        rnd = f", round {f['round']}" if "round" in f else ""
        lines += [f"- Freshness, {f['case']}{rnd}: `/push` (online) at {f['rate_target']:,} events/s target "
                  f"({f['rate_achieved']:,} achieved; {f['pushes']} pushes of {f['batch']} rows, {f['late_pushes']} "
                  f"sent late): push answered p50 {f['push_p50_ms']} ms / p99 {f['push_p99_ms']} ms; visible to a "
                  f"read p50 {f['visible_p50_ms']} ms / p99 {f['visible_p99_ms']} ms; server CPU "
                  f"{f.get('server_cpu_ms_per_push', '?')} ms per push (client {f.get('client_cpu_ms_per_push', '?')}); after {f.get('warmup_pushes', 0)} warm-up "
                  f"pushes (the server's first push visible in {f.get('first_push_visible_ms', '?')} ms) (load average "
                  f"{f.get('load_before', '?')} before, {f.get('load_after', '?')} after)."]
    for m in doc.get("mixed", []):
        lines += [f"- Reads under pushes, {m['case']}, round {m['round']}: 1x3 at {doc['concurrency']} connections "
                  f"{m['read_rps']:,.0f} req/s (p50 {m['read_p50_ms']} / p99 {m['read_p99_ms']} ms) while `/push` ran "
                  f"at {m['push_rate_achieved']:,} events/s (answered p50 {m['push_p50_ms']} / p99 {m['push_p99_ms']} "
                  f"ms) (load average {m['load_before']} before, {m['load_after']} after)."]
    if doc.get("stages_us"):
        lines += ["", "In process, one 1x3 request (median us): " + ", ".join(
            f"{k} {v}" for k, v in doc["stages_us"].items()) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Serving latency and throughput over HTTP on loopback (``./run shell -m bench.serving_bench``).

    ./run shell -m bench.serving_bench [--requests N] [--concurrency C] [--seconds S] [--online sqlite,redis]

Builds the credit-scoring repo (SQLite and Redis online stores; Redis is the local cloud's, started if needed and
stopped afterwards only if this run started it), trains two scikit-learn pipelines on its training set (a
LogisticRegression with one-hot/scaling, and the demo's HistGradientBoosting; plus a one-feature LogisticRegression
whose predict costs almost nothing, to show the server's own cost), packages them, and measures:

- skewless: ``python -m skewless.serving serve`` (the image's entry point) as a subprocess on a free loopback port;
  requests carry a loan id only, features are looked up online (two read stages) and every prediction is logged;
- baseline: plain FastAPI + scikit-learn (``bench/serving_apps.py``), the request carries the features;
- trivial: a bare ASGI app on the same uvicorn, which calibrates the load generator (and is the HTTP floor);
- in-process floor: ``ServedModel.parse`` + ``predict_batch`` (online read + predict + log hand-off) called
  directly, and the bare ``predict_proba`` on a one-row frame.

Load generator: ``wrk`` (Debian package) with ``bench/serving_wrk.lua`` cycling through pre-built POST bodies.
Latency is measured at concurrency 1 (p50/p99, one connection, keep-alive); throughput at ``--concurrency``
connections. wrk and the server share the 2 cores; their CPU use is reported with each run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.verdict import result_dirs, verdict_lines
from skewless.sample_repo import credit_repo  # the serving tests check the same repo

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "serving"
LUA = Path(__file__).with_name("serving_wrk.lua")
SERVICE = "credit_model_v1"
CASES = ("trivial", "baseline", "peer", "skewless")
CATS = ["person_home_ownership", "loan_intent", "location_type"]


# -- setup ---------------------------------------------------------------------------------------------------------
def logistic(features: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    nums = [f for f in features if f not in CATS]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), CATS),
                             ("num", make_pipeline(SimpleImputer(), StandardScaler()), nums)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))])


def train_and_package(store, repo: Path) -> dict:
    """{model name: (artifact folder, joblib file)} for the two pipelines, fitted on the service's training set."""
    import joblib

    from skewless.demo import _model
    from skewless.serving import package_model

    loans = pd.read_parquet(repo / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", "loan_status"])
    job = store.get_historical_features(loans, SERVICE)
    train = job.to_pandas()
    features = [r.split(":")[1] for r in job.features]
    out = {}
    from sklearn.linear_model import LogisticRegression

    # logreg1: one feature, no preprocessing: what the server itself costs when the model costs almost nothing.
    for name, pipe, cols in (("logreg1", LogisticRegression(), ["loan_int_rate"]),
                             ("logreg", logistic(features), features), ("hgb", _model(), features)):
        model = pipe.fit(train[cols], train["loan_status"])
        art = package_model(model, name=name, store=store, feature_service=SERVICE, training_set=job,
                            key_lookups={"zipcode": "loan_zipcode:zipcode"}, path=WORK / "models" / name)
        joblib.dump(model, WORK / "models" / f"{name}.joblib")
        out[name] = (art.path, WORK / "models" / f"{name}.joblib")
    return out


def bodies(store, repo: Path, n: int = 200) -> tuple[list[dict], list[dict]]:
    """(skewless bodies: loan ids, baseline bodies: the same loans' features as read online)."""
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet", columns=["loan_id", "zipcode"])
    picks = loans.drop_duplicates("loan_id").sample(min(n, len(loans)), random_state=7)
    rows = [{"loan_id": int(r.loan_id), "zipcode": int(r.zipcode)} for r in picks.itertuples()]
    values = store.get_online_features(SERVICE, rows).values
    feats = [k for k in values if k not in ("loan_id", "zipcode")]
    return ([{"loan_id": r["loan_id"]} for r in rows],
            [{f: values[f][i] for f in feats} for i in range(len(rows))])


# -- processes -----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess on a free loopback port, ready once ``probe`` answers 200."""

    def __init__(self, name: str, argv: list[str], env: dict, probe: str, port: int):
        self.name, self.port, self.url = name, port, f"http://127.0.0.1:{port}"
        self.log = open(WORK / f"{name}.log", "w")
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + probe, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.log.name}")
            time.sleep(0.1)

    def cpu(self) -> float:
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: skewless answers what is queued and flushes its prediction log
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def skewless_server(name: str, repo: Path, model_dir: Path, python: str = sys.executable) -> Server:
    """``python -m skewless.serving serve``; ``python`` of another checkout's venv serves that checkout's code."""
    port = free_port()
    env = {"SKEWLESS_REPO": str(repo), "SKEWLESS_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SKEWLESS_HOST": "127.0.0.1", "SKEWLESS_LOG_LEVEL": "WARNING"}
    return Server(name, [python, "-m", "skewless.serving", "serve"], env, "/ping", port)


PEER_PREFIX = "servingpeer"


def write_peer_rows(store, url: str, skew_bodies: list[dict]) -> None:
    """The peer's copy of the bodies' online rows in Redis, read through skewless once: one JSON object per (view,
    entity) under ``<PEER_PREFIX>:<view>:<id>``, as a plain app would store them; plus each view's columns."""
    import redis

    views = {v: store.get_feature_view(v).feature_names for v in ("loan_features", "loan_zipcode",
                                                                   "zipcode_features")}
    rows = [{"loan_id": b["loan_id"]} for b in skew_bodies]
    values = store.get_online_features([f"{v}:{f}" for v in ("loan_features", "loan_zipcode") for f in views[v]],
                                       rows, full_feature_names=True).values
    zips = [{"zipcode": z} for z in values["loan_zipcode__zipcode"]]
    values.update(store.get_online_features([f"zipcode_features:{f}" for f in views["zipcode_features"]], zips,
                                            full_feature_names=True).values)
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for v, feats in views.items():
        pipe.set(f"{PEER_PREFIX}:__columns:{v}", json.dumps(feats))
    for i, r in enumerate(rows):
        zipcode = values["loan_zipcode__zipcode"][i]
        for v, feats in views.items():
            key = r["loan_id"] if v != "zipcode_features" else zipcode
            pipe.set(f"{PEER_PREFIX}:{v}:{key}", json.dumps({f: values[f"{v}__{f}"][i] for f in feats}))
    pipe.execute()
    client.close()


def uvicorn_server(name: str, target: str, env: dict, probe: str, factory: bool) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning"] + (["--factory"] if factory else [])
    return Server(name, argv, env, probe, port)


def wrk(url: str, body_file: Path, connections: int, seconds: float, server: Server) -> dict:
    """One wrk run (1 thread); its JSON summary plus the CPU seconds wrk and the server used."""
    env = {**os.environ, "BODIES": str(body_file)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = server.cpu()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA),
                          url], env=env, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in out.splitlines() if ln.startswith("JSON "))
    res = json.loads(line[5:])
    wall = res["duration_us"] / 1e6
    res.update(rps=round(res["requests"] / wall, 1), p50_ms=res["p50_us"] / 1000, p99_ms=res["p99_us"] / 1000,
               client_cpu=round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall, 2),
               server_cpu=round((server.cpu() - cpu0) / wall, 2), connections=connections)
    errors = sum(v for k, v in res.items() if k.startswith("errors_"))
    if errors:
        raise RuntimeError(f"{server.name}: {errors} failed requests: {res}")
    return res


def measure(server: Server, path: str, body_file: Path, args) -> dict:
    wrk(server.url + path, body_file, 1, 1, server)  # warm-up: imports, caches, the first batch
    lat = wrk(server.url + path, body_file, 1, args.seconds, server)
    tput = wrk(server.url + path, body_file, args.concurrency, args.seconds, server)
    return {"latency_c1": lat, "throughput": tput}


# -- in-process floor ----------------------------------------------------------------------------------------------
def in_process(repo: Path, model_dir: Path, model_file: Path, skew_bodies, base_bodies, n: int) -> dict:
    import joblib

    from skewless import FeatureStore
    from skewless.serving.artifact import ModelArtifact
    from skewless.serving.model import ServedModel

    served = ServedModel(ModelArtifact(model_dir), FeatureStore(repo))
    served.load()

    def pct(ts):
        ts = sorted(ts)
        return {"p50_ms": round(statistics.median(ts) * 1000, 4), "p99_ms": round(ts[int(len(ts) * .99)] * 1000, 4)}

    times = []
    for i in range(n):
        body = skew_bodies[i % len(skew_bodies)]
        t0 = time.perf_counter()
        served.predict_batch([served.parse(body)])
        times.append(time.perf_counter() - t0)
    served.close()
    model = joblib.load(model_file)
    cols = list(model.feature_names_in_)
    frames = [pd.DataFrame([b], columns=cols) for b in base_bodies]
    bare = []
    for i in range(n):
        t0 = time.perf_counter()
        model.predict_proba(frames[i % len(frames)])
        bare.append(time.perf_counter() - t0)
    return {"served_predict": pct(times), "bare_predict_proba": pct(bare)}


# -- report --------------------------------------------------------------------------------------------------------
def _median(rows: list[dict], part: str, key: str) -> float:
    return round(statistics.median(r[part][key] for r in rows), 3)


def summary(doc: dict) -> list[dict]:
    """Per (case, online), the median over rounds of p50 / p99 at 1 connection, req/s and p99 at ``concurrency``."""
    groups: dict[tuple, list] = {}
    for r in doc["http"]:
        groups.setdefault((r["case"], r["online"]), []).append(r)
    return [{"case": case, "online": online, "runs": len(rows), "p50_ms": _median(rows, "latency_c1", "p50_ms"),
             "p99_ms": _median(rows, "latency_c1", "p99_ms"), "rps": _median(rows, "throughput", "rps"),
             "p99_ms_c": _median(rows, "throughput", "p99_ms"),
             # server CPU per request at the throughput run: what the server costs whatever else runs on the cores
             "cpu_us": round(statistics.median(r["throughput"]["server_cpu"] / r["throughput"]["rps"] * 1e6
                                               for r in rows), 1)} for (case, online), rows in groups.items()]


def goal_figures(rows: list[dict]) -> list[tuple[str, str, float | None]]:
    """Issue 14's goals for the server with a Redis lookup and the prediction log (logreg1, a model that costs
    little per call), on the medians: p50 and p99 at 1 connection, req/s and p99 at the throughput run, and the
    ratios to the plain FastAPI peer doing the same job."""
    def get(case: str) -> dict | None:
        return next((r for r in rows if r["case"].startswith(case) and r["online"] == "redis"), None)
    me, peer = get("skewless, logreg1 "), get("FastAPI peer, logreg1 ")
    if me is None:
        return []
    what = "skewless, logreg1, redis (median of rounds)"
    out = [("serving_goal_p50_ms", f"{what}: HTTP p50 at 1 connection", me["p50_ms"]),
           ("serving_goal_p99_ms", f"{what}: HTTP p99 at 1 connection", me["p99_ms"]),
           ("serving_goal_p99_ms", f"{what}: HTTP p99 at the throughput run", me["p99_ms_c"]),
           ("serving_goal_rps", f"{what}: req/s at the throughput run", me["rps"])]
    if peer is not None:
        out += [("serving_vs_peer", f"{what}: req/s / the FastAPI peer's", round(me["rps"] / peer["rps"], 2)),
                ("serving_vs_peer", f"{what}: the FastAPI peer's p50 / skewless p50",
                 round(peer["p50_ms"] / me["p50_ms"], 2))]
    return out


def markdown(doc: dict) -> str:
    c = doc["concurrency"]
    lines = [f"# Serving benchmark ({doc['when']}, {doc['machine']})", "",
             f"Command: `{doc['command']}`. wrk {doc['wrk']}, 1 thread; latency at 1 connection, throughput at "
             f"{c} connections, {doc['seconds']} s each; {doc.get('rounds', 1)} round(s), every server once per "
             "round in turn. CPU = cores used on average (server / wrk); load = the 1-minute load average when the "
             "server started (2 cores, shared with other users).", "",
             f"| case | online | round | load | p50 ms | p99 ms | req/s at c=1 | req/s at c={c} | p99 ms at c={c} | "
             "CPU server / wrk |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["http"]:
        lat, tp = r["latency_c1"], r["throughput"]
        lines.append(f"| {r['case']} | {r['online']} | {r.get('round', 1)} | {r.get('load', '-')} | "
                     f"{lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | {lat['rps']:.0f} | {tp['rps']:.0f} | "
                     f"{tp['p99_ms']:.2f} | {tp['server_cpu']} / {tp['client_cpu']} |")
    rows = summary(doc)
    lines += ["", "Medians over the rounds (server CPU per request: its CPU seconds / requests at the throughput run, "
              "which load from other programs changes less than req/s):", "",
              f"| case | online | runs | p50 ms | p99 ms | req/s at c={c} | p99 ms at c={c} | server CPU us/request |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['online']} | {r['runs']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rps']:.0f} "
              f"| {r['p99_ms_c']:.2f} | {r['cpu_us']:.0f} |" for r in rows]
    lines += ["", "In-process floor (no HTTP; `ServedModel.parse` + `predict_batch` = online read + predict + log "
              "hand-off; and the bare `predict_proba` on a prebuilt one-row DataFrame):", "",
              "| model | online | served_predict p50 / p99 ms | bare predict_proba p50 / p99 ms |", "|---|---|---|---|"]
    for r in doc["in_process"]:
        s, b = r["served_predict"], r["bare_predict_proba"]
        lines.append(f"| {r['model']} | {r['online']} | {s['p50_ms']:.3f} / {s['p99_ms']:.3f} | "
                     f"{b['p50_ms']:.3f} / {b['p99_ms']:.3f} |")
    # The p50 target is for a model that costs little per call; with a pipeline, scikit-learn's own per-call cost is
    # the latency (docs/benchmarks.md), so those rows have no target.
    cheap = [(r["case"], r["online"], r["p50_ms"]) for r in rows if r["case"].startswith("skewless, logreg1")]
    lines += ["", "targets:"] + verdict_lines(
        [("serving_p50_ms", f"{case}, {online}: HTTP p50 at 1 connection", p50) for case, online, p50 in cheap]
        or [("serving_p50_ms", "", None)]) + verdict_lines(goal_figures(rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.serving_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="in-process floor: calls per case")
    ap.add_argument("--concurrency", type=int, default=16, help="wrk connections for the throughput run")
    ap.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    ap.add_argument("--online", default="sqlite,redis", help="online stores to measure (sqlite, redis)")
    ap.add_argument("--models", default="logreg1,logreg,hgb")
    ap.add_argument("--cases", default=",".join(CASES), help=f"which servers to run, of {', '.join(CASES)}")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every server this many times, alternating (load from others falls on all alike)")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=PYTHON",
                    help="also run skewless's server with another checkout's venv python (e.g. "
                         "main=/work/wt-main/.venv/bin/python), alternating with this one, on the same data")
    ap.add_argument("--tag", default="serving", help="results file name: bench/out/<tag>.{json,md}")
    ap.add_argument("--publish", action="store_true",
                    help="also write bench/results/<tag>.{json,md}, the published results the docs cite")
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    if not shutil.which("wrk") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("==> installing wrk (apt, Debian's package)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk (Debian package)")
    if {"baseline", "peer"} & set(cases) and importlib.util.find_spec("fastapi") is None:
        sys.exit('the baseline and the peer need FastAPI: .venv/bin/pip install -e ".[bench]"')
    onlines, models = args.online.split(","), args.models.split(",")
    skewlesses = [("skewless", sys.executable)] + [tuple(c.split("=", 1)) for c in args.compare]
    WORK.mkdir(parents=True, exist_ok=True)
    print("==> building the credit repo and training the models", flush=True)
    store = credit_repo(WORK / "repo-sqlite")
    arts = train_and_package(store, WORK / "repo-sqlite")
    skew_bodies, base_bodies = bodies(store, WORK / "repo-sqlite")
    files = {"skewless": WORK / "bodies-skewless.jsonl", "baseline": WORK / "bodies-baseline.jsonl"}
    files["skewless"].write_text("".join(json.dumps(b) + "\n" for b in skew_bodies))
    files["baseline"].write_text("".join(json.dumps(b) + "\n" for b in base_bodies))
    repos = {"sqlite": WORK / "repo-sqlite"}
    cloud = url = None
    if "redis" in onlines:
        from skewless.localcloud import LocalCloud

        # The shared local cloud's state folder, as the tests use it (SKEWLESS_LOCAL_STATE), else this checkout's.
        cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", ROOT / ".skewless-local"))
        cloud.acquire(["redis"])  # a lease: stopped at the end only if this run started it
        url = cloud.endpoints()["redis"]
        write_peer_rows(credit_repo(WORK / "repo-redis", f"url: {url}\n  options: {{key_prefix: servingbench}}"),
                        url, skew_bodies)
        repos["redis"] = WORK / "repo-redis"
    doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
           "command": "./run shell -m bench.serving_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
           "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1],
           "concurrency": args.concurrency, "seconds": args.seconds, "rounds": args.rounds, "http": [],
           "in_process": []}

    def run(case: str, online: str, rnd: int, srv: Server, path: str, body_file: Path) -> None:
        try:
            doc["http"].append({"case": case, "online": online, "round": rnd,
                                "load": round(os.getloadavg()[0], 2), **measure(srv, path, body_file, args)})
        finally:
            srv.stop()

    try:
        for rnd in range(1, args.rounds + 1):
            if "trivial" in cases:
                print(f"==> [{rnd}] trivial ASGI app (load generator calibration / HTTP floor)", flush=True)
                run("trivial ASGI (calibration)", "-", rnd,
                    uvicorn_server("trivial", "bench.serving_apps:trivial", {}, "/", factory=False),
                    "/", files["baseline"])
            for model in models:
                art, joblib_file = arts[model]
                if "baseline" in cases:
                    print(f"==> [{rnd}] baseline FastAPI + scikit-learn, {model}", flush=True)
                    run(f"FastAPI baseline, {model} (features in request)", "-", rnd,
                        uvicorn_server(f"baseline-{model}", "bench.serving_apps:baseline",
                                       {"BENCH_MODEL": str(joblib_file)}, "/ping", factory=True),
                        "/predict", files["baseline"])
                if "peer" in cases and url is not None:
                    print(f"==> [{rnd}] peer FastAPI + redis-py + scikit-learn, {model}", flush=True)
                    env = {"BENCH_MODEL": str(joblib_file), "BENCH_REDIS_URL": url, "BENCH_PEER_PREFIX": PEER_PREFIX,
                           "BENCH_PEER_LOG": str(WORK / f"peer-{model}-predictions.jsonl")}
                    run(f"FastAPI peer, {model} (redis-py lookup + log)", "redis", rnd,
                        uvicorn_server(f"peer-{model}", "bench.serving_apps:peer", env, "/ping", factory=True),
                        "/invocations", files["skewless"])
                for online in onlines:
                    for label, python in skewlesses if "skewless" in cases else ():
                        print(f"==> [{rnd}] {label}, {model}, {online}", flush=True)
                        run(f"{label}, {model} (lookup + log)", online, rnd,
                            skewless_server(f"{label}-{model}-{online}", repos[online], art, python),
                            "/invocations", files["skewless"])
                    if rnd == args.rounds and "skewless" in cases:
                        doc["in_process"].append({"model": model, "online": online, **in_process(
                            repos[online], art, joblib_file, skew_bodies, base_bodies, args.requests)})
    finally:
        if cloud is not None:
            cloud.release()
    for folder in result_dirs(args.publish):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{args.tag}.json").write_text(json.dumps(doc, indent=1))
        (folder / f"{args.tag}.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

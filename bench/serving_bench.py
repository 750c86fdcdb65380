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


def skewless_server(name: str, repo: Path, model_dir: Path) -> Server:
    port = free_port()
    env = {"SKEWLESS_REPO": str(repo), "SKEWLESS_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SKEWLESS_HOST": "127.0.0.1", "SKEWLESS_LOG_LEVEL": "WARNING"}
    return Server(name, [sys.executable, "-m", "skewless.serving", "serve"], env, "/ping", port)


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
def markdown(doc: dict) -> str:
    lines = [f"# Serving benchmark ({doc['when']}, {doc['machine']})", "",
             f"Command: `{doc['command']}`. wrk {doc['wrk']}, 1 thread; latency at 1 connection, throughput at "
             f"{doc['concurrency']} connections, {doc['seconds']} s each. CPU = cores used on average "
             "(server / wrk).", "",
             f"| case | online | p50 ms | p99 ms | req/s at c=1 | req/s at c={doc['concurrency']} | p99 ms at "
             f"c={doc['concurrency']} | CPU server / wrk |", "|---|---|---|---|---|---|---|---|"]
    for r in doc["http"]:
        lat, tp = r["latency_c1"], r["throughput"]
        lines.append(f"| {r['case']} | {r['online']} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | {lat['rps']:.0f} "
                     f"| {tp['rps']:.0f} | {tp['p99_ms']:.2f} | {tp['server_cpu']} / {tp['client_cpu']} |")
    lines += ["", "In-process floor (no HTTP; `ServedModel.parse` + `predict_batch` = online read + predict + log "
              "hand-off; and the bare `predict_proba` on a prebuilt one-row DataFrame):", "",
              "| model | online | served_predict p50 / p99 ms | bare predict_proba p50 / p99 ms |", "|---|---|---|---|"]
    for r in doc["in_process"]:
        s, b = r["served_predict"], r["bare_predict_proba"]
        lines.append(f"| {r['model']} | {r['online']} | {s['p50_ms']:.3f} / {s['p99_ms']:.3f} | "
                     f"{b['p50_ms']:.3f} / {b['p99_ms']:.3f} |")
    # The p50 target is for a model that costs little per call; with a pipeline, scikit-learn's own per-call cost is
    # the latency (docs/benchmarks.md), so those rows have no target.
    cheap = [(r["case"], r["online"], r["latency_c1"]["p50_ms"]) for r in doc["http"]
             if r["case"].startswith("skewless, logreg1")]
    lines += ["", "targets:"] + verdict_lines(
        [("serving_p50_ms", f"{case}, {online}: HTTP p50 at 1 connection", p50) for case, online, p50 in cheap]
        or [("serving_p50_ms", "", None)])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.serving_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="in-process floor: calls per case")
    ap.add_argument("--concurrency", type=int, default=16, help="wrk connections for the throughput run")
    ap.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    ap.add_argument("--online", default="sqlite,redis", help="online stores to measure (sqlite, redis)")
    ap.add_argument("--models", default="logreg1,logreg,hgb")
    ap.add_argument("--tag", default="serving", help="results file name: bench/out/<tag>.{json,md}")
    ap.add_argument("--publish", action="store_true",
                    help="also write bench/results/<tag>.{json,md}, the published results the docs cite")
    args = ap.parse_args(argv)
    if not shutil.which("wrk") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("==> installing wrk (apt, Debian's package)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk (Debian package)")
    if importlib.util.find_spec("fastapi") is None:
        sys.exit('the baseline needs FastAPI: .venv/bin/pip install -e ".[bench]"')
    onlines, models = args.online.split(","), args.models.split(",")
    WORK.mkdir(parents=True, exist_ok=True)
    print("==> building the credit repo and training the models", flush=True)
    store = credit_repo(WORK / "repo-sqlite")
    arts = train_and_package(store, WORK / "repo-sqlite")
    skew_bodies, base_bodies = bodies(store, WORK / "repo-sqlite")
    files = {"skewless": WORK / "bodies-skewless.jsonl", "baseline": WORK / "bodies-baseline.jsonl"}
    files["skewless"].write_text("".join(json.dumps(b) + "\n" for b in skew_bodies))
    files["baseline"].write_text("".join(json.dumps(b) + "\n" for b in base_bodies))
    repos = {"sqlite": WORK / "repo-sqlite"}
    cloud = None
    if "redis" in onlines:
        from skewless.localcloud import LocalCloud

        cloud = LocalCloud(ROOT / ".skewless-local")
        cloud.acquire(["redis"])  # a lease: stopped at the end only if this run started it
        url = cloud.endpoints()["redis"]
        credit_repo(WORK / "repo-redis", f"url: {url}\n  options: {{key_prefix: servingbench}}")
        repos["redis"] = WORK / "repo-redis"
    doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
           "command": "./run shell -m bench.serving_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
           "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1],
           "concurrency": args.concurrency, "seconds": args.seconds, "http": [], "in_process": []}
    try:
        print("==> trivial ASGI app (load generator calibration / HTTP floor)", flush=True)
        srv = uvicorn_server("trivial", "bench.serving_apps:trivial", {}, "/", factory=False)
        try:
            doc["http"].append({"case": "trivial ASGI (calibration)", "online": "-",
                                **measure(srv, "/", files["baseline"], args)})
        finally:
            srv.stop()
        for model in models:
            art, joblib_file = arts[model]
            print(f"==> baseline FastAPI + scikit-learn, {model}", flush=True)
            srv = uvicorn_server(f"baseline-{model}", "bench.serving_apps:baseline", {"BENCH_MODEL": str(joblib_file)},
                                 "/ping", factory=True)
            try:
                doc["http"].append({"case": f"FastAPI baseline, {model} (features in request)", "online": "-",
                                    **measure(srv, "/predict", files["baseline"], args)})
            finally:
                srv.stop()
            for online in onlines:
                print(f"==> skewless, {model}, {online}", flush=True)
                srv = skewless_server(f"skewless-{model}-{online}", repos[online], art)
                try:
                    doc["http"].append({"case": f"skewless, {model} (lookup + log)", "online": online,
                                        **measure(srv, "/invocations", files["skewless"], args)})
                finally:
                    srv.stop()
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

"""Web UI page server time (issue 18's goal: each page <= 200 ms with 1,000 views and 100 models in the registry).

    .venv/bin/python -m bench.ui_bench [--views 1000] [--models 100] [--reps 15] [--publish]
                                       # writes bench/out/ui_bench.json (+ bench/results/ with --publish)

The repo: 1,000 feature views (tags team=t<i mod 10>, owner o<i mod 7>, three features each) applied in ten
commits of 100 (ten registry versions), 50 feature services, then 100 models (a scikit-learn logistic regression
packaged and registered under 100 names, each adding its prediction-log view: one registry version each), half
promoted to production; view v0000 gets 99 appends of 1,000 rows, so its statistics page merges the most records a
version can need (a cumulative record every 50 versions). Each page is requested through the app in process (httpx's ASGI transport: the server's work,
no network); the first request of a page (a cold cache of parsed registry versions) and the median of
``--reps`` warm ones are reported. The target applies to the slowest page's median; the cold figures show the cost
of the first read after a start without the start-up warm-up (``Catalogue.warm``, run by the app's lifespan in a
thread, which the ASGI transport here does not start): /versions parses every registry version then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

import skewless as sk
from bench.verdict import TARGETS, result_dirs, verdict_lines
from skewless.serving.artifact import package_model
from skewless.serving.model_registry import ModelRegistry
from skewless.serving.ui.server import app_for_store

PAGES = ["/", "/?q=team%3Dt3", "/?q=o2&section=views", "/entities", "/views", "/aggregated", "/transforms",
         "/services", "/versions", "/diff?a=5&b=10", "/object/feature_view/v0000", "/models", "/lineage",
         "/lineage?name=feature_view/v0000", "/statistics/v0000"]
APPENDS = 99  # appends to v0000: its newest statistics merge 49 per-append records onto a cumulative one (the most)


def build(path: Path, n_views: int, n_models: int) -> sk.FeatureStore:
    store = sk.init_repo(path)
    user = sk.Entity("user", join_keys=["user_id"], dtype=sk.Int64)
    views = [sk.FeatureView(f"v{i:04d}", entities=[user], schema=[sk.Field(f"f{j}", sk.Float64) for j in range(3)],
                            owner=f"o{i % 7}", tags={"team": f"t{i % 10}"}, description=f"view {i}")
             for i in range(n_views)]
    services = [sk.FeatureService(f"s{i:03d}", features=[views[i][["f0"]], views[i + 1][["f1"]]]) for i in range(50)]
    step = max(n_views // 10, 1)
    for k in range(0, n_views, step):
        store.apply([user, *views[:k + step], *(services if k + step >= n_views else [])],
                    message=f"views up to {k + step}")
    rng = np.random.default_rng(0)
    t0 = np.datetime64("2026-01-01T00:00:00", "us")
    for k in range(APPENDS):
        store.ingest("v0000", pa.table({"user_id": np.arange(1000) + k * 1000, "f0": rng.normal(size=1000),
                                        "f1": rng.exponential(size=1000), "f2": rng.uniform(size=1000),
                                        "event_timestamp": pa.array(t0 + np.arange(1000).astype("timedelta64[s]"),
                                                                    pa.timestamp("us", "UTC"))}))
    model = LogisticRegression().fit(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.9]]), [0, 1, 1, 0])
    reg = ModelRegistry(store)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_models):
            art = package_model(model, name=f"m{i:03d}", store=store, feature_service="s000",
                                snapshot={"v0000": 0, "v0001": 0},
                                path=Path(tmp) / f"m{i:03d}")
            mv = reg.register(art, message="bench")
            if i % 2 == 0:
                reg.promote(mv.name, mv.version, "production")
    return store


def measure(store: sk.FeatureStore, reps: int) -> dict:
    return asyncio.run(_measure(store, reps))


async def _measure(store: sk.FeatureStore, reps: int) -> dict:
    app = app_for_store(store)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")
    out = {}
    for page in PAGES:
        t = time.perf_counter()
        r = await client.get(page)
        cold = time.perf_counter() - t
        assert r.status_code == 200, (page, r.status_code)
        warm = []
        for _ in range(reps):
            t = time.perf_counter()
            await client.get(page)
            warm.append(time.perf_counter() - t)
        out[page] = {"cold_ms": round(cold * 1e3, 1), "median_ms": round(statistics.median(warm) * 1e3, 1),
                     "max_ms": round(max(warm) * 1e3, 1), "bytes": len(r.content)}
    return out


def measure_monitor(files: int, reps: int) -> dict:
    """The skew and drift page (/monitor/credit) over a model whose prediction log holds ``files`` files of 10 rows
    (bench/monitor_bench.py's build: the server's own log path, one flush per file): its first view (every file
    read), a view with another window (the page's file cache: no file read again; median over the other three
    windows) and a view repeated within the page's 30 s (its result cache; median of ``reps``)."""
    from bench.monitor_bench import build as build_logged

    with tempfile.TemporaryDirectory() as tmp:
        store, served, *_ = build_logged(Path(tmp), files, 10)
        served.close()
        return asyncio.run(_measure_monitor(app_for_store(store), files, reps))


async def _measure_monitor(app, files: int, reps: int) -> dict:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")

    async def view(window: str) -> float:
        t = time.perf_counter()
        r = await client.get("/monitor/credit", params={"window": window})
        assert r.status_code == 200, r.text[:300]
        return time.perf_counter() - t
    first = await view("1h")
    others = [await view(w) for w in ("6h", "1d", "7d")]
    same = [await view("1h") for _ in range(reps)]
    return {"log_files": files, "first_view_ms": round(first * 1e3, 1),
            "other_window_ms": round(statistics.median(others) * 1e3, 1),
            "same_view_ms": round(statistics.median(same) * 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=1000)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--log-files", type=int, default=1000, help="prediction-log files behind the skew and drift "
                    "page's model (0: not measured)")
    ap.add_argument("--publish", action="store_true", help="also write bench/results/ui_bench.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store = build(Path(tmp) / "repo", args.views, args.models)
        built = time.perf_counter() - t
        pages = measure(store, args.reps)
        versions = store.registry.store.latest()
    monitor_page = measure_monitor(args.log_files, args.reps) if args.log_files else None
    slowest = max(v["median_ms"] for v in pages.values())
    res = {"views": args.views, "models": args.models, "registry_versions": versions, "reps": args.reps,
           "build_s": round(built, 1), "pages": pages, "slowest_median_ms": slowest,
           "slowest_cold_ms": max(v["cold_ms"] for v in pages.values()), "monitor_page": monitor_page}
    for page, v in pages.items():
        print(f"{page:32s} cold {v['cold_ms']:7.1f} ms   median {v['median_ms']:7.1f} ms   {v['bytes']:>9,} B")
    if monitor_page:
        print(f"/monitor/credit ({monitor_page['log_files']} log files): first view {monitor_page['first_view_ms']} ms, "
              f"another window {monitor_page['other_window_ms']} ms, the same view again "
              f"{monitor_page['same_view_ms']} ms")
    print("\n".join(verdict_lines([("ui_page_ms", None, slowest)])))
    for d in result_dirs(args.publish):
        d.mkdir(parents=True, exist_ok=True)
        (d / "ui_bench.json").write_text(json.dumps(res, indent=1) + "\n")
    assert "ui_page_ms" in TARGETS


if __name__ == "__main__":
    main()

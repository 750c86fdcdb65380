"""Training set with windowed aggregations: skewless vs a hand-written DuckDB floor vs Feast 0.67, same data and run.

    python -m bench.agg_training_bench                 # --scale small: 100k entity rows x 1M events
    python -m bench.agg_training_bench --scale full    # 1M entity rows x 10M events (the issue-15 target)
        [--no-feast] [--feast-stores duckdb,file] [--feast-reps N] [--feast-max-as-gb 10] [--publish]

One aggregated view, 4 functions (count, sum, mean, max of a Float64 column) x 3 windows (1 h, 1 d, 7 d; hop 1 h).
Each measurement runs in its own process (peak RSS is that task's alone):

* skewless: ``get_historical_features(entity.parquet, [12 features]).to_arrow()`` on a local Delta history;
* floor: the fastest plain DuckDB SQL written by hand for the same output, straight on the generated Parquet (one
  range join, every aggregation in one GROUP BY with FILTERs, no event identity, no input order restored), with
  the same connection settings. It is checked to give the same values as skewless.
* Feast 0.67 (bench/peers/feast_agg.py, in the venv of bench/peers/setup_feast.sh): it does not compute windowed
  aggregations for a training set (bench/peers/feast_agg_probe.py, run here and recorded; citations in
  ``FEAST_EVIDENCE``), so its documented path: a batch transformation (DuckDB SQL) precomputes the 12 values per
  (card, change point), then its own point-in-time join, ``get_historical_features(...).to_df()``. Its wall time is
  both; it runs under an address-space cap (``--feast-max-as-gb``, RLIMIT_AS) so the shared host survives, and a run
  stopped by the cap gives a lower bound on the ratio. Checked to give the same values as skewless.

Targets (issue 15, bench/verdict.py): skewless <= 1.5x the floor's wall time, peak RSS <= 4 GB, >= 10x faster than
Feast. Results in bench/out/agg_training_<scale>.{json,md}; --publish also writes bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.verdict import ROOT, result_dirs, verdict_lines

SCALES = {"small": (100_000, 1_000_000, 10_000), "full": (1_000_000, 10_000_000, 100_000)}  # entity, events, keys
HOUR_US = 3_600_000_000
WINDOWS = {"1h": HOUR_US, "1d": 24 * HOUR_US, "7d": 7 * 24 * HOUR_US}
FUNCTIONS = ("count", "sum", "mean", "max")
T0_US = 1_704_067_200_000_000  # 2024-01-01
SPAN_US = 60 * 24 * HOUR_US  # events over 60 days


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_s(usage) -> float:
    """User + system CPU seconds of a whole process (start-up included): on a shared host, less load-bound than wall."""
    return round(usage.ru_utime + usage.ru_stime, 1)


def generate(data: Path, scale: str, seed: int = 15) -> None:
    n_ent, n_ev, n_keys = SCALES[scale]
    if (data / "events.parquet").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ev = T0_US + rng.integers(0, SPAN_US, n_ev)
    created = ev + rng.integers(0, HOUR_US, n_ev)
    amount = np.round(rng.gamma(2.0, 30.0, n_ev), 2)
    events = pa.table({"card": pa.array(rng.integers(0, n_keys, n_ev)),
                       "event_timestamp": pa.array(ev, pa.timestamp("us", tz="UTC")),
                       "created_timestamp": pa.array(created, pa.timestamp("us", tz="UTC")),
                       "amount": pa.array(amount)})
    pq.write_table(events, data / "events.parquet")
    t = T0_US + 7 * 24 * HOUR_US + rng.integers(0, SPAN_US - 7 * 24 * HOUR_US, n_ent)
    pq.write_table(pa.table({"card": pa.array(rng.integers(0, n_keys, n_ent)),
                             "event_timestamp": pa.array(t, pa.timestamp("us", tz="UTC")),
                             "label": pa.array(rng.integers(0, 2, n_ent))}), data / "entity.parquet")


def view():
    import skewless as sk
    from skewless.aggregation import AggregatedView, Aggregation

    card = sk.Entity("card", join_keys=["card"])
    aggs = [Aggregation("amount", f, timedelta(microseconds=w)) for w in WINDOWS.values() for f in FUNCTIONS]
    return card, AggregatedView("txn", [card], [sk.Field("card", sk.Int64), sk.Field("amount", sk.Float64)], aggs,
                                timedelta(hours=1), online=False)


def prepare(data: Path, repo: Path) -> dict:
    import skewless as sk

    store = sk.init_repo(repo, project="aggbench")
    card, v = view()
    store.apply([card, v])
    t = time.perf_counter()
    store.ingest("txn", pq.read_table(data / "events.parquet"))
    return {"ingest_s": round(time.perf_counter() - t, 2)}


def run_skewless(data: Path, repo: Path, out: Path | None) -> dict:
    import skewless as sk

    store = sk.FeatureStore(repo)
    refs = [f"txn:{a.name}" for a in view()[1].aggregations]
    t = time.perf_counter()
    table = store.get_historical_features(str(data / "entity.parquet"), refs).to_arrow()
    wall = time.perf_counter() - t
    if out:
        pq.write_table(table, out)
    return {"wall_s": round(wall, 3), "rows_out": table.num_rows, "cols_out": table.num_columns}


def floor_sql(data: Path) -> str:
    """By hand: integer-microsecond window starts, one range join to the 7-day start, FILTERs for the shorter ones."""
    starts = ", ".join(f"(t - {w}) - (((t - {w}) % {HOUR_US}) + {HOUR_US}) % {HOUR_US} AS s_{n}"
                       for n, w in WINDOWS.items())
    aggs = []
    for n in WINDOWS:
        cond = "" if n == "7d" else f" FILTER (WHERE h.ev > e.s_{n})"
        aggs += [f"count(h.amount){cond} AS amount_count_{n}", f"sum(h.amount){cond} AS amount_sum_{n}",
                 f"avg(h.amount){cond} AS amount_mean_{n}", f"max(h.amount){cond} AS amount_max_{n}"]
    return (f"SELECT e.rid, {', '.join(aggs)} FROM (SELECT rid, card, t, {starts} FROM (SELECT file_row_number AS "
            f"rid, card, epoch_us(event_timestamp) AS t FROM read_parquet('{data / 'entity.parquet'}', "
            f"file_row_number = true))) AS e LEFT JOIN (SELECT card, epoch_us(event_timestamp) AS ev, amount FROM "
            f"read_parquet('{data / 'events.parquet'}')) AS h ON e.card = h.card AND h.ev <= e.t AND h.ev > e.s_7d "
            f"GROUP BY e.rid")


def run_floor(data: Path, repo: Path, out: Path | None) -> dict:
    from skewless.offline.duckdb_engine import DuckDBEngine

    con = DuckDBEngine().connect()
    t = time.perf_counter()
    table = con.sql(floor_sql(data)).to_arrow_reader(122_880).read_all()
    wall = time.perf_counter() - t
    if out:
        pq.write_table(table, out)
    return {"wall_s": round(wall, 3), "rows_out": table.num_rows, "cols_out": table.num_columns}


def same_values(skewless_out: Path, floor_out: Path) -> bool:
    a = pq.read_table(skewless_out)
    b = pq.read_table(floor_out).sort_by("rid")
    for name in b.column_names[1:]:
        x, y = a.column(name).to_numpy(zero_copy_only=False), b.column(name).to_numpy(zero_copy_only=False)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if not np.allclose(x, y, rtol=1e-9, atol=0, equal_nan=True):
            return False
    return True


def _child(task: str, data: Path, repo: Path, out: Path | None) -> dict:
    cmd = [sys.executable, "-m", "bench.agg_training_bench", "--task", task, "--data", str(data), "--repo", str(repo)]
    if out:
        cmd += ["--out", str(out)]
    load = round(os.getloadavg()[0], 2)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{task} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), loadavg_1m_start=load)


FEAST_VENV = ROOT / ".bench" / "feast-venv"
PEERS = ROOT / "bench" / "peers"
# Where Feast 0.67.0 (installed package, feast/...) stops short of computing the windows (re-read for each version)
FEAST_EVIDENCE = [
    "feature_store.py:2143 get_historical_features hands the views to provider.get_historical_features; "
    "infra/passthrough_provider.py:486 passes them straight to offline_store.get_historical_features (duckdb, "
    "dask: no reference to aggregations in infra/offline_stores/duckdb.py, ibis.py, dask.py), a latest-row join",
    "batch_feature_view.py:79,103,145 BatchFeatureView takes aggregations, but it has no to_proto/from_proto of its "
    "own: feature_view.py:492 FeatureView.to_proto has no aggregations field, so apply() drops them (the probe's "
    "registry_keeps_aggregations: txn false)",
    "StreamFeatureView keeps them, but only the compute engines read them: infra/compute_engines/feature_builder.py:"
    "105-106 builds an aggregation node, and the local engine's (infra/compute_engines/local/feature_builder.py:"
    "60-66) raises through aggregation/__init__.py:133-134 'Time window aggregation is not supported in the local "
    "compute engine.' (the probe's materialize of txn_stream)",
    "time-windowed (tiled) aggregation is in the Spark and Ray engines only: infra/compute_engines/spark/nodes.py:"
    "235-238, infra/compute_engines/ray/nodes.py:348-350 (aggregation/tiling/__init__.py: 'implemented by any "
    "compute engine (Spark, Ray, etc.)'), reached from materialize (passthrough_provider.py:466), not from a "
    "training set: their get_historical_features(registry, task) (spark/compute.py:197, ray/compute.py:278) takes "
    "a HistoricalRetrievalTask, a class (infra/common/retrieval_task.py:12) that nothing in feast/ constructs",
    "documented path: 'Create Batch Features: ELT/ETL systems like Spark and SQL are used to transform data in the "
    "batch store', then 'Get Historical Features: Feast exports a point-in-time correct training dataset' "
    "(https://docs.feast.dev/v0.40-branch/getting-started/architecture-and-components/overview); an offline store "
    "(DuckDB among them) as the transformation engine "
    "(https://docs.feast.dev/getting-started/architecture/feature-transformation)",
]


STOPPED = ("memory-cap", "killed", "timeout")  # a Feast run stopped for its resources: its time is a lower bound


def _phases(log: Path) -> dict[str, float]:
    """``PHASE name epoch`` lines from bench/peers/feast_agg.py's stderr: when each phase started."""
    out = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if line.startswith("PHASE "):
            _, name, at = line.split()
            out[name] = float(at)
    return out


def run_feast(venv: Path, data: Path, root: Path, store: str, max_as_gb: float, timeout: float,
              save: Path | None) -> dict:
    """One Feast run in its venv, capped; the result JSON, or what is known of a run that died (status, peak RSS
    from wait4, and the time it had spent in the measured phases when it died: a lower bound on its wall time)."""
    work, out, log = root / "feast" / store, root / f"feast_{store}.json", root / f"feast_{store}.log"
    shutil.rmtree(work, ignore_errors=True)
    out.unlink(missing_ok=True)
    cmd = [str(venv / "bin" / "python"), str(PEERS / "feast_agg.py"), "--data", str(data.resolve()), "--workdir",
           str(work.resolve()), "--out", str(out.resolve()), "--offline-store", store, "--max-as-gb", str(max_as_gb)]
    if save:
        cmd += ["--save-output", str(save.resolve())]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=fh)
        t0, timed_out = time.time(), False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() - t0 > timeout and not timed_out:
                proc.kill()
                timed_out = True
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
    ended = time.time()
    res = json.loads(out.read_text()) if out.exists() else {"status": "error", "offline_store": store}
    res["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # wait4: known even for a child that was killed
    res["process_cpu_s"] = cpu_s(usage)
    res["exit_code"] = proc.returncode
    if timed_out:
        res["status"] = "timeout"
    elif proc.returncode < 0 and res["status"] == "error":  # killed by a signal before it could write a result
        res["status"] = "killed"
        res["error"] = f"signal {signal.Signals(-proc.returncode).name}; log tail: {log.read_text()[-500:]}"
    if res["status"] != "ok":
        ph = _phases(log)
        # a run stopped for its resources was slower than this; one that failed otherwise bounds nothing
        if "precompute" in ph and res["status"] in STOPPED:  # measured phases only (apply is not in wall_s)
            pit = ph.get("get_historical_features")
            res["lower_bound_wall_s"] = round((ph.get("apply", ended) - ph["precompute"])
                                              + ((ended - pit) if pit else 0.0), 1)
        res["died_in_phase"] = max(ph, key=ph.get) if ph else "start"
        res["log_tail"] = log.read_text(errors="replace")[-1500:]
    shutil.rmtree(work, ignore_errors=True)  # the precomputed table: GBs at full scale
    return res


def run_probe(venv: Path, root: Path) -> dict:
    work = root / "feast_probe"
    shutil.rmtree(work, ignore_errors=True)
    done = subprocess.run([str(venv / "bin" / "python"), str(PEERS / "feast_agg_probe.py"), "--workdir",
                           str(work.resolve())], capture_output=True, text=True, check=False)
    shutil.rmtree(work, ignore_errors=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": done.stderr[-2000:]}


def feast_side(args, data: Path, root: Path, result: dict) -> None:
    """Probe, then each store x --feast-reps; the fastest store's best run is the one compared."""
    venv = Path(args.feast_venv)
    if not (venv / "bin" / "python").exists():
        result["feast"] = {"status": "error", "error": f"no Feast venv at {venv} (bash bench/peers/setup_feast.sh)"}
        return
    result["feast_probe"] = run_probe(venv, root)
    result["feast_evidence"] = FEAST_EVIDENCE
    runs: dict[str, list] = {}
    for store in args.feast_stores.split(","):
        (root / f"feast_{store}.parquet").unlink(missing_ok=True)  # compare this run's output, never an older one
    for i in range(args.feast_reps):
        for store in args.feast_stores.split(","):
            save = root / f"feast_{store}.parquet"  # written after the timed phases, by every run that finishes
            runs.setdefault(store, []).append(run_feast(venv, data, root, store, args.feast_max_as_gb,
                                                        args.feast_timeout, save))
            r = runs[store][-1]
            print(f"feast {store} run {i + 1}: {r['status']} {r.get('wall_s', r.get('lower_bound_wall_s'))} s, "
                  f"{r['peak_rss_mb']} MB", file=sys.stderr)
    stores = {}
    for store, rs in runs.items():
        ok = [r for r in rs if r["status"] == "ok"]
        best = min(ok, key=lambda r: r["wall_s"]) if ok else max(rs, key=lambda r: r.get("lower_bound_wall_s", 0))
        best["all_wall_s"] = [r.get("wall_s") for r in rs]
        best["all_loadavg_1m"] = [round(r.get("loadavg_1m_start", -1), 2) for r in rs]
        best["all_status"] = [r["status"] for r in rs]
        if ok and (root / f"feast_{store}.parquet").exists() and (root / "skewless.parquet").exists():
            best["same_values"] = same_values(root / "skewless.parquet", root / f"feast_{store}.parquet")
        stores[store] = best
    result["feast_stores"] = stores
    ok = {s: r for s, r in stores.items() if r["status"] == "ok"}
    pick = min(ok, key=lambda s: ok[s]["wall_s"]) if ok else max(stores, key=lambda s: stores[s].get(
        "lower_bound_wall_s", 0))
    result["feast"] = dict(stores[pick], store=pick)
    sk = result["skewless"]["wall_s"]
    if ok:
        result["feast_ratio"] = round(ok[pick]["wall_s"] / sk, 1)
        result["feast_pit_only_ratio"] = round(ok[pick]["pit_s"] / sk, 1)
    elif result["feast"].get("lower_bound_wall_s"):
        result["feast_ratio_lower_bound"] = round(result["feast"]["lower_bound_wall_s"] / sk, 1)


def figures(result: dict) -> list[tuple]:
    out = [("agg_vs_floor", "skewless / floor wall time", result["ratio"]),
           ("agg_peak_rss", "skewless peak RSS", result["skewless"]["peak_rss_mb"])]
    if "feast_ratio" in result:
        out.append(("agg_vs_feast", "", result["feast_ratio"]))
    elif "feast" in result:
        out.append(("agg_vs_feast", "", result.get("feast_ratio_lower_bound"), True))
    return out


def _runs(r: dict) -> str:
    """Every run's wall time, with the 1-minute load average when it started where recorded ("@")."""
    loads = r.get("all_loadavg_1m") or [None] * len(r["all_wall_s"])
    walls = [w if w is not None else st for w, st in zip(r["all_wall_s"], r.get("all_status", r["all_wall_s"]))]
    return ", ".join(f"{w}" + (f" @{ld}" if ld is not None else "") for w, ld in zip(walls, loads))


def _cpu(r: dict) -> str:
    return str(r.get("process_cpu_s", "-"))  # results written before it was recorded have none


def markdown(result: dict) -> str:
    sk, fl, fe = result["skewless"], result["floor"], result.get("feast")
    lines = [f"# Training set with aggregations, --scale {result['scale']}", "",
             f"{result['entity_rows']:,} entity rows x {result['events']:,} events, count/sum/mean/max x 1 h/1 d/7 d, "
             f"hop 1 h. `{result.get('command', 'python -m bench.agg_training_bench --scale ' + result['scale'])}`; "
             f"load average (1 min) "
             f"{result['loadavg_start']} at the start, {result['loadavg_end']} at the end (2 cores, shared).", "",
             "| | wall s (best; all runs @ load 1 min) | peak RSS MB | process CPU s | / skewless | same values as skewless |",
             "|---|---|---|---|---|---|",
             f"| skewless | {sk['wall_s']} ({_runs(sk)}) | {sk['peak_rss_mb']:,.0f} | {_cpu(sk)} | 1 | - |",
             f"| hand-written DuckDB floor | {fl['wall_s']} ({_runs(fl)}) | {fl['peak_rss_mb']:,.0f} | "
             f"{_cpu(fl)} | {round(fl['wall_s'] / sk['wall_s'], 2)} | {result['same_values']} |"]
    for store, r in result.get("feast_stores", {}).items():
        if r["status"] == "ok":
            lines.append(f"| Feast 0.67, precompute + `get_historical_features` ({store} offline store) | "
                         f"{r['wall_s']} = {r['precompute_s']} + {r['pit_s']} ({_runs(r)}) | "
                         f"{r['peak_rss_mb']:,.0f} | {_cpu(r)} | {round(r['wall_s'] / sk['wall_s'], 1)} | "
                         f"{r.get('same_values', '-')} |")
        elif "lower_bound_wall_s" not in r:
            lines.append(f"| Feast 0.67 ({store} offline store) | {r['status']} in {r.get('died_in_phase')}: "
                         f"{str(r.get('error', '?')).splitlines()[0][:160]} ({r['all_status']}) | "
                         f"{r['peak_rss_mb']:,.0f} | {_cpu(r)} | - | - |")
        else:
            lines.append(f"| Feast 0.67 ({store} offline store) | {r['status']} in {r.get('died_in_phase')} after "
                         f">= {r.get('lower_bound_wall_s')} s of measured phases ({r['all_status']}) | "
                         f"{r['peak_rss_mb']:,.0f} (cap {r.get('max_as_gb', '?')} GB of address space) | {_cpu(r)} | "
                         f">= {round(r.get('lower_bound_wall_s', 0) / sk['wall_s'], 1)} | - |")
    lines += ["", *verdict_lines(figures(result), result["scale"])]
    if fe:
        lines += ["", f"Feast compared: the {fe.get('store')} offline store (the faster of those run: "
                      f"{', '.join(result.get('feast_stores', {}))}). Its precompute wrote "
                      f"{fe.get('precompute_rows', 0):,} rows (one per card and change point); its own PIT join "
                      f"alone is {result.get('feast_pit_only_ratio', '-')}x skewless's whole job.",
                  "", "Feast computes no windowed aggregation for a training set: `bench/peers/feast_agg_probe.py` "
                      "(amounts 1, 2, 4 in one hour, sum over 1 h expected 7):", "",
                  f"```json\n{json.dumps(result.get('feast_probe'), indent=1)}\n```", "", "Where (feast 0.67.0):", "",
                  *[f"- {e}" for e in result.get("feast_evidence", [])]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--reps", type=int, default=2, help="runs of each side, alternately; the best is reported")
    p.add_argument("--no-feast", action="store_true", help="skip the Feast 0.67 peer")
    p.add_argument("--feast-venv", default=str(FEAST_VENV))
    p.add_argument("--feast-stores", default="duckdb", help="Feast offline stores to run: duckdb,file")
    p.add_argument("--feast-reps", type=int, default=1)
    p.add_argument("--feast-max-as-gb", type=float, default=10.0, help="Feast's address-space cap (RLIMIT_AS)")
    p.add_argument("--feast-timeout", type=float, default=3600.0)
    p.add_argument("--publish", action="store_true", help="also write bench/results/agg_training_<scale>.*")
    p.add_argument("--task", choices=["prepare", "skewless", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.task:
        fn = {"prepare": lambda: prepare(args.data, args.repo), "skewless": lambda: run_skewless(
            args.data, args.repo, args.out), "floor": lambda: run_floor(args.data, args.repo, args.out)}[args.task]
        result = fn()
        result["peak_rss_mb"] = peak_rss_mb()
        result["process_cpu_s"] = cpu_s(resource.getrusage(resource.RUSAGE_SELF))
        print(json.dumps(result))
        return 0
    root = Path(".bench") / "agg" / args.scale
    data, repo = root / "data", root / "repo"
    generate(data, args.scale)
    result: dict = {"scale": args.scale, "entity_rows": SCALES[args.scale][0], "events": SCALES[args.scale][1],
                    "command": " ".join(["python -m bench.agg_training_bench", *(sys.argv[1:] if argv is None
                                                                                 else argv)]),
                    "loadavg_start": round(os.getloadavg()[0], 2)}
    if not (repo / "feature_store.yaml").exists() and not (repo / "skewless.yaml").exists():
        result["prepare"] = _child("prepare", data, repo, None)
    runs: dict[str, list] = {"skewless": [], "floor": []}
    for i in range(args.reps):
        for side in ("skewless", "floor"):
            runs[side].append(_child(side, data, repo, root / f"{side}.parquet" if i == 0 else None))
    for side, rs in runs.items():
        result[side] = min(rs, key=lambda r: r["wall_s"])
        result[side]["all_wall_s"] = [r["wall_s"] for r in rs]
        result[side]["all_loadavg_1m"] = [r["loadavg_1m_start"] for r in rs]
    result["ratio"] = round(result["skewless"]["wall_s"] / result["floor"]["wall_s"], 2)
    result["same_values"] = same_values(root / "skewless.parquet", root / "floor.parquet")
    if not args.no_feast:
        feast_side(args, data, root, result)
    result["loadavg_end"] = round(os.getloadavg()[0], 2)
    result["verdicts"] = verdict_lines(figures(result), args.scale)
    text = markdown(result)
    print(text)
    for folder in result_dirs(args.publish):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"agg_training_{args.scale}.json").write_text(json.dumps(result, indent=1) + "\n")
        (folder / f"agg_training_{args.scale}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

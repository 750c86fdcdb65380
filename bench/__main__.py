"""Run the skewless benchmarks and their floors and peers in one go.

    ./run bench                       # full scale: 1M entity rows x 10M feature rows over 3 views
    ./run bench --scale small         # 100k x 1M (minutes)
    ./run bench --no-feast            # skip the Feast 0.67 peer (it installs its own venv on first use)
    ./run bench --online redis        # the Redis online store only: materialize + reads vs floor vs Feast (Redis)
    ./run bench --online all          # both

Each measurement runs in its own process (peak RSS is per task). Data is generated once per scale under
.bench/data/<scale>; results go to bench/out/<scale>.json and .md (untracked) and are printed as a table with each
figure met / missed against its target. --publish also writes them to bench/results/, the results the docs cite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.verdict import result_dirs, verdict_lines

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
SCALES = {"small": (100_000, 1_000_000), "full": (1_000_000, 10_000_000)}
REPO_FORMAT = 3  # bump when history layout or table properties change
REDIS_PORT = int(os.environ.get("SKEWLESS_BENCH_REDIS_PORT", "6392"))  # not the local cloud's 6390: ours alone


def sh(cmd: list[str], **kw) -> str:
    print("   $", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, text=True, stdout=subprocess.PIPE, **kw).stdout


def measure(task: str, data: Path, repo: Path, *extra: str) -> dict:
    out = sh([sys.executable, "-m", "bench.measure", task, data, repo, *extra], cwd=ROOT)
    return json.loads(out.strip().splitlines()[-1])


def ensure_data(scale: str) -> Path:
    data = WORK / "data" / scale
    ent, feat = SCALES[scale]
    if not (data / "meta.json").exists():
        sh([sys.executable, ROOT / "bench" / "datagen.py", data, "--entity-rows", ent, "--feature-rows", feat])
    return data


def ensure_repo(data: Path, scale: str) -> Path:
    repo = WORK / "repos" / scale
    stamp = repo / ".source-meta"
    # Rebuilt when the data or skewless's storage layout (REPO_FORMAT) changes.
    digest = hashlib.sha256((data / "meta.json").read_bytes() + f"format={REPO_FORMAT}".encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        import shutil

        shutil.rmtree(repo, ignore_errors=True)
        print(measure("prepare", data, repo), file=sys.stderr)
        stamp.write_text(digest)
    return repo


def feast(data: Path, results: Path, timeout: int, stores: list[str]) -> dict:
    sh(["bash", ROOT / "bench" / "peers" / "setup_feast.sh"])
    py = Path(os.environ.get("FEAST_VENV", WORK / "feast-venv")) / "bin" / "python"
    out = {}
    for store in stores:
        for task in ("historical", "materialize", "online"):
            path = results / f"feast_{store}_{task}.json"
            try:
                sh([py, ROOT / "bench" / "peers" / "feast_peer.py", data, "--task", task, "--offline-store", store,
                    "--timeout", timeout, "--out", path])
            except subprocess.CalledProcessError:
                pass  # the peer always writes its JSON, with status "timeout" / "error" when it failed
            out[f"{store}_{task}"] = json.loads(path.read_text()) if path.exists() else {"status": "missing"}
    return out


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def report(res: dict) -> str:
    s, fl = res["skewless"], res["floor"]
    lines = [f"scale: {res['scale']} ({res['entity_rows']:,} entity rows x {res['feature_rows']:,} feature rows)", ""]
    lines.append("| measurement | skewless | raw floor | ratio to floor | Feast file | Feast duckdb | Feast / skewless |")
    lines.append("|---|---|---|---|---|---|---|")
    fe = res.get("feast", {})

    def fwall(key):
        r = fe.get(key, {})
        return r.get("wall_s") if r.get("status") == "ok" else r.get("status")
    pit_s = s["pit"]["wall_s"]
    ff, fd = fwall("file_historical"), fwall("duckdb_historical")
    best_feast = min([x for x in (ff, fd) if isinstance(x, (int, float))], default=None)
    lines.append(f"| PIT training set (s) | {pit_s} | {fl['pit']['wall_s']} | {ratio(pit_s, fl['pit']['wall_s'])}x | "
                 f"{ff} | {fd} | {ratio(best_feast, pit_s) if best_feast else '-'}x (fastest Feast) |")
    lines.append(f"| PIT peak RSS (MB) | {s['pit']['peak_rss_mb']} | {fl['pit']['peak_rss_mb']} | | "
                 f"{fe.get('file_historical', {}).get('peak_rss_mb', '-')} | "
                 f"{fe.get('duckdb_historical', {}).get('peak_rss_mb', '-')} | |")
    m = s["materialize"]
    fmr = {st: fe.get(f"{st}_materialize", {}).get("entity_rows_per_s") for st in ("file", "duckdb")}
    best_fm = max([x for x in fmr.values() if x], default=None)
    lines.append(f"| materialize (rows/s) | {m['rows_per_s']:,} ({m['rows_written']:,} rows, {m['wall_s']} s) | | | "
                 f"{fmr['file'] or '-'} | {fmr['duckdb'] or '-'} | "
                 f"{ratio(m['rows_per_s'], best_fm) or '-'}x (fastest Feast) |")
    for n, key in (("1", "one"), ("100", "hundred")):
        o, of = s["online"][key], fl["online"][key]
        fo = min((fe.get(f"{st}_online", {}).get("online", {}).get(f"batch_{n}", {}).get("get_online_features", {})
                  for st in ("file", "duckdb")), key=lambda r: r.get("p50_ms", float("inf")))
        lines.append(f"| online read {n} entity x 3 views p50 / p99 (ms) | {o['p50_ms']} / {o['p99_ms']} | "
                     f"{of['p50_ms']} / {of['p99_ms']} | {ratio(o['p50_ms'], of['p50_ms'])}x | "
                     f"{fo.get('p50_ms', '-')} / {fo.get('p99_ms', '-')} | | "
                     f"{ratio(fo.get('p50_ms'), o['p50_ms']) or '-'}x |")
    lines += ["", "targets:"] + verdict_lines([
        ("pit_vs_floor", "", ratio(pit_s, fl["pit"]["wall_s"])),
        ("pit_vs_feast", "", ratio(best_feast, pit_s) if best_feast else None),
        ("pit_peak_rss", "", s["pit"]["peak_rss_mb"])], res["scale"])
    return "\n".join(lines)


def redis_report(res: dict) -> str:
    s, fe = res["skewless"], res.get("feast", {})
    m = s["materialize"]
    fm = fe.get("materialize", {}) if fe.get("status") == "ok" else {}
    lines = [f"scale: {res['scale']} ({res['entity_rows']:,} entity rows x {res['feature_rows']:,} feature rows); "
             f"Redis {m['redis']['version']} ({m['redis']['allocator']}) on 127.0.0.1:{res['redis_port']}", "",
             "| measurement | skewless | raw floor (redis-py MGET of the same keys) | skewless / floor | Feast 0.67 (Redis) "
             "| Feast / skewless |", "|---|---|---|---|---|---|"]
    walls = sorted(s.get("materialize_walls_s") or [m["wall_s"]])
    med = statistics.median(walls)
    frows, fscan, fwall = fm.get("entity_rows_per_s"), fm.get("feature_rows_scanned_per_s"), fm.get("wall_s")
    fwalls = res.get("feast_materialize_walls_s") or ([fwall] if fwall else [])
    fmed = statistics.median(fwalls) if fwalls else None
    speedup = (f"{ratio(fwall, m['wall_s'])}x faster (best vs best), {ratio(fmed, med)}x (median vs median)"
               if fwall else fe.get("status", "-"))
    feast_wall = f"{fwall} / {round(fmed, 3)} ({len(fwalls)} runs)" if fwall else fe.get("status", "-")
    lines.append(f"| materialize into Redis: wall, best / median of {len(walls)} runs (s) | {m['wall_s']} / "
                 f"{round(med, 3)} | | | {feast_wall} | {speedup} |")
    lines.append(f"| materialize, rows written/s ({m['rows_written']:,} rows), best / median | {m['rows_per_s']:,} / "
                 f"{round(m['rows_written'] / med):,} | | | {frows or '-'} | |")
    lines.append(f"| materialize, source rows/s ({m['feature_rows_scanned']:,} feature rows), best / median | "
                 f"{m['feature_rows_scanned_per_s']:,} / {round(m['feature_rows_scanned'] / med):,} | | | "
                 f"{fscan or '-'} | |")
    lines.append(f"| materialize CPU seconds in the best run: Redis / client | {m['redis_cpu_s']} / {m['client_cpu_s']} "
                 f"| | | | |")
    for n, key in (("1", "one"), ("100", "hundred")):
        o = s["online"][key]
        sk_, fl = o["skewless"], o["floor"]
        fo = res.get("feast_online_best", {}).get(n) or fe.get("online", {}).get(f"batch_{n}", {}).get(
            "get_online_features", {})
        lines.append(f"| online read {n} entity x 3 views x 10 features, p50 / p99 (ms), best of "
                     f"{len(s.get('online_runs', [1]))} / {len(res.get('feast_materialize_walls_s', [1]))} runs | "
                     f"{sk_['p50_ms']} / "
                     f"{sk_['p99_ms']} | {fl['p50_ms']} / {fl['p99_ms']} | {ratio(sk_['p50_ms'], fl['p50_ms'])}x / "
                     f"{ratio(sk_['p99_ms'], fl['p99_ms'])}x | {fo.get('p50_ms', '-')} / {fo.get('p99_ms', '-')} | "
                     f"{ratio(fo.get('p50_ms'), sk_['p50_ms']) or '-'}x / {ratio(fo.get('p99_ms'), sk_['p99_ms']) or '-'}x |")
    reads = []
    for n, key in (("1", "one"), ("100", "hundred")):
        o = s["online"][key]
        fo = res.get("feast_online_best", {}).get(n) or fe.get("online", {}).get(f"batch_{n}", {}).get(
            "get_online_features", {})
        reads += [("redis_read_vs_floor", f"online read {n} entity p50 / raw Redis MGET floor",
                   ratio(o["skewless"]["p50_ms"], o["floor"]["p50_ms"])),
                  ("redis_read_vs_feast", f"Feast online read {n} entity p50 / skewless",
                   ratio(fo.get("p50_ms"), o["skewless"]["p50_ms"]))]
    lines += ["", "targets:"] + verdict_lines(reads + [
        ("redis_materialize_rows_per_s", "", m["rows_per_s"]),
        ("redis_materialize_vs_feast", "", ratio(fwall, m["wall_s"]) if fwall else None)], res["scale"])
    lines += ["", "Source rows/s counts the feature rows scanned; rows written/s the (view, entity) rows upserted into "
              "Redis (one per entity with rows in the window)."]
    return "\n".join(lines)


def redis_section(args, data: Path, repo: Path, raw: Path) -> dict:
    """Start a dedicated Redis through skewless.localcloud, measure skewless, the floor and Feast against it."""
    import redis

    from bench.redis_bench import redis_repo
    from skewless.localcloud import redis_service

    state = WORK / "redis"
    svc = redis_service("bench-redis", REDIS_PORT, state=state)
    started = svc.start(state)
    try:
        url = f"redis://{svc.endpoint}/0"
        rrepo = redis_repo(repo, url, WORK / "repos" / f"{args.scale}-redis")
        res = {"scale": args.scale, "entity_rows": SCALES[args.scale][0], "feature_rows": SCALES[args.scale][1],
               "redis_port": svc.port, "skewless": {}}
        runs = [measure("materialize-redis", data, rrepo) for _ in range(args.reps)]
        # The 2 cores are shared with other programs: report the least disturbed run and the median of all.
        res["skewless"]["materialize"] = max(runs, key=lambda r: r["rows_per_s"])
        res["skewless"]["materialize_walls_s"] = [r["wall_s"] for r in runs]
        # Reads, like Feast's below: as many runs as materialize, and per batch size the least disturbed one (each
        # run measures skewless and the floor interleaved, so a run's ratio to the floor is its own).
        reads = [measure("online-redis", data, rrepo) for _ in range(args.reps)]
        res["skewless"]["online"] = {k: min((r[k] for r in reads), key=lambda x: x["skewless"]["p50_ms"])
                                     for k in ("one", "hundred")}
        res["skewless"]["online_runs"] = reads
        if not args.no_feast:
            sh(["bash", ROOT / "bench" / "peers" / "setup_feast.sh"])
            py = Path(os.environ.get("FEAST_VENV", WORK / "feast-venv")) / "bin" / "python"
            feast_runs = []
            for i in range(args.feast_reps):
                redis.Redis(host=svc.host, port=svc.port, db=1).flushdb()  # Feast's own db: a fresh start
                path = raw / ("feast_redis_online.json" if i == 0 else f"feast_redis_online_{i}.json")
                try:
                    sh([py, ROOT / "bench" / "peers" / "feast_peer.py", data, "--task", "online", "--offline-store",
                        "duckdb", "--online-store", "redis", "--redis", f"{svc.endpoint},db=1", "--timeout",
                        args.feast_timeout, "--out", path])
                except subprocess.CalledProcessError:
                    pass  # the peer always writes its JSON, with status "timeout" / "error" when it failed
                feast_runs.append(json.loads(path.read_text()) if path.exists() else {"status": "missing"})
            ok = [r for r in feast_runs if r.get("status") == "ok"]
            # Like skewless's: the least disturbed run, and every run's materialize wall time for the median.
            res["feast"] = min(ok, key=lambda r: r["materialize"]["wall_s"]) if ok else feast_runs[0]
            res["feast_materialize_walls_s"] = [r["materialize"]["wall_s"] for r in ok]
            res["feast_online_best"] = {  # per batch size, the least disturbed of Feast's runs
                n: min((r["online"][f"batch_{n}"]["get_online_features"] for r in ok), key=lambda x: x["p50_ms"])
                for n in ("1", "100")} if ok else {}
        return res
    finally:
        if started:
            svc.stop(state)


def main() -> None:
    p = argparse.ArgumentParser(prog="./run bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--no-feast", action="store_true", help="skip the Feast peer")
    p.add_argument("--feast-stores", default="file,duckdb", help="Feast offline stores to run (file,duckdb)")
    p.add_argument("--feast-timeout", type=int, default=1800, help="seconds per Feast task before it is killed")
    p.add_argument("--reps", type=int, default=3, help="PIT, Redis materialize and Redis read repetitions (the best is reported; "
                                                        "for Redis materialize also the median)")
    p.add_argument("--feast-reps", type=int, default=1, help="Feast runs in the Redis section (best and median)")
    p.add_argument("--publish", action="store_true",
                   help="also write the results to bench/results/ (the published ones the docs cite); "
                        "without it they go to bench/out/ only (untracked)")
    p.add_argument("--online", choices=["sqlite", "redis", "all"], default="sqlite",
                   help="sqlite: the benchmark above (embedded store); redis: only the Redis online store section "
                        "(results/<scale>_redis.*); all: both")
    args = p.parse_args()
    data = ensure_data(args.scale)
    repo = ensure_repo(data, args.scale)
    results = result_dirs(args.publish)
    for folder in results:
        folder.mkdir(parents=True, exist_ok=True)
    raw = WORK / "results" / args.scale
    raw.mkdir(parents=True, exist_ok=True)
    if args.online in ("sqlite", "all"):
        main_section(args, data, repo, results, raw)
    if args.online in ("redis", "all"):
        res = redis_section(args, data, repo, raw)
        text = redis_report(res)
        write_results(results, f"{args.scale}_redis", res, text)
        print(text)


def main_section(args, data: Path, repo: Path, results: list[Path], raw: Path) -> None:
    ent, feat = SCALES[args.scale]
    best = lambda runs: min(runs, key=lambda r: r["wall_s"])  # noqa: E731
    res = {"scale": args.scale, "entity_rows": ent, "feature_rows": feat,
           "skewless": {"pit": best([measure("pit", data, repo) for _ in range(args.reps)])},
           "floor": {"pit": best([measure("floor", data, repo) for _ in range(args.reps)])}}
    res["skewless"]["materialize"] = measure("materialize", data, repo)
    res["skewless"]["online"] = measure("online", data, repo)
    res["floor"]["online"] = measure("online-floor", data, repo)
    if not args.no_feast:
        res["feast"] = feast(data, raw, args.feast_timeout, args.feast_stores.split(","))
    text = report(res)
    write_results(results, args.scale, res, text)
    print(text)


def write_results(folders: list[Path], name: str, res: dict, text: str) -> None:
    for folder in folders:
        (folder / f"{name}.json").write_text(json.dumps(res, indent=1))
        (folder / f"{name}.md").write_text(text + "\n")
        print(f"   wrote {folder / name}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()

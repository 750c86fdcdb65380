#!/usr/bin/env python3
"""Summarize feast_peer.py result files (stdlib only).

    python3 bench/peers/summarize_feast.py RESULTS_DIR [RESULTS_DIR ...] [--json out.json]

Groups RESULTS_DIR/feast_{store}_{task}[_rK].json by (data size, store, task)
and prints min / median / max over repeats of the headline figures, plus the
1-minute load average seen at the start of each run (the machine has 2 cores:
a start load well above 1 means the run shared the CPU with something else).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import sys


def _stats(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return None
    return {"min": round(min(xs), 4), "median": round(statistics.median(xs), 4), "max": round(max(xs), 4),
            "n": len(xs)}


def headline(r: dict) -> dict:
    h: dict = {"status": r.get("status"), "peak_rss_mb": r.get("peak_rss_mb"),
               "load_start": r.get("loadavg_1m_start")}
    if r.get("status") != "ok":
        h["error"] = r.get("error")
        h["process_wall_s"] = r.get("process_wall_s")
        return h
    if r["task"] == "historical":
        h.update(wall_s=r["wall_s"], rows_out=r["rows_out"], entity_rows_in=r.get("entity_rows_in"))
    else:
        m = r.get("materialize", r)
        h.update(materialize_wall_s=m["wall_s"], entity_rows_written=m["entity_rows_written"],
                 entity_rows_per_s=m["entity_rows_per_s"], feature_rows_scanned_per_s=m["feature_rows_scanned_per_s"])
        if r["task"] == "online":
            for b, v in r["online"].items():
                g = v["get_online_features"]
                h[f"{b}_p50_ms"] = g["p50_ms"]
                h[f"{b}_p99_ms"] = g["p99_ms"]
    return h


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dirs", nargs="+")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    groups: dict = {}
    for d in a.dirs:
        for f in sorted(glob.glob(os.path.join(d, "feast_*.json"))):
            try:
                r = json.load(open(f))
            except Exception:
                continue
            if "task" not in r:
                continue
            data = r.get("data", {})
            size = f"{data.get('entity_rows')}x{data.get('feature_rows')}"
            key = (size, r["offline_store"], r["task"])
            groups.setdefault(key, []).append((re.sub(r".*/", "", f), headline(r)))
    out = {}
    for key in sorted(groups):
        runs = groups[key]
        name = " ".join(key)
        agg: dict = {"runs": len(runs), "status": [h["status"] for _, h in runs]}
        fields = sorted({k for _, h in runs for k in h if k not in ("status", "error")})
        for k in fields:
            s = _stats([h.get(k) for _, h in runs])
            if s:
                agg[k] = s
        errs = sorted({h["error"] for _, h in runs if h.get("error")})
        if errs:
            agg["errors"] = errs
        out[name] = agg
        print(f"== {name}  ({len(runs)} run(s), status {agg['status']})")
        for k in fields:
            if k in agg:
                s = agg[k]
                print(f"   {k:32s} min {s['min']:>12} median {s['median']:>12} max {s['max']:>12}")
        for e in errs:
            print(f"   error: {e}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check a point-in-time join result against a pandas reference.

    python bench/pit_check.py DATA_DIR RESULT.parquet [--json out.json]

DATA_DIR is bench/datagen.py output; RESULT.parquet is a historical-retrieval
output (e.g. feast_peer.py --save-output) with driver_id, event_timestamp and
the f{i}_{j} columns.  The reference: for every entity row and every view, the
view row with the same driver_id and the latest event_timestamp <=
entity.event_timestamp, ties on event_timestamp broken by the latest
created_timestamp; no TTL; entity rows without a match keep nulls.

Rows are matched on (driver_id, event_timestamp) (unique in datagen output
except for vanishingly rare collisions, which are reported).  Needs pandas.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pandas as pd


def reference(data_dir: str, meta: dict, ties: dict | None = None) -> pd.DataFrame:
    ent = pd.read_parquet(os.path.join(data_dir, "entity.parquet"))
    ref = ent.sort_values("event_timestamp", kind="stable")
    for v in meta["views"]:
        f = pd.read_parquet(os.path.join(data_dir, v["path"]))
        if ties is not None:
            n = f.groupby(["driver_id", "event_timestamp"]).size()
            ties[v["name"]] = set(n[n > 1].index)
        f = f.sort_values(["event_timestamp", "created_timestamp"], kind="stable")
        f = f.drop_duplicates(["driver_id", "event_timestamp"], keep="last")
        f = f.drop(columns=["created_timestamp"]).rename(columns={"event_timestamp": f"_ts_{v['name']}"})
        f["event_timestamp"] = f[f"_ts_{v['name']}"]
        ref = pd.merge_asof(ref, f, on="event_timestamp", by="driver_id", direction="backward",
                            allow_exact_matches=True)
        del f
    return ref


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("result")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    with open(os.path.join(a.data_dir, "meta.json")) as fh:
        meta = json.load(fh)

    ties: dict = {}
    ref = reference(a.data_dir, meta, ties)
    out = pd.read_parquet(a.result)
    key = ["driver_id", "event_timestamp"]
    for df in (ref, out):
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    rep: dict = {
        "reference_rows": int(len(ref)),
        "result_rows": int(len(out)),
        "reference_duplicate_keys": int(ref.duplicated(key).sum()),
        "result_duplicate_keys": int(out.duplicated(key).sum()),
    }
    m = ref.merge(out, on=key, how="outer", suffixes=("", "__res"), indicator=True)
    rep["missing_rows"] = int((m["_merge"] == "left_only").sum())
    rep["extra_rows"] = int((m["_merge"] == "right_only").sum())
    missing = m[m["_merge"] == "left_only"]
    feat_cols = [f for v in meta["views"] for f in v["features"]]
    if len(missing):
        rep["missing_rows_with_some_null_in_reference"] = int(missing[feat_cols].isna().any(axis=1).sum())
    both = m[m["_merge"] == "both"]
    per_view = {}
    total_bad = 0
    for v in meta["views"]:
        bad_rows = np.zeros(len(both), dtype=bool)
        for f in v["features"]:
            if f + "__res" not in both:
                per_view[v["name"]] = "column missing in result"
                break
            a_, b_ = both[f].to_numpy(dtype=float), both[f + "__res"].to_numpy(dtype=float)
            bad_rows |= ~np.isclose(a_, b_, rtol=0, atol=1e-12, equal_nan=True)
        else:
            per_view[v["name"]] = int(bad_rows.sum())
            total_bad += int(bad_rows.sum())
            if ties[v["name"]]:
                tk = ties[v["name"]]
                rep.setdefault("rows_resolved_at_event_time_ties", {})[v["name"]] = int(sum(
                    (d, t) in tk for d, t in zip(both["driver_id"], both[f"_ts_{v['name']}"])))
            if bad_rows.any():
                bad = both[bad_rows]
                tie_keys = ties[v["name"]]
                n_tie = sum((d, t) in tie_keys for d, t in zip(bad["driver_id"], bad[f"_ts_{v['name']}"]))
                rep.setdefault("mismatched_rows_at_event_time_ties", {})[v["name"]] = int(n_tie)
    rep["mismatched_rows_per_view"] = per_view
    rep["ok"] = rep["missing_rows"] == 0 and rep["extra_rows"] == 0 and total_bad == 0 \
        and all(isinstance(x, int) for x in per_view.values())
    print(json.dumps(rep, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rep, fh, indent=2)
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

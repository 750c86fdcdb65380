"""What `skewless audit` costs: logged predictions replayed through the training path, per second.

    nice -n 10 .venv/bin/python -m bench.skew_audit_bench [--rows 200000] [--reps 3]
                                                         [--out bench/out/skew_audit.json]

The credit sample's model over a three-view service (loan_features and zipcode_features read by the model, the
zipcode read from loan_zipcode by a key lookup), packaged and registered; ``--rows`` predictions logged by the
server's own path (``ServedModel.predict_batch`` and its log writer, ``bench.monitor_bench.build``: requests of
10,000 rows, one log file each) on clean traffic, so
every row must come back exact. Figures, medians over ``--reps``: the whole ``audit()`` (log read, two retrievals
over the log rows, the model recompute) in logged rows per second. The host's load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

GOAL_ROWS_PER_S = 50_000


def build(work: Path, rows: int):
    """monitor_bench's credit model and log writer (its predict and log path), one flush per 10,000 rows."""
    from bench.monitor_bench import build as monitor_build

    per_file = min(rows, 10_000)
    store, served, _, _, _ = monitor_build(work, rows // per_file, per_file)
    served.close()
    return store, len({v.name for stage in served.stages for v, _ in stage})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench/out/skew_audit.json")
    args = ap.parse_args()
    from skewless.serving import audit

    with tempfile.TemporaryDirectory(prefix="skewless-audit-bench-") as tmp:
        store, views = build(Path(tmp), args.rows)
        walls, stages = [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            report = audit(store, "credit")
            walls.append(time.perf_counter() - t0)
            stages.append(report.stages)
            assert report.rows == args.rows and report.exact == args.rows, report.to_dict()
    wall = statistics.median(walls)
    result = {"rows": args.rows, "views": views, "reps": args.reps, "wall_s": wall, "walls_s": walls,
              "stages_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
              "rows_per_s": args.rows / wall, "goal_rows_per_s": GOAL_ROWS_PER_S,
              "meets_goal": args.rows / wall >= GOAL_ROWS_PER_S, "loadavg": os.getloadavg()}
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""What batch scoring costs: a registered model version scored over entity rows, per second.

    nice -n 10 .venv/bin/python -m bench.batch_score_bench [--rows 200000] [--reps 3]
                                                           [--out bench/out/batch_score.json]

The credit sample's model over its three-view service (loan_features and zipcode_features read by the model, the
zipcode read from loan_zipcode by a key lookup: two retrievals), packaged and registered (``bench.monitor_bench``'s
model, without its log). ``--rows`` entity rows drawn from the sample's loans, all at one instant, on the embedded
engine (DuckDB). Figures, medians over ``--reps``: ``score()`` alone (retrievals, the model, the rows in the
prediction log's columns) and with an output view (also written once through ingest: a new view per rep, so each
rep writes), in entity rows per second, with each stage's wall time. The host's load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build(work: Path, rows: int):
    from skewless.demo import _model
    from skewless.sample_repo import credit_repo
    from skewless.serving import ModelRegistry, package_model
    from skewless.timeutil import now

    store = credit_repo(work / "repo")
    loans = pd.read_parquet(work / "repo" / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", "loan_status"])
    job = store.get_historical_features(loans, "credit_model_v1")
    train = job.to_pandas()
    model = _model().fit(train[[r.split(":")[1] for r in job.features]], train["loan_status"])
    art = package_model(model, name="credit", store=store, feature_service="credit_model_v1", training_set=job,
                        key_lookups={"zipcode": "loan_zipcode:zipcode"})
    ModelRegistry(store).register(art)
    ids = np.random.default_rng(1).choice(loans.loan_id.to_numpy(), rows)
    return store, pd.DataFrame({"loan_id": ids, "event_timestamp": now()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench/out/batch_score.json")
    args = ap.parse_args()
    from skewless.serving.batch_score import score

    with tempfile.TemporaryDirectory(prefix="skewless-score-bench-") as tmp:
        store, entity = build(Path(tmp), args.rows)
        score(store, "credit", entity.head(1000))  # warm-up: imports, the first DuckDB session
        runs: dict[str, list] = {"score": [], "with_view": []}
        for rep in range(args.reps):
            for kind in runs:
                t0 = time.perf_counter()
                result = score(store, "credit", entity, output_view=f"scores_{rep}" if kind == "with_view" else None)
                wall = time.perf_counter() - t0
                assert result.rows == args.rows and result.written == (args.rows if kind == "with_view" else 0)
                runs[kind].append((wall, result.seconds))
    result = {"rows": args.rows, "reps": args.reps, "loadavg": os.getloadavg()}
    for kind, rs in runs.items():
        wall = statistics.median(w for w, _ in rs)
        result[kind] = {"wall_s": wall, "walls_s": [w for w, _ in rs], "rows_per_s": args.rows / wall,
                        "stages_s": {k: statistics.median(s[k] for _, s in rs) for k in rs[0][1]}}
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

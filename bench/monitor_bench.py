"""What a skew refresh costs (the model server's background `monitor.Refresher`, and `skewless monitor`): reading the
prediction log and computing every feature's PSI/KS/JS against the training set's sketches.

    .venv/bin/python -m bench.monitor_bench [--files 1000] [--rows-per-file 10] [--reps 5]
                                            [--out bench/out/monitor.json]

The credit sample (11 features), its model packaged with a registered training set, and a prediction log of
``--files`` commits of ``--rows-per-file`` rows each, written by the server's own path (``ServedModel``'s predict
and log writer, one flush per file: a log flushed every second at low traffic is 3,600 files an hour). Figures,
medians over ``--reps``: ``cli`` = ``monitor()`` (every file read), ``cold`` = a refresher's first refresh (every
file read, then cached), ``warm`` = a refresh after one more file was committed (that file read, the rest from the
cache). The host's load average is recorded with them.
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


def build(work: Path, files: int, per_file: int):
    from skewless.demo import _model
    from skewless.sample_repo import credit_repo
    from skewless.serving import ModelRegistry, package_model
    from skewless.serving.model import ServedModel

    store = credit_repo(work / "repo")
    loans = pd.read_parquet(work / "repo" / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", "loan_status"])
    job = store.get_historical_features(loans, "credit_model_v1")
    job.register("credit_train")
    train = job.to_pandas()
    model = _model().fit(train[[r.split(":")[1] for r in job.features]], train["loan_status"])
    art = package_model(model, name="credit", store=store, feature_service="credit_model_v1", training_set=job,
                        key_lookups={"zipcode": "loan_zipcode:zipcode"})
    mv = ModelRegistry(store).register(art)
    served = ServedModel(art, store, version=mv.version, log_writer_options={"flush_seconds": 3600,
                                                                              "flush_rows": 10**9})
    served.load()
    ids = np.random.default_rng(1).choice(loans.loan_id.to_numpy(), files * per_file + per_file)
    t0 = time.perf_counter()
    for i in range(files):
        log_file(served, ids[i * per_file:(i + 1) * per_file])
    print(f"log of {files} files x {per_file} rows written in {time.perf_counter() - t0:.1f} s")
    return store, served, art, mv.version, ids[files * per_file:]


def log_file(served, ids) -> None:
    req = served.parse([{"loan_id": int(x)} for x in ids])
    (answer,) = served.predict_batch([req])
    assert isinstance(answer, dict), answer
    assert served.log.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rows-per-file", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="bench/out/monitor.json")
    args = ap.parse_args()
    from skewless.serving import monitor
    from skewless.serving.monitor import Refresher

    with tempfile.TemporaryDirectory(prefix="skewless-monitor-bench-") as tmp:
        store, served, art, version, extra = build(Path(tmp), args.files, args.rows_per_file)
        cli, cold, warm = [], [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            report = monitor(store, "credit")
            cli.append(time.perf_counter() - t0)
            assert report.windows[0].rows >= args.files * args.rows_per_file
            r = Refresher(store, art.manifest, version, lambda _report: None)
            t0 = time.perf_counter()
            r.refresh()
            cold.append(time.perf_counter() - t0)
            log_file(served, extra[:1])  # one more commit, as the next flush would add
            t0 = time.perf_counter()
            last = r.refresh()
            warm.append(time.perf_counter() - t0)
            assert last.windows[0].rows == report.windows[0].rows + 1
        served.close()
    result = {"files": args.files, "rows_per_file": args.rows_per_file, "features": len(report.thresholds),
              "reps": args.reps, "cli_s": statistics.median(cli), "cold_s": statistics.median(cold),
              "warm_s": statistics.median(warm), "loadavg": os.getloadavg()}
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

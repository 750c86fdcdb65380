"""Where one prediction's time goes, in process (``./run shell -m bench.serving_profile``).

    ./run shell -m bench.serving_profile [--model logreg1] [--calls 3000] [--cprofile]

Uses what ``bench.serving_bench`` built under ``.bench/serving/`` (run it once first) and the local cloud's Redis
(``SKEWLESS_LOCAL_STATE``, leased while it runs; the Redis repo is re-materialized, as the bench does). Prints the
median microseconds of each stage of ``ServedModel.parse`` + ``predict_batch`` for a one-row request: JSON and
validation, the online read, the DataFrame the frame path would build, the model call (frame path, array path,
what the server takes), the log chunk; ``--cprofile`` adds the cProfile of the whole call. The server around it
(HTTP, routing, the batcher) is profiled with py-spy on a running server: see bench/results/serving_i14_profile.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench.serving_bench import WORK


def median_us(fn, calls: int) -> float:
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e6, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.serving_profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="logreg1")
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the server sets it
    import orjson
    import pyarrow as pa

    from skewless import FeatureStore
    from skewless.localcloud import LocalCloud
    from skewless.sample_repo import credit_repo
    from skewless.serving.artifact import ModelArtifact
    from skewless.serving.model import ServedModel
    from skewless.timeutil import now

    if not (WORK / "bodies-skewless.jsonl").exists():
        sys.exit("run ./run shell -m bench.serving_bench --models logreg1 --online redis first (it builds .bench/serving)")
    cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", WORK.parent.parent / ".skewless-local"))
    cloud.acquire(["redis"])
    try:
        credit_repo(WORK / "repo-redis", f"url: {cloud.endpoints()['redis']}\n  options: {{key_prefix: servingbench}}")
        served = ServedModel(ModelArtifact(WORK / "models" / args.model), FeatureStore(WORK / "repo-redis"))
        served.load()
        raw = [line.encode() for line in (WORK / "bodies-skewless.jsonl").read_text().splitlines()]
        reqs = [served.parse(orjson.loads(b)) for b in raw]
        n, calls = len(raw), args.calls
        at = now()
        one = [dict(reqs[0].rows[0])]
        values, evs, sts = served._read([dict(one[0])], at)
        cols = [values[src] for _, src, _ in served._inputs]

        def frame(_):
            arrays = [pa.array(c, type=t) for c, (_, _, t) in zip(cols, served._inputs)]
            return pa.RecordBatch.from_arrays(arrays, names=served._input_names).to_pandas(use_threads=False)
        df = frame(0)
        model = served._model
        outputs = {k: list(v.tolist()) for k, v in model.predict(df).items()}
        # (a checkout before the array path has no _model_outputs: that stage is left out there)
        server_call = getattr(served, "_model_outputs", None)
        stages = {
            "JSON + parse (validation)": lambda i: served.parse(orjson.loads(raw[i % n])),
            "online read (Redis round trip, decode)": lambda i: served._read([dict(reqs[i % n].rows[0])], at),
            "DataFrame of the inputs (Arrow -> pandas)": frame,
            "model.predict on that DataFrame (reused: pandas' caches warm)": lambda i: model.predict(df),
            "DataFrame + model.predict, a new frame each call (the frame path)": lambda i: model.predict(frame(i)),
            "the model call the server makes (_model_outputs)": (lambda i: server_call(one, values))
            if server_call else None,
            "log chunk": lambda i: served._log_chunk([reqs[0]], one, at, values, evs, sts, outputs),
            "whole predict_batch (read + model + log hand-off + answer)": lambda i: served.predict_batch([reqs[i % n]]),
        }
        print(f"{args.model}: array path {'on' if getattr(served, '_matrix', None) is not None else 'off'} "
              f"(median of {calls} calls, us)")
        for name, fn in stages.items():
            if fn is not None:
                print(f"  {name:60s} {median_us(fn, calls):8.1f}")
        if args.cprofile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            for i in range(calls):
                served.predict_batch([served.parse(orjson.loads(raw[i % n]))])
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        served.close()
    finally:
        cloud.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())

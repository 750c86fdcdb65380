"""Where the slow requests lose their time: a per-request timeline of the server under wrk
(``./run shell -m bench.serving_timeline``).

    ./run shell -m bench.serving_timeline [--connections 1] [--seconds 5] [--python OTHER_VENV_PYTHON]

Uses what ``bench.serving_bench`` built under ``.bench/serving/`` (run it once first; the local cloud's Redis must
hold its rows, e.g. while ``bench.serving_profile`` or the bench runs). Starts ``skewless.serving`` (logreg1, Redis,
prediction log on) with hooks that record, in the server process: when each request's bytes reached the event loop
and when its answer was written, every garbage collection (thread, generation, duration) and every prediction log
flush. Then, over wrk's measured run:

- the real per-request cycle at one connection (answer to answer) and its p99, next to wrk's p99. wrk 4 corrects
  for coordinated omission: a stall of S ms adds about S / (mean cycle) samples, so its p99 at one connection is set
  by the total time of the long stalls, not by the 1% slowest requests;
- the stall time (cycles over 2 ms), the excess time of the requests answered during log flushes (per flush), the
  collections and their longest pause; the server's CPU per request.

Figures move with the host's load (2 shared cores): compare variants back to back (``--python``: another checkout's
venv serves that checkout's code).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.serving_bench import LUA, WORK, Server, free_port


def _serve(out: str) -> None:
    """In the server process: hooks, then ``python -m skewless.serving serve``; the timeline to ``out`` at exit."""
    import gc
    import threading

    import uvicorn
    from uvicorn.protocols.http import httptools_impl as h

    from skewless.serving import prediction_log as pl
    from skewless.serving.__main__ import main

    pc = time.perf_counter
    recv: list[float] = []
    done: list[float] = []
    gcs: list[tuple] = []
    flushes: list[tuple] = []
    data_received, send, flush_once, serve = (h.HttpToolsProtocol.data_received, h.RequestResponseCycle.send,
                                              pl.PredictionLogWriter._flush_once, uvicorn.Server._serve)

    def on_data(self, data):
        recv.append(pc())
        return data_received(self, data)

    async def on_send(self, message):
        await send(self, message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.append(pc())

    started = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            started[0] = pc()
        else:
            gcs.append((started[0], pc(), info["generation"], threading.current_thread().name))

    def on_flush(self):
        t0 = pc()
        try:
            return flush_once(self)
        finally:
            flushes.append((t0, pc()))

    async def on_serve(self, *a, **k):  # uvicorn re-raises SIGTERM after its shutdown: no atexit
        try:
            return await serve(self, *a, **k)
        finally:
            Path(out).write_text(json.dumps({"recv": recv, "done": done, "gc": gcs, "flush": flushes}))

    h.HttpToolsProtocol.data_received, h.RequestResponseCycle.send = on_data, on_send
    pl.PredictionLogWriter._flush_once, uvicorn.Server._serve = on_flush, on_serve
    gc.callbacks.append(on_gc)
    sys.exit(main(["serve"]))


def analyse(doc: dict, seconds: float, wrk_res: dict, cpu_seconds: float) -> dict:
    import numpy as np

    done = np.array(doc["done"])
    window = done[done > done[-1] - seconds]
    cycles = np.diff(window)
    ends = window[1:]
    flushes = [f for f in doc["flush"] if f[0] > window[0]]
    median = float(np.median(cycles))

    def in_flush(a: float, b: float) -> bool:
        return any(f[0] < b and f[1] > a for f in flushes)

    excess = sum(max(0.0, c - median) for e, c in zip(ends, cycles) if in_flush(e - c, e))
    gcs = [g for g in doc["gc"] if g[0] > window[0]]
    n = wrk_res["requests"]
    return {"wrk_p50_ms": wrk_res["p50_us"] / 1e3, "wrk_p99_ms": wrk_res["p99_us"] / 1e3,
            "req_s": round(n / (wrk_res["duration_us"] / 1e6)), "cpu_us_per_request": round(cpu_seconds / n * 1e6),
            "cycle_p50_ms": round(median * 1e3, 3), "cycle_p99_ms": round(float(np.percentile(cycles, 99)) * 1e3, 3),
            "stall_ms_over_2ms": round(float(cycles[cycles > 0.002].sum()) * 1e3),
            "flushes": len(flushes), "flush_excess_ms_per_flush": round(excess * 1e3 / max(1, len(flushes)), 1),
            "gc_collections": len(gcs), "gc_ms": round(sum(g[1] - g[0] for g in gcs) * 1e3, 1),
            "gc_max_ms": round(max([g[1] - g[0] for g in gcs] or [0.0]) * 1e3, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.serving_timeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--python", default=sys.executable, help="the server's python (another checkout's venv)")
    ap.add_argument("--serve", metavar="OUT", help=argparse.SUPPRESS)  # the server side (see _serve)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.serve)
    port, out = free_port(), WORK / f"timeline-{os.getpid()}.json"
    env = {"SKEWLESS_REPO": str(WORK / "repo-redis"), "SKEWLESS_MODEL_DIR": str(WORK / "models" / "logreg1"),
           "SAGEMAKER_BIND_TO_PORT": str(port), "SKEWLESS_HOST": "127.0.0.1", "SKEWLESS_LOG_LEVEL": "WARNING"}
    server = Server("timeline", [args.python, "-m", "bench.serving_timeline", "--serve", str(out)], env, "/ping",
                    port)
    try:
        def wrk(seconds: int) -> dict:
            res = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "-s", str(LUA),
                                  server.url + "/invocations"],
                                 env={**os.environ, "BODIES": str(WORK / "bodies-skewless.jsonl")},
                                 capture_output=True, text=True, check=True).stdout
            return json.loads(next(ln for ln in res.splitlines() if ln.startswith("JSON "))[5:])

        wrk(1)  # warm-up
        cpu0 = server.cpu()
        res = wrk(args.seconds)
        cpu = server.cpu() - cpu0
    finally:
        server.stop()  # SIGTERM: the server writes its timeline on the way out
    doc = json.loads(out.read_text())
    out.unlink()
    print(json.dumps({"connections": args.connections, "load": round(os.getloadavg()[0], 2),
                      **analyse(doc, args.seconds, res, cpu)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

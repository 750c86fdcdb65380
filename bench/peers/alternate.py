"""Timing calls alternately in one process (each round rotated, so no call always runs first or right after
another): load from other programs on the 2 cores falls on each alike. Standard library only: bench/odt_bench.py
imports it, and bench/peers/feast_odt.py runs it in the Feast venv."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def time_alternately(calls: dict[str, Callable[[int], object]], reps: int, warmup: int = 500) -> dict[str, dict]:
    """name -> {p50_us, p99_us, mean_us} over ``reps`` rounds after ``warmup``; each call gets the round number."""
    samples: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls.items())
    for i in range(warmup + reps):
        order = order[1:] + order[:1]
        for k, fn in order:
            t0 = time.perf_counter()
            fn(i)
            dt = time.perf_counter() - t0
            if i >= warmup:
                samples[k].append(dt)
    out = {}
    for k, s in samples.items():
        s.sort()
        out[k] = {"p50_us": s[len(s) // 2] * 1e6, "p99_us": s[int(len(s) * 0.99)] * 1e6,
                  "mean_us": statistics.fmean(s) * 1e6}
    return out

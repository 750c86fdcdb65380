"""Online reads of concurrent requests, coalesced: the requests that reach the event loop in one step are read
from the store together, one ``get_online_features`` (for Redis: one MGET, one round trip) per feature list.

Why: at 16 connections the route's read ran synchronously on the loop once per request, so every request paid a
store round trip (and the Redis wire's busy-poll of it) and the read's fixed Python work (plan lookup, key
normalising, decoding setup) for its one entity; the round trips did not overlap (bench/results/feature_server.md,
"Where the time goes"). Here a request parks on a future; the first one of a loop step schedules ``flush`` with
``call_soon``, which runs after every request task made runnable in that step has parked, so a burst of N requests
costs one read of N x entities. At one connection a batch is that one request: the cost is one more loop step.

A batch is grouped by (feature references, full_feature_names); each group is one read of its requests' rows
concatenated (at most ``max_rows`` rows per read, so a crowd of large requests is several reads), and each request
gets its slice of the answer (``Slice``, what ``feast_json.render_online`` reads). A read that fails with anything but
``StoreUnavailable`` is redone one request at a time, so one request's bad entity key (a 422) is its own error, not
its neighbours'. With ``inline`` (a store whose reads are bounded) a batch of one request, or of at most
``inline_rows`` rows in all (unless ``crowded()``: the feature server's pushes in flight), while no other read
runs, is read on the loop: no thread hop. A larger batch, and every
batch of a store whose reads cannot be bounded, is read on ``pool`` while the loop goes on serving.

Why small batches stay on the loop: the hop to a read thread and back (a queue put that wakes the thread, the GIL
handed over and back, ``call_soon_threadsafe`` waking the loop through its self-pipe) costs more than a small MGET's
round trip, on a loaded 2-core host several scheduler waits more. At 16 connections, 1 entity x 3 views (batches
of at most 16 rows), the same server (direct route) measured 4.4-7.1k req/s at 124-207 us of CPU per request with
every crowd on the thread, 7.4-11.2k at 83-110 us with them on the loop (ad-hoc A/B, load 3-4; published with the
direct route against main: bench/results/feature_server_i16fs_http.md). A large batch (the 100-entity
requests of a crowd) still goes to the thread: its round trip is long enough for the loop to parse and answer other
requests meanwhile, and a store that stops answering holds the loop ``read_timeout`` at most either way (then the
breaker opens).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable

from skewless.errors import StoreUnavailable


class Slice:
    """Rows ``lo:hi`` of an ``OnlineResponse``: the attributes ``feast_json.render_online`` reads."""

    __slots__ = ("values", "statuses", "event_timestamps")

    def __init__(self, resp, lo: int, hi: int):
        cut: dict[int, list] = {}  # the views' status and timestamp lists are shared by their features: cut once

        def part(col: list) -> list:
            got = cut.get(id(col))
            if got is None:
                got = cut[id(col)] = col[lo:hi]
            return got
        self.values = {k: v[lo:hi] for k, v in resp.values.items()}
        self.statuses = {k: part(v) for k, v in resp.statuses.items()}
        self.event_timestamps = {k: part(v) for k, v in resp.event_timestamps.items()}


class ReadCoalescer:
    """``await read(req)``: the ``OnlineResponse`` (or a ``Slice`` of a shared one) for ``req`` (an
    ``OnlineRequest``), read together with the other requests of this loop step. ``read_many(features, rows,
    full_feature_names)`` is the store's read."""

    def __init__(self, read_many: Callable, pool: Executor, *, inline: bool, max_rows: int = 1024,
                 inline_rows: int = 64, crowded: Callable[[], bool] = lambda: False):
        self._read_many, self._pool, self.inline, self.max_rows = read_many, pool, inline, max_rows
        self.inline_rows, self.crowded = inline_rows, crowded
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._threaded = 0  # reads running on the pool now
        self.reads = 0  # store reads made (for tests and the bench: reads < requests under load)

    def read(self, req) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((req, fut))
        return fut

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[tuple, list] = {}
        for req, fut in pending:
            if fut.cancelled():  # the client went away
                continue
            f = req.features
            groups.setdefault((f if isinstance(f, str) else tuple(f), req.full_feature_names), []).append((req, fut))
        for group in groups.values():
            batch, rows = [], 0
            for item in group:
                n = len(item[0].rows)
                if batch and rows + n > self.max_rows:
                    self._dispatch(batch)
                    batch, rows = [], 0
                batch.append(item)
                rows += n
            self._dispatch(batch)

    def _dispatch(self, batch: list) -> None:
        # A lone request, or a batch of few rows, with nothing else reading runs on the loop (no thread hop: the
        # module docstring); a large batch goes to a thread, the loop parsing and answering other requests meanwhile.
        if self.inline and not self._threaded and (len(batch) == 1 or (
                sum(len(r.rows) for r, _ in batch) <= self.inline_rows and not self.crowded())):
            _settle(batch, self._answers(batch))
            return
        self._threaded += 1
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._pool, self._run_threaded, batch, loop)

    def _run_threaded(self, batch: list, loop) -> None:
        results = self._answers(batch)
        loop.call_soon_threadsafe(self._settle_threaded, batch, results)

    def _settle_threaded(self, batch: list, results: list) -> None:
        self._threaded -= 1
        _settle(batch, results)

    def _answers(self, batch: list) -> list:
        """One answer (a response or the exception) per request of ``batch``."""
        first = batch[0][0]
        if len(batch) == 1:
            return [self._one(first)]
        rows = [r for req, _ in batch for r in req.rows]
        try:
            self.reads += 1
            resp = self._read_many(first.features, rows, first.full_feature_names)
        except StoreUnavailable as exc:  # the store, not a request: every request gets it
            return [exc] * len(batch)
        except Exception:  # one request's rows (a bad key) or a bug: each request alone, with its own answer
            return [self._one(req) for req, _ in batch]
        out, lo = [], 0
        for req, _ in batch:
            hi = lo + len(req.rows)
            out.append(Slice(resp, lo, hi))
            lo = hi
        return out

    def _one(self, req):
        try:
            self.reads += 1
            return self._read_many(req.features, req.rows, req.full_feature_names)
        except Exception as exc:
            return exc


def _settle(batch: list, results: list) -> None:
    for (_, fut), res in zip(batch, results):
        if fut.done():
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)


__all__ = ["ReadCoalescer", "Slice"]

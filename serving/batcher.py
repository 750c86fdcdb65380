"""Micro-batching with a bounded queue.

Requests wait in a queue; one worker takes everything queued (up to ``max_batch_rows`` rows) whenever it is
free and runs it as one batch in a thread (the event loop keeps accepting and answering meanwhile). So an idle
server adds no waiting at all (a lone request is a batch of one at once), and under load batches grow by
themselves: one online read and one model call serve many requests. A full queue refuses at once (``Overloaded``
-> 429) instead of growing memory and latency without bound.

A small batch (at most ``inline_rows`` rows in all, whatever the number of requests, nothing else queued) runs on
the event loop itself when such batches have been fast (the last one took under ``inline_seconds``): handing it to
the thread and waking the loop back (a futex, the GIL changing hands twice, the loop's self-pipe) costs a sizeable
share of a millisecond at one connection, and under load about a seventh of the server's CPU per request
(bench/results/serving_i14_profile.md). Requests arriving while it runs queue up and form the next batch, so
micro-batching under concurrency is unchanged; a larger batch goes to the thread, and a slow model (or a slow
store) is never run inline, so it cannot stall /ping or the 429 answers. An
inline run goes through ``inline_fn`` when given, which may give up by returning None (the server bounds the online
read it makes: a store that hangs right then blocks the loop for that bound only): the batch then runs on the thread.

With a ``timeout``, each request has a deadline (submit time + timeout, queueing included): past it the caller
gets ``PredictTimeout`` (504) at once. A thread cannot be killed, so a batch still running once every request in it
is past its deadline is abandoned: it finishes in the background (its rows still reach the prediction log: the
model did compute them) while the next batches run on a fresh thread. At most ``max_overrunning`` abandoned
batches run at a time; at that bound the batcher waits for the overrunning batch instead of starting yet another
thread, and ``saturated`` is true (the server reports not ready). An inline batch cannot be interrupted: it is
answered 504 if it ends past its deadline, and being slow it sends the next small batches to the thread.

``fail_all(exc)`` answers every queued and running request with ``exc`` at once (the server's store breaker calls
it when the online store is found down or hung); a running batch is then abandoned as a timed-out one is. A batch
on the thread still running after ``slow_after`` seconds calls ``on_slow`` once (the server probes the store).
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .errors import Overloaded, PredictTimeout


def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="skewless-predict")


class MicroBatcher:
    def __init__(self, fn: Callable[[list], list], *, max_batch_rows: int = 256, max_queue: int = 1024,
                 on_batch: Callable[[int, int], None] | None = None, inline_rows: int = 8,
                 inline_seconds: float = 0.005, timeout: float | None = None, max_overrunning: int = 4,
                 slow_after: float | None = None, on_slow: Callable[[], None] | None = None,
                 inline_fn: Callable[[list], list | None] | None = None):
        self.fn, self.max_batch_rows, self.max_queue = fn, max_batch_rows, max_queue
        self._inline = inline_fn or fn
        self.slow_after, self._on_slow = slow_after, on_slow
        self._running: list[asyncio.Future] = []  # the futures of the batch being predicted
        self.inline_rows, self.inline_seconds = inline_rows, inline_seconds
        self.timeout, self.max_overrunning = timeout, max_overrunning
        self.overrunning = 0  # abandoned batches whose thread is still predicting
        self._lone_seconds = float("inf")  # how long the last small batch took (unknown: use the thread)
        self._queue: collections.deque = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = _pool()
        self._on_batch = on_batch or (lambda requests, rows: None)
        self._closing = False
        self._busy = False  # a batch is being predicted or answered

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def saturated(self) -> bool:
        """As many overrunning predictions as allowed are still running: a further overrun would stall serving."""
        return self.overrunning >= self.max_overrunning

    def _timed_out(self) -> PredictTimeout:
        return PredictTimeout(f"the prediction did not finish within the {self.timeout:g}s request timeout "
                              f"(SKEWLESS_PREDICT_TIMEOUT)")

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, item: Any, rows: int) -> Any:
        if self._closing:
            raise Overloaded("the server is shutting down")
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"request queue full ({self.max_queue} waiting); retry later")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        deadline = loop.time() + self.timeout if self.timeout else None
        self._queue.append((item, rows, fut, deadline))
        self._wake.set()
        if deadline is None:
            return await fut
        # One timer that fails the future at the deadline (the worker then skips or drops it): a tenth of what
        # asyncio.wait_for's extra future and callbacks cost (bench/results/figures_in_code.md).
        timer = loop.call_at(deadline, self._expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def fail_all(self, exc: BaseException) -> int:
        """Answer every queued and running request with ``exc``; how many were answered."""
        n = 0
        for fut in [f for _, _, f, _ in self._queue] + self._running:
            if not fut.done():
                fut.set_exception(exc)
                n += 1
        return n

    def _expire(self, fut: asyncio.Future) -> None:
        if not fut.done():
            fut.set_exception(self._timed_out())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, total = [], 0
                while self._queue and (not batch or total + self._queue[0][1] <= self.max_batch_rows):
                    item, rows, fut, deadline = self._queue.popleft()
                    if fut.done():  # the client went away, or its deadline passed while queued
                        continue
                    batch.append((item, fut, deadline))
                    total += rows
                if not batch:
                    continue
                self._on_batch(len(batch), total)
                self._busy = True
                lone = total <= self.inline_rows  # a small batch, of one request or several (see the docstring)
                t0 = time.perf_counter()
                try:
                    items = [i for i, _, _ in batch]
                    results = None
                    if lone and not self._queue and self._lone_seconds < self.inline_seconds:
                        results = self._inline(items)  # None: it gave up (see the module docstring)
                    if results is None:
                        work = loop.run_in_executor(self._pool, self.fn, items)
                        self._running = [f for _, f, _ in batch]
                        results = await self._wait(work, self._running)
                except Exception as exc:  # the whole batch failed (e.g. the online store is down)
                    results = [exc] * len(batch)
                finally:
                    self._running = []
                if lone:
                    self._lone_seconds = time.perf_counter() - t0
                now = loop.time()
                for (_, fut, deadline), res in zip(batch, results):
                    if fut.done():
                        continue
                    if deadline is not None and now > deadline:  # finished, but too late (e.g. inline)
                        res = self._timed_out()
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
                self._busy = False

    async def _wait(self, work: asyncio.Future, futs: list[asyncio.Future]) -> list:
        """The batch's results; or, once every request in it is answered otherwise and at least one of them failed
        (timed out, or ``fail_all``), abandon it (see the module docstring) and return. Decided in the requests' own
        done callbacks, so the batch counts as overrunning before its answers are even written."""
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        slow = loop.call_later(self.slow_after, self._on_slow) if self.slow_after and self._on_slow else None

        def answered(_):
            if gone.done() or work.done() or self.saturated or not all(f.done() for f in futs):
                return
            # The batch has not returned, so an error on a request's future came from outside (its deadline,
            # fail_all); a batch whose callers only went away (cancelled) runs to its end.
            if any(not f.cancelled() and f.exception() is not None for f in futs):
                self.overrunning += 1
                work.add_done_callback(self._overrun_done)
                self._pool.shutdown(wait=False)  # its thread ends when the model returns
                self._pool = _pool()
                gone.set_result(None)

        for f in futs:
            f.add_done_callback(answered)
        try:
            await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if slow is not None:
                slow.cancel()
            for f in futs:
                f.remove_done_callback(answered)
        if gone.done():
            return [self._timed_out()] * len(futs)
        return work.result()  # the model's error, if it raised

    def _overrun_done(self, work: asyncio.Future) -> None:
        self.overrunning -= 1
        if not work.cancelled():
            work.exception()  # retrieved: an abandoned batch's failure is not "never retrieved" noise

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new requests, answer the queued ones, let overrunning ones end (their rows go to the prediction
        log, which is closed after this), stop."""
        self._closing = True
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._queue or self._busy or self.overrunning) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=True)

"""Micro-batching with a bounded queue.

Requests wait in a queue; one worker takes everything queued (up to ``max_batch_rows`` rows) whenever it is
free and runs it as one batch in a thread (the event loop keeps accepting and answering meanwhile). So an idle
server adds no waiting at all (a lone request is a batch of one at once), and under load batches grow by
themselves: one online read and one model call serve many requests. A full queue refuses at once (``Overloaded``
-> 429) instead of growing memory and latency without bound.

A lone small batch (one request, at most ``inline_rows`` rows, nothing else queued) runs on the event loop itself
when such batches have been fast (the last one took under ``inline_seconds``): handing it to the thread and waking
the loop back costs a sizeable share of a millisecond, and nothing else is waiting meanwhile. Requests arriving
while it runs queue up and form the next batch, which goes to the thread, so micro-batching under concurrency is
unchanged; a slow model (or a slow store) is never run inline, so it cannot stall /ping or the 429 answers.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .errors import Overloaded


class MicroBatcher:
    def __init__(self, fn: Callable[[list], list], *, max_batch_rows: int = 256, max_queue: int = 1024,
                 on_batch: Callable[[int, int], None] | None = None, inline_rows: int = 8,
                 inline_seconds: float = 0.005):
        self.fn, self.max_batch_rows, self.max_queue = fn, max_batch_rows, max_queue
        self.inline_rows, self.inline_seconds = inline_rows, inline_seconds
        self._lone_seconds = float("inf")  # how long the last lone small batch took (unknown: use the thread)
        self._queue: collections.deque = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="skewless-predict")
        self._on_batch = on_batch or (lambda requests, rows: None)
        self._closing = False
        self._busy = False  # a batch is being predicted or answered

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, item: Any, rows: int) -> Any:
        if self._closing:
            raise Overloaded("the server is shutting down")
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"request queue full ({self.max_queue} waiting); retry later")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((item, rows, fut))
        self._wake.set()
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, total = [], 0
                while self._queue and (not batch or total + self._queue[0][1] <= self.max_batch_rows):
                    item, rows, fut = self._queue.popleft()
                    if fut.cancelled():  # the client went away
                        continue
                    batch.append((item, fut))
                    total += rows
                if not batch:
                    continue
                self._on_batch(len(batch), total)
                self._busy = True
                lone = len(batch) == 1 and total <= self.inline_rows
                t0 = time.perf_counter()
                try:
                    items = [i for i, _ in batch]
                    if lone and not self._queue and self._lone_seconds < self.inline_seconds:
                        results = self.fn(items)
                    else:
                        results = await loop.run_in_executor(self._pool, self.fn, items)
                except Exception as exc:  # the whole batch failed (e.g. the online store is down)
                    results = [exc] * len(batch)
                if lone:
                    self._lone_seconds = time.perf_counter() - t0
                for (_, fut), res in zip(batch, results):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
                self._busy = False

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new requests, answer the queued ones, stop."""
        self._closing = True
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._queue or self._busy) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=True)

"""A circuit breaker in front of the online store: once the store is known down, predictions fail fast.

    closed     the store answered; predictions go through
    open       the store failed (a prediction's StoreUnavailable, or a probe that failed or did not answer within
               ``probe_timeout``); predictions answer 503 at once, without touching the store
    half-open  ``cooldown`` seconds after the last failure, the next prediction starts ONE probe (a round trip to
               the store, on the health thread) and waits for it at most ``probe_timeout``; the probe's success
               closes the breaker, its failure (or silence) opens it again. Predictions arriving while a probe runs
               answer 503 at once: one probe at a time, so a hung store never collects a crowd of waiting threads.

A probe runs in a thread (a hung socket cannot be interrupted), so a probe still blocked on a hung store keeps the
breaker open until the store answers or its own socket timeout ends it; then the next probe can start. Readiness
(``/ping``) uses the same probe and state, so the two never disagree. The breaker starts open (unknown): the first
prediction or readiness check probes. ``on_open`` is called (on the event loop) each time the breaker opens, so the
server fails the requests already queued or running against the store instead of letting them wait out the store's
own timeouts. ``on_failure`` is called for every failure of the store itself, whichever saw it first (a
prediction or a probe: which one does is a race when both run at once), never for the open breaker's own answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from typing import Callable

from skewless.errors import StoreUnavailable

log = logging.getLogger("skewless.serving")
NEVER = float("-inf")


class StoreBreaker:
    def __init__(self, probe: Callable[[], None], pool: Executor, *, cooldown: float, probe_timeout: float,
                 on_open: Callable[[StoreUnavailable], None] | None = None,
                 on_probe: Callable[[], None] | None = None,
                 on_failure: Callable[[], None] | None = None):
        self._probe_fn, self._pool = probe, pool
        self.cooldown, self.probe_timeout = cooldown, probe_timeout
        self._on_open = on_open or (lambda exc: None)
        self._on_probe = on_probe or (lambda: None)
        self._on_failure = on_failure or (lambda: None)
        self.closed = False  # True: the store answered last time
        self.checked = NEVER  # monotonic time of the last result (success or failure)
        self.reason = "the online store was not checked yet"
        self._probe: asyncio.Future | None = None
        self._probe_started = 0.0

    # -- state changes (on the event loop) ------------------------------------------------------------------
    def failed(self, reason: str) -> None:
        """The store failed (a prediction's StoreUnavailable, a probe's error or silence): open."""
        was_closed, first = self.closed, self.checked == NEVER
        self.closed, self.checked, self.reason = False, time.monotonic(), reason
        self._on_failure()
        if was_closed or first:
            log.warning("online store unavailable: failing predictions fast", extra={"error": reason})
        if was_closed:
            self._on_open(self.error())

    def succeeded(self) -> None:
        if not self.closed and self.checked != NEVER:
            log.info("online store answers again", extra={"after": self.reason})
        self.closed, self.checked = True, time.monotonic()

    def error(self) -> StoreUnavailable:
        """The open breaker's answer (503): marked ``from_breaker``, as it is not a new failure of the store."""
        exc = StoreUnavailable(f"online store unavailable ({self.reason}); answering at once until a probe of the "
                               f"store succeeds (at most one every {self.cooldown:g}s)")
        exc.from_breaker = True
        return exc

    # -- probing --------------------------------------------------------------------------------------------
    def probing(self) -> bool:
        return self._probe is not None and not self._probe.done()

    def probe(self) -> asyncio.Future:
        """The running probe, or a new one. Its result is applied on the loop; past ``probe_timeout`` without an
        answer the breaker opens (the probe thread goes on until the store or its socket timeout ends it)."""
        if self.probing():
            return self._probe
        loop = asyncio.get_running_loop()
        self._on_probe()
        self._probe_started = time.monotonic()
        fut = self._probe = loop.run_in_executor(self._pool, self._run_probe)
        fut.add_done_callback(self._probed)
        timer = loop.call_later(self.probe_timeout, self._overdue, fut)
        fut.add_done_callback(lambda _: timer.cancel())
        return fut

    def _run_probe(self) -> str | None:
        try:
            self._probe_fn()
        except Exception as exc:  # any failure means "down"; the reason is reported and logged
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None

    def _probed(self, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        error = fut.result()
        if error is None:
            self.succeeded()
        else:
            self.failed(error)

    def _overdue(self, fut: asyncio.Future) -> None:
        if not fut.done():
            self.failed(f"no answer to a probe within {self.probe_timeout:g}s")

    async def wait_probe(self) -> bool:
        """Wait for the running (or a new) probe, at most what is left of its ``probe_timeout``; the state after."""
        fut = self.probe()
        left = self.probe_timeout - (time.monotonic() - self._probe_started)
        if left > 0:
            await asyncio.wait((fut,), timeout=left)
        return self.closed

    async def admit(self) -> None:
        """For a prediction while the breaker is not closed (callers test ``closed`` first: the hot path pays one
        attribute read). Half-open: this request probes and waits for it; otherwise StoreUnavailable at once."""
        if not self.probing() and time.monotonic() - self.checked >= self.cooldown and await self.wait_probe():
            return
        raise self.error()

    async def check(self, max_age: float) -> bool:
        """Readiness: the last result while closed and younger than ``max_age``; otherwise (re)probe."""
        if self.closed and time.monotonic() - self.checked <= max_age:
            return True
        return await self.wait_probe()


__all__ = ["StoreBreaker"]

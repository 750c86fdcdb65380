"""The feature server's writes: ``POST /push`` (Feast's push: ``FeatureStore.push``, ingest's validation and write
path) and ``POST /write-to-online-store`` (what Feast's ``remote`` online store sends), as the routes of ``app``'s
``FeatureServer`` (a mixin: the token, breaker, metrics and error mapping are the server's).

Each is answered two ways, with the same checks, statuses and metrics: as a Starlette route (``push``,
``write_to_online_store``: any ASGI server, and the requests uvicorn's protocol leaves to the app: chunked bodies,
bodies past ``max_body_bytes``, ``Expect: 100-continue``), and as a direct route of ``http_protocol`` under
``skewless serve`` (``push_direct``, ``write_direct``: the whole body in hand, no ASGI request cycle, task, Request or
Response object). Through the ASGI app a paced push paid ~0.1-0.2 ms of CPU for that machinery with its caches cold
(bench/feature_server_bench.py freshness), as the read did before its own direct route.

A direct push that can be written now (an online push alone, admitted: ``_inline_push``) is written on the loop
before the handler returns; any other (the breaker not closed, another push or a read in flight, the history) runs as
``_write_parsed``, the ASGI route's own coroutine, on a task whose result is the answer. Shutdown: uvicorn waits for
a direct request's answer as for an ASGI one (its connection stays open until answered), and the lifespan waits for
the push threads: every push answered 200 is written.
"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from skewless.definitions import CREATED_TS, EVENT_TS
from skewless.errors import NotFoundError, StoreUnavailable
from skewless.push import views_for as push_views

from ..invocations import read_body
from . import feast_json

PUSH, ONLINE_WRITE = "push", "write-to-online-store"  # the routes' metrics labels


def _auth(headers: list) -> str:
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


class PushRoutes:
    """``FeatureServer``'s write routes (it sets ``opts``, ``store``, ``metrics``, ``push_pool``, ``in_flight``,
    ``reading``, ``_bounded_writes``, ``_offline_locks``, ``_time_cols`` and the helpers used here)."""

    # -- as ASGI routes ---------------------------------------------------------------------------------------
    async def push(self, request: Request) -> Response:
        return await self._write(request, PUSH)

    async def write_to_online_store(self, request: Request) -> Response:
        return await self._write(request, ONLINE_WRITE)

    async def _write(self, request: Request, route: str) -> Response:
        t0 = time.perf_counter()
        if (denied := self._deny(request, route)) is not None:
            return denied
        try:
            raw = await read_body(request, self.opts.max_body_bytes, "SKEWLESS_FS_MAX_BODY_BYTES")
            req = self._parse_write(raw, route)
        except Exception as exc:
            return self._error(exc, route, t0)
        answer = await self._write_parsed(request.headers.get("authorization", ""), req, route, t0)
        return json_response_bytes(answer) if isinstance(answer, bytes) else answer

    # -- as direct routes (http_protocol) ---------------------------------------------------------------------
    def push_direct(self, headers: list, body: bytes, reply) -> None:
        self._write_direct(headers, body, reply, PUSH)

    def write_direct(self, headers: list, body: bytes, reply) -> None:
        self._write_direct(headers, body, reply, ONLINE_WRITE)

    def _write_direct(self, headers: list, body: bytes, reply, route: str) -> None:
        """What ``_write`` does, the body in hand; ``reply`` gets the answer once (bytes: 200 JSON)."""
        t0 = time.perf_counter()
        auth = _auth(headers)
        if self._bad_token(auth):
            return reply(self._unauthorized(route))
        try:
            req = self._parse_write(body, route)
        except Exception as exc:
            return reply(self._error(exc, route, t0))
        if not self.breaker.closed or not self._inline_push(req, alone=True):
            task = asyncio.ensure_future(self._write_parsed(auth, req, route, t0))
            task.add_done_callback(lambda t: t.cancelled() or reply(t.result()))  # _write_parsed answers errors
            return
        self._began()
        try:
            principal = self._principal(auth)
            results = self._push_inline(principal, req)
        except Exception as exc:
            self._ended()
            return reply(self._error(exc, route, t0))
        if results is None:  # the store did not answer in time on the loop: a push thread redoes it
            task = asyncio.ensure_future(self._on_thread(principal, req, route, t0))
            task.add_done_callback(lambda t: t.cancelled() or reply(t.result()))
            return
        self._ended()
        reply(self._written(req, results, route, t0))

    # -- the write --------------------------------------------------------------------------------------------
    def _parse_write(self, raw: bytes, route: str) -> feast_json.PushRequest:
        if route == PUSH:
            return feast_json.parse_push(raw, self.opts.max_push_rows)
        return feast_json.parse_online_write(raw, self.opts.max_push_rows)

    async def _write_parsed(self, auth: str, req: feast_json.PushRequest, route: str, t0: float) -> bytes | Response:
        """The answer to a parsed write (bytes: 200 JSON; else the error Response): admitted by the breaker when it
        goes online, written on the loop when it may (``_inline_push``), else on a push thread."""
        try:
            if req.to != "offline":
                await self._admit()
        except Exception as exc:
            return self._error(exc, route, t0)
        self._began()
        try:
            principal = self._principal(auth)
            results = self._push_inline(principal, req) if self._inline_push(req) else None
        except Exception as exc:
            self._ended()
            return self._error(exc, route, t0)
        if results is None:
            return await self._on_thread(principal, req, route, t0)
        self._ended()
        return self._written(req, results, route, t0)

    async def _on_thread(self, principal: str | None, req, route: str, t0: float) -> bytes | Response:
        """The write on a push thread; ``in_flight`` counts it already (``_began``) and is decremented here."""
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.push_pool, self._push_as, principal, req)
        except Exception as exc:
            return self._error(exc, route, t0)
        finally:
            self._ended()
        return self._written(req, results, route, t0)

    def _began(self) -> None:
        self.in_flight += 1
        self.metrics.pushes_in_flight.inc()

    def _ended(self) -> None:
        self.in_flight -= 1
        self.metrics.pushes_in_flight.dec()

    def _written(self, req: feast_json.PushRequest, results: list, route: str, t0: float) -> bytes:
        self.metrics.pushed_rows.labels(req.to).inc(sum(r.rows for r in results))
        self.metrics.observe(route, 200, time.perf_counter() - t0)
        return orjson.dumps({"to": req.to, "views": [{"view": r.view, "rows": r.rows, "version": r.version,
                                                      "already_pushed": r.already_ingested} for r in results]})

    def _inline_push(self, req: feast_json.PushRequest, alone: bool = False) -> bool:
        """Whether ``req`` is written on the event loop: a small online push, alone (no other push in flight, no
        read being answered), to a store whose calls can be bounded, in a repo without permissions (a governed
        push is audited: that write stays on a thread). A push thread costs two thread wake-ups per push (to the
        thread, back to the loop), each a scheduler wait on a busy host. Not while reads are served: the loop
        blocked in the push's round trip cut reads at 16 connections by ~45% with pushes at 100/s (load 7-8),
        where on a thread the push only shares the GIL. ``alone``: asked before ``in_flight`` counts ``req``."""
        return self._bounded_writes and req.to == "online" and self.in_flight == (0 if alone else 1) and \
            not self.reading and len(next(iter(req.columns.values()), ())) <= self.opts.inline_push_rows and \
            not self._governed()

    def _push_inline(self, principal: str | None, req: feast_json.PushRequest) -> list | None:
        """The push on the loop, its store calls bounded as an inline read's (one attempt, ``read_timeout``); None
        when the store did not answer in time: the caller redoes it on a push thread, with its retries (rows are
        newest-wins upserts: writing some of them twice changes nothing)."""
        try:
            with self._bound():
                return self._push_as(principal, req)
        except StoreUnavailable:
            return None

    def _push_as(self, principal: str | None, req: feast_json.PushRequest) -> list:
        """The push made as the token's principal: ``FeatureStore.push`` checks ``ingest`` on every view first."""
        with self.store.acting_as(principal):
            return self._push_now(req)

    def _push_now(self, req: feast_json.PushRequest) -> list:
        """The rows as a table (``feast_json.push_frame``; text timestamps parsed as ingest parses them), written.
        An online push skips hashing its rows: the answer carries no batch id."""
        df = feast_json.push_frame(req.columns, self._time_columns(req.source))
        if req.to == "online":
            return self.store.push(req.source, df, to="online", identify=False)
        lock = self._offline_locks.setdefault(req.source, threading.Lock())
        with lock:
            return self.store.push(req.source, df, to=req.to)

    def _time_columns(self, source: str) -> set[str]:
        """The columns ingest parses as timestamps for a push to ``source``'s views (its ``_to_arrow``'s), from the
        store's cached registry state, once per state: a hint for ``push_frame`` only (a column missing from it is
        parsed by ingest instead, a stale name merely tried by Arrow first), so it does not list the registry's
        folder again; the push reads the newest version itself."""
        state = self.store._registry_state()
        hit = self._time_cols.get(source)
        if hit is not None and hit[0] is state:
            return hit[1]
        names = {EVENT_TS, CREATED_TS}
        try:
            views = push_views(self.store, source, fresh=False)
        except NotFoundError:
            return names  # the push itself says so
        for v in views:
            if v.source is not None:
                names |= {v.source.timestamp_field, v.source.created_timestamp_column} - {None}
        self._time_cols[source] = (state, names)
        return names


def json_response_bytes(body: bytes) -> Response:
    """A 200 JSON answer already encoded (``json_response`` encodes a document)."""
    return Response(body, 200, media_type="application/json")


__all__ = ["ONLINE_WRITE", "PUSH", "PushRoutes", "json_response_bytes"]

"""The feature server's routes (Starlette), speaking ``feast serve``'s contract.

    POST /get-online-features     Feast's request and answer (``feast_json``)
    POST /push                    Feast's push: ``FeatureStore.push`` (ingest's validation and write path)
    POST /write-to-online-store   what Feast's ``remote`` online store sends when a Feast client writes online
                                  (both in ``push_route``)
    GET  /health                  200 while the online store answers, else 503 (no token: a load balancer's probe)
    GET  /metrics, /openapi.json, /docs (+ /docs/<Swagger UI file>, served from the package: no CDN)

Tokens: when configured, every route but ``/health`` needs ``Authorization: Bearer <token>`` (any of them: several
allow rotation, or a registered principal's token); without it the answer is 401 before the body is read, and
nothing is done. Permissions (``skewless.permissions``): once the registry declares any, the token names the
principal (by its hash) and a read needs ``read_online`` on each view it reads (or on the feature service it
names), a push or online write ``ingest`` on each view it writes: else 403 ``PermissionDenied``, audited, nothing
read or written. A registry without permissions is open, as before. Bodies are limited to
``max_body_bytes`` (413), a read to ``max_entities`` entities and a push to ``max_push_rows`` rows (422, saying so).

The online store sits behind the model server's circuit breaker (``serving.breaker``): once a read, a write or a
probe finds it down, reads and online pushes answer 503 at once, until a probe after ``store_check_seconds``
succeeds; so the server recovers without a restart. The reads of requests that reach the loop together are made as
one store read (``coalesce``); a lone read runs on the event loop when it cannot hang it (an embedded store, or one
whose reads are bounded: ``bounded_reads(read_timeout)``), others on a thread while the loop goes on. Pushes run
on their own threads (``push_threads``), but a small online push with no other push or read in flight is written on
the loop, its store calls bounded as a read's (``inline_push_rows``; a timeout redoes it on a thread). At shutdown
uvicorn stops accepting, the pushes in flight finish (their threads are waited for, ``shutdown_timeout``), and only
then does the process exit: every push answered 200 is written. Under ``skewless serve`` the reads and the writes
are direct routes of the HTTP protocol (``http_protocol``): answered without an ASGI request cycle. Errors are mapped to statuses in one place (``serving.errors``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from skewless import permissions as perms
from skewless.errors import (DefinitionError, NotFoundError, PermissionDenied, SkewlessError, StoreUnavailable,
                             ValidationError)
from skewless.registry.store import LocalRegistryStore

from .. import openapi as model_openapi
from ..app import http_error
from ..breaker import StoreBreaker
from ..eas_auth import token_ok
from ..errors import PayloadTooLarge, Unauthorized, error_body, http_status
from ..invocations import json_response, read_body
from . import feast_json, openapi
from .coalesce import ReadCoalescer
from .metrics import FeatureServerMetrics
from .push_route import PushRoutes

log = logging.getLogger("skewless.serving")
ONLINE = "get-online-features"  # the route's metrics label


async def _given(body: bytes) -> bytes:  # a body already read, as ``_online`` awaits it
    return body


@dataclass
class FeatureServerOptions:
    tokens: tuple[str, ...] = ()  # none: no auth (a warning is logged at startup)
    max_body_bytes: int = 16 * 1024 * 1024
    max_entities: int = 1000  # per online read
    max_push_rows: int = 100_000  # per push
    store_check_seconds: float = 1.0  # the breaker's cooldown, and how old /health's last probe may be
    store_check_timeout: float = 1.5  # a probe's bound
    read_timeout: float = 1.0  # a read on the event loop (bounded stores) waits at most this, then 503
    push_threads: int = 4
    inline_push_rows: int = 1000  # an online push of at most this many rows, alone, is written on the loop (0: never)
    shutdown_timeout: float = 30.0


class FeatureServer(PushRoutes):
    def __init__(self, store, opts: FeatureServerOptions):
        self.store, self.opts = store, opts
        self.metrics = m = FeatureServerMetrics()
        self.health_pool = ThreadPoolExecutor(1, thread_name_prefix="skewless-fs-health")
        self.push_pool = ThreadPoolExecutor(opts.push_threads, thread_name_prefix="skewless-fs-push")
        self.read_pool = ThreadPoolExecutor(4, thread_name_prefix="skewless-fs-read")
        self.breaker = StoreBreaker(self._probe, self.health_pool, cooldown=opts.store_check_seconds,
                                    probe_timeout=opts.store_check_timeout, on_probe=m.store_probes.inc,
                                    on_failure=m.store_errors.inc)
        online = store.online
        self._inline = online.embedded or getattr(online, "can_bound_reads", False)
        self._bound = (lambda: online.bounded_reads(opts.read_timeout)) if not online.embedded and self._inline \
            else nullcontext
        # A push reads the registry's newest version (push.views_for): on the loop only from local files, never an
        # object store's listing (unbounded by the online store's deadline).
        self._bounded_writes = not online.embedded and self._inline and opts.inline_push_rows > 0 and \
            isinstance(getattr(store.registry, "store", None), LocalRegistryStore)
        # Concurrent requests' reads coalesced, one store read per loop step (``coalesce``): a lone one on the loop
        # when the read is bounded, else on the read threads.
        # A crowd's small batch is read on the loop unless a push is in flight (on a push thread): the loop holding
        # the GIL through each read's round trip held that push (reads under pushes, bench --mixed).
        self.reads = ReadCoalescer(self._read, self.read_pool, inline=self._inline, crowded=lambda: self.in_flight > 0)
        self._offline_locks: dict[str, threading.Lock] = {}  # one history append per push source at a time
        self._time_cols: dict[str, tuple[object, set[str]]] = {}  # per push source: (registry state, names)
        self.in_flight = 0  # pushes
        self.reading = 0  # online reads being answered

    # -- lifecycle --------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app):
        if not self.opts.tokens and not self._governed():
            log.warning("feature server without tokens: every route is open (set SKEWLESS_FS_TOKENS or "
                        "SKEWLESS_FS_TOKEN_FILE)")
        self.breaker.probe()
        try:
            yield
        finally:
            # uvicorn has stopped accepting and waited for open requests; a push whose request was cancelled
            # (shutdown timeout) still finishes its write here before the process exits.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.push_pool.shutdown, True)
            self.read_pool.shutdown(wait=False)
            self.health_pool.shutdown(wait=False)
            log.info("feature server stopped", extra={"pushes_in_flight": self.in_flight})

    def _probe(self) -> None:
        self.store.online.get_meta("serving/ping")

    # -- helpers ----------------------------------------------------------------------------------------------
    def _deny(self, request: Request, route: str) -> Response | None:
        tokens = self.opts.tokens
        auth = request.headers.get("authorization", "")
        if not tokens or token_ok(auth, tokens) or self._principal(auth) is not None:
            return None
        return self._unauthorized(route)

    def _governed(self) -> bool:
        """Whether the registry declares permissions now (False when it cannot be read: start-up must not need it)."""
        try:
            return perms.governed(self.store._registry_state())
        except SkewlessError:
            return False

    def _principal(self, auth: str, state=None) -> str | None:
        """The registered principal whose token this header holds (None: none; the registry state is cached)."""
        token = auth[7:] if auth[:7].lower() == "bearer " else auth
        if not token:
            return None
        return perms.principal_for_token(state if state is not None else self.store._registry_state(), token)

    def _check_read(self, auth: str, features) -> None:
        """``read_online`` on the service a read names, or on every view of its references; PermissionDenied
        (audited) else. Nothing to do for a registry without permissions (the common case: one dict lookup)."""
        state = self.store._registry_state()
        if not perms.governed(state):
            return
        who = self._principal(auth, state)
        for resource in perms.needed_for_read(state, who, "read_online", features):
            try:
                perms.check(state, who, "read_online", resource)
            except PermissionDenied as exc:
                self.store.audit_log.append(who, "read_online", exc.resource, "denied", str(exc))
                raise

    def _unauthorized(self, route: str) -> Response:
        self.metrics.observe(route, 401, 0.0)
        return json_response(error_body(Unauthorized("missing or wrong Authorization token (Bearer <token>)")),
                             401, {"WWW-Authenticate": "Bearer", "Connection": "close"})

    def _error(self, exc: BaseException, route: str, t0: float) -> Response:
        status = http_status(exc)
        if isinstance(exc, StoreUnavailable) and not getattr(exc, "from_breaker", False):
            self.breaker.failed(str(exc).splitlines()[0])
        if status >= 500 and not isinstance(exc, StoreUnavailable):
            log.error("request failed", exc_info=exc, extra={"route": route})
        self.metrics.observe(route, status, time.perf_counter() - t0)
        headers = {"Connection": "close"} if status == 413 else None
        return json_response(error_body(exc), status, headers)

    async def _admit(self) -> None:
        if not self.breaker.closed:
            await self.breaker.admit()

    # -- routes -----------------------------------------------------------------------------------------------
    async def get_online_features(self, request: Request) -> Response:
        """The route's Starlette form (the ASGI fast path below answers POSTs before the router)."""
        return await self._online(request.headers.get("authorization", ""), read_body(
            request, self.opts.max_body_bytes, "SKEWLESS_FS_MAX_BODY_BYTES"))

    async def online_asgi(self, scope, receive, send) -> None:
        """``POST /get-online-features`` as bare ASGI: no Request or Response object on the hot path (they cost
        about as much as the read itself at one entity: bench/feature_server_bench.py)."""
        auth = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
                break
        answer = await self._online(auth, self._receive_body(scope, receive))
        if isinstance(answer, bytes):
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})
        else:
            await answer(scope, receive, send)

    async def _receive_body(self, scope, receive) -> bytes:
        limit = self.opts.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise PayloadTooLarge(f"the request body has {int(value):,} bytes; at most {limit:,} "
                                      f"(SKEWLESS_FS_MAX_BODY_BYTES)")
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away: nothing to answer
                raise ValidationError("the client disconnected before sending the whole body")
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the request body passed {limit:,} bytes (SKEWLESS_FS_MAX_BODY_BYTES)")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _online(self, auth: str, body) -> bytes | Response:
        """The answer's JSON (200), or an error Response. ``body``: the awaitable reading the body (not awaited
        when the token is wrong: the body is never read)."""
        t0 = time.perf_counter()
        if self._bad_token(auth):
            body.close()
            return self._unauthorized(ONLINE)
        self.reading += 1
        try:
            req = self._online_request(auth, await body)
            await self._admit()
            out = feast_json.render_online(req, await self.reads.read(req))
        except Exception as exc:
            return self._error(exc, ONLINE, t0)
        finally:
            self.reading -= 1
        return self._online_answered(req, out, t0)

    def online_direct(self, headers: list, body: bytes, reply) -> None:
        """``POST /get-online-features`` answered by the HTTP protocol itself (``http_protocol``, direct routes):
        what ``_online`` does, without an ASGI request cycle or a task; ``reply`` gets the answer once. A request
        while the breaker is not closed (its admission waits) goes through ``_online`` on a task."""
        t0 = time.perf_counter()
        auth = ""
        for name, value in headers:
            if name == b"authorization":
                auth = value.decode("latin-1")
                break
        if self._bad_token(auth):
            return reply(self._unauthorized(ONLINE))
        if not self.breaker.closed:
            task = asyncio.ensure_future(self._online(auth, _given(body)))
            task.add_done_callback(lambda t: t.cancelled() or reply(t.result()))  # _online answers its errors
            return
        self.reading += 1
        try:
            req = self._online_request(auth, body)
            pending = self.reads.read(req)
        except Exception as exc:
            self.reading -= 1
            return reply(self._error(exc, ONLINE, t0))
        pending.add_done_callback(lambda done: reply(self._online_read(req, done, t0)))

    def _online_read(self, req, done: asyncio.Future, t0: float) -> bytes | Response:
        self.reading -= 1
        try:
            out = feast_json.render_online(req, done.result())
        except Exception as exc:
            return self._error(exc, ONLINE, t0)
        return self._online_answered(req, out, t0)

    def _bad_token(self, auth: str) -> bool:
        tokens = self.opts.tokens
        return bool(tokens) and not token_ok(auth, tokens) and self._principal(auth) is None

    def _online_request(self, auth: str, raw: bytes) -> feast_json.OnlineRequest:
        req = feast_json.parse_online(raw, self.opts.max_entities)
        self._check_read(auth, req.features)
        return req

    def _online_answered(self, req, out: bytes, t0: float) -> bytes:
        self.metrics.entities.observe(len(req.rows))
        self.metrics.observe(ONLINE, 200, time.perf_counter() - t0)
        return out

    def _read(self, features, rows: list[dict], full_feature_names: bool):
        try:
            with self._bound():
                return self.store.get_online_features(features, rows, full_feature_names=full_feature_names)
        except DefinitionError as exc:  # the references are well formed (parse_online): a name the repo lacks
            raise NotFoundError(str(exc)) from None

    async def health(self, request: Request) -> Response:
        if await self.breaker.check(self.opts.store_check_seconds):
            self.metrics.breaker_open.set(0)
            return json_response({"status": "ok"})
        self.metrics.breaker_open.set(1)
        return json_response({"status": "unavailable", "reason": f"online store unavailable ({self.breaker.reason})"},
                             503)

    async def metrics_route(self, request: Request) -> Response:
        if (denied := self._deny(request, "metrics")) is not None:
            return denied
        self.metrics.breaker_open.set(0 if self.breaker.closed else 1)
        return Response(generate_latest(self.metrics.prometheus_registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_doc(self, request: Request) -> Response:
        if (denied := self._deny(request, "docs")) is not None:
            return denied
        return json_response(openapi.document(self.opts, self.store))

    async def docs(self, request: Request) -> Response:
        if (denied := self._deny(request, "docs")) is not None:
            return denied
        return HTMLResponse(model_openapi.swagger_html("skewless feature server"))

    async def docs_asset(self, request: Request) -> Response:
        if (denied := self._deny(request, "docs")) is not None:
            return denied
        body, media_type = model_openapi.swagger_asset(request.path_params["name"])
        return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


class _App(Starlette):
    """Starlette, with ``POST /get-online-features`` (the hot path) answered before its router."""

    hot = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/get-online-features" and scope["method"] == "POST":
            await self.hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(store, options: FeatureServerOptions | None = None) -> Starlette:
    """The feature server's ASGI app over ``store`` (a ``FeatureStore``); nothing is listening yet."""
    opts = options or FeatureServerOptions()
    for name in ("max_body_bytes", "max_entities", "max_push_rows", "push_threads"):
        if getattr(opts, name) < 1:
            raise ValidationError(f"feature server option {name} must be >= 1, not {getattr(opts, name)}")
    if opts.inline_push_rows < 0:
        raise ValidationError(f"feature server option inline_push_rows must be >= 0, not {opts.inline_push_rows}")
    if any(not isinstance(t, str) or not t or t != t.strip() for t in opts.tokens):
        raise ValidationError("feature server tokens must be non-empty strings without surrounding spaces")
    srv = FeatureServer(store, opts)
    routes = [Route("/get-online-features", srv.get_online_features, methods=["POST"]),
              Route("/push", srv.push, methods=["POST"]),
              Route("/write-to-online-store", srv.write_to_online_store, methods=["POST"]),
              Route("/health", srv.health), Route("/metrics", srv.metrics_route),
              Route("/openapi.json", srv.openapi_doc), Route("/docs", srv.docs),
              Route("/docs/{name}", srv.docs_asset)]
    app = _App(routes=routes, lifespan=srv.lifespan, exception_handlers={HTTPException: http_error})
    app.hot = srv.online_asgi
    # Answered by the HTTP protocol itself under ``skewless serve`` (http_protocol's direct routes); the ASGI
    # paths above serve any other server, and the requests the protocol leaves to the app.
    app.direct_post = {b"/get-online-features": srv.online_direct, b"/push": srv.push_direct,
                       b"/write-to-online-store": srv.write_direct}
    app.direct_max_body = opts.max_body_bytes
    app.state.server = srv
    return app


__all__ = ["FeatureServer", "FeatureServerOptions", "create_app"]

"""The HTTP server: one Starlette app that speaks the managed platforms' contracts and the v2 inference protocol.

    SageMaker  GET /ping, POST /invocations
    PAI-EAS    POST /api/predict/<service>, GET same for health
    v2         GET /v2/health/live|ready, /v2, /v2/models/<name>[/versions/<v>][/ready], POST .../infer (``v2``)
    all        GET /live, /ready, /metrics (Prometheus), /openapi.json, /docs (+ /docs/<Swagger UI file>: no CDN)

Tracing (``tracing``, off unless the ``OTEL_*`` variables turn it on): a prediction request's span continues the
caller's ``traceparent`` and is named in the answer's; its micro-batch's spans descend from it or link to it.

The prediction routes (``/invocations``, ``/api/predict/<service>``, v2's ``infer``): access tokens, the body
limit, content types, and ``POST /invocations`` dispatched before the router: ``invocations``.

Readiness (``/ping``, ``/ready``) is true only once the model is loaded and the online store answers a round
trip and holds rows of at least one of the model's views (an empty store after a restart is not ready: it would
only give default predictions); it is re-checked (at most every ``store_check_seconds``), so the server recovers
without a restart when the store comes back. The online store sits behind a circuit breaker (``breaker``): once it
is known down (a prediction's StoreUnavailable, a probe that failed or stayed silent for ``store_check_timeout``),
queued and running predictions are answered 503 at once and new ones fail fast, until one probe after
``store_check_seconds`` succeeds. A store that answers but is empty does not open the breaker: predictions go on
under the model's missing-features policy, each answer saying what was missing. A batch still predicting after
``slow_batch_seconds`` probes the store, so a hung store is found within about that plus ``store_check_timeout``. A
prediction past ``predict_timeout`` is answered 504 and the server goes on serving (see ``batcher``); readiness is
false only while ``max_overrunning`` such predictions are still running. Every error is one ``SkewlessError`` mapped
to one status (``errors.http_status``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from skewless.errors import StoreUnavailable, ValidationError

from . import openapi, v2
from .batcher import MicroBatcher
from .breaker import StoreBreaker
from .codecs import Codecs
from .invocations import PredictionRoutes
from .invocations import json_response as _json
from .metrics import Metrics
from .model import ServedModel
from .monitor import Refresher

log = logging.getLogger("skewless.serving")
CONTRACTS = ("sagemaker", "eas", "v2")
# A lone small prediction run on the event loop gives its online read this long before handing the request to the
# predict thread: a store that hangs right then stalls the loop for this bound, not for the store's own timeouts.
INLINE_READ_SECONDS = 0.1


@dataclass
class AppOptions:
    contracts: tuple[str, ...] = ("sagemaker", "eas")
    token: str | None = None  # required by every route but /ping, /ready, /live when set (the EAS contract needs one)
    service: str | None = None  # the EAS service name in the path (default: the model's name)
    max_batch_rows: int = 256
    max_queue: int = 1024
    store_check_seconds: float = 1.0
    store_check_timeout: float = 1.5  # SageMaker wants /ping answered within 2 s; also the breaker's probe bound
    slow_batch_seconds: float = 0.5  # a batch still predicting after this probes the store (a hung store?)
    max_body_bytes: int = 6 * 1024 * 1024  # SageMaker's own limit for an invocation's payload
    shutdown_timeout: float = 30.0
    # Per request, queueing included; SageMaker's own limit for an invocation is 60 s. None: no timeout.
    predict_timeout: float | None = 60.0
    max_overrunning: int = 4  # timed-out predictions still running (threads cannot be killed) before not ready
    tracing: Any = None  # tracing.Tracing (tracing.from_env: the OTEL_* variables), None: off
    # Skew gauges (monitor.Refresher): recomputed every monitor_seconds (0: off) over the last monitor_lookback
    # seconds of the prediction log, in a background thread.
    monitor_seconds: float = 60.0
    monitor_lookback: float = 3600.0
    # Skew audit gauges (skew_audit.Refresher): a sample of audit_sample rows of the last audit_lookback seconds
    # replayed through the training path every audit_seconds (0: off, the default: two retrievals per run).
    audit_seconds: float = 0.0
    audit_lookback: float = 3600.0
    audit_sample: int = 10_000


class _Server(PredictionRoutes):
    def __init__(self, model: ServedModel, opts: AppOptions):
        self.model, self.opts = model, opts
        self.metrics = Metrics(model.name, model.version, [[v.name for v, _ in st] for st in model.stages])
        model.log._on_event = self.metrics.log_event
        model.on_statuses = self.metrics.statuses
        model.on_read = self.metrics.online_read
        # Tracing off: the model's own predict_batch, untouched; on: wrapped in the batch's span (see tracing).
        self.tracing = model.tracing = opts.tracing
        self._predict_fn = model.predict_batch if opts.tracing is None else opts.tracing.batch(model.predict_batch)
        # Why a store that answers cannot serve this model (it holds none of its views), from the last probe.
        self.empty_reason: str | None = None
        self.health_pool = ThreadPoolExecutor(1, thread_name_prefix="skewless-health")
        self.breaker = StoreBreaker(self._probe_store, self.health_pool, cooldown=opts.store_check_seconds,
                                    probe_timeout=opts.store_check_timeout, on_open=self._store_down,
                                    on_probe=self.metrics.store_probes.inc, on_failure=self.metrics.store_errors.inc)
        # Lone small batches run on the event loop (see batcher) only where a hung store cannot stall it for long:
        # an embedded store, or one whose reads can be bounded (can_bound_reads, bounded_reads); never any other.
        online = model.store.online
        self._bounded_reads = online.bounded_reads if getattr(online, "can_bound_reads", False) else None
        if online.embedded:
            inline: dict = {}
        elif self._bounded_reads is not None:
            inline = {"inline_fn": self._predict_inline}
        else:
            inline = {"inline_seconds": 0.0}
        self.batcher = MicroBatcher(self._predict_fn, max_batch_rows=opts.max_batch_rows,
                                    max_queue=opts.max_queue, on_batch=self.metrics.batch,
                                    timeout=opts.predict_timeout, max_overrunning=opts.max_overrunning,
                                    slow_after=opts.slow_batch_seconds, on_slow=self.breaker.probe, **inline)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.service = opts.service or model.name
        self.codecs = Codecs(model.manifest, model.version)
        self._children: dict = {}
        self.refresher = Refresher(model.store, model.manifest, model.version, self.metrics.skew,
                                   interval=opts.monitor_seconds, lookback=opts.monitor_lookback) \
            if opts.monitor_seconds else None
        self.auditor = None
        if opts.audit_seconds:
            from .skew_audit import AuditGauges, Refresher as AuditRefresher

            gauges = AuditGauges(self.metrics.prometheus_registry)
            self.auditor = AuditRefresher(model.store, model.name, model.version, gauges.publish,
                                          interval=opts.audit_seconds, lookback=opts.audit_lookback,
                                          sample=opts.audit_sample)

    # -- lifecycle --------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app):
        self.batcher.start()
        if self.refresher is not None:
            self.refresher.start()
        if self.auditor is not None:
            self.auditor.start()
        loop = self._loop = asyncio.get_running_loop()
        # Loaded in the background: the port answers (/live, /ping = 503) while a large model loads.
        load = loop.run_in_executor(self.health_pool, self._load)
        try:
            yield
        finally:
            await self.batcher.drain(self.opts.shutdown_timeout)
            if self.refresher is not None:
                await loop.run_in_executor(None, self.refresher.stop)
            if self.auditor is not None:
                await loop.run_in_executor(None, self.auditor.stop)
            if not load.done():
                await load
            ok = await loop.run_in_executor(None, self.model.close, self.opts.shutdown_timeout)
            if self.tracing is not None:
                await loop.run_in_executor(None, self.tracing.shutdown)  # the spans still buffered are exported
            self.health_pool.shutdown(wait=False)
            gc.unfreeze()  # let the interpreter's exit collect it all (native bindings report frozen objects as leaks)
            log.info("server stopped", extra={"model": self.model.name, "prediction_log_complete": ok,
                                              "prediction_log_rows": self.model.log.written})

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            self.model.load()
        except Exception:
            log.exception("model failed to load", extra={"model": self.model.name})
            return
        # Everything loaded so far (libraries, the model) lives as long as the process: move it out of the
        # collector's reach. Otherwise every full collection walks every object of pandas, sklearn, pyarrow..., a
        # pause on the request path that was the p99 at one connection (bench/results/figures_in_code.md).
        gc.collect()
        gc.freeze()
        log.info("model loaded", extra={"model": self.model.name, "version": self.model.version,
                                        "seconds": round(time.perf_counter() - t0, 3)})
        self._loop.call_soon_threadsafe(self.breaker.probe)  # queued behind this load on the health thread

    def _predict_inline(self, requests: list) -> list | None:
        """A lone small batch on the event loop, its online read bounded; None (run it on the thread, and probe
        the store) when the store did not answer in time."""
        try:
            with self._bounded_reads(INLINE_READ_SECONDS):
                return self._predict_fn(requests)
        except StoreUnavailable:
            self.breaker.probe()
            return None

    def _store_down(self, exc: StoreUnavailable) -> None:
        """The breaker opened: answer what waits on the store now rather than after the store's own timeouts."""
        failed = self.batcher.fail_all(exc)
        if failed:
            log.warning("answered waiting predictions 503", extra={"requests": failed})

    def _probe_store(self) -> None:
        """The breaker's probe (on the health thread): a round trip, which raises when the store is down; then
        whether the store holds any of the model's views, which only readiness uses."""
        reason = self.model.check_store()
        if reason and reason != self.empty_reason:
            log.warning("online store holds no rows of the model's views", extra={"reason": reason})
        self.empty_reason = reason

    async def ready(self) -> bool:
        if not self.model.loaded or self.batcher.saturated:
            self.metrics.ready.set(0)
            return False
        # One probe at a time (shared with the breaker): pings arriving while the store hangs do not pile up.
        ok = await self.breaker.check(self.opts.store_check_seconds) and self.empty_reason is None
        self.metrics.ready.set(1 if ok else 0)
        return ok

    # -- routes -----------------------------------------------------------------------------------------------
    async def ping(self, request: Request) -> Response:
        if await self.ready():
            return _json({"status": "ready", "model": self.model.name, "version": self.model.version})
        return _json({"status": "not ready", "reason": self.not_ready_reason()}, 503)

    def not_ready_reason(self) -> str:
        """Why the last ``ready()`` was false, in one line."""
        if not self.model.loaded:
            return self.model.error or "model not loaded"
        if self.batcher.saturated:
            return f"{self.batcher.overrunning} predictions that timed out are still running"
        return self.empty_reason if self.breaker.closed and self.empty_reason else (
            f"online store unavailable ({self.breaker.reason})")

    async def live(self, request: Request) -> Response:
        return _json({"status": "alive"})

    async def metrics_route(self, request: Request) -> Response:
        if (denied := self._deny(request, "metrics")) is not None:
            return denied
        self.metrics.queue_depth.set(self.batcher.depth)
        self.metrics.overrunning.set(self.batcher.overrunning)
        self.metrics.log_pending.set(self.model.log.pending)
        self.metrics.breaker_open.set(0 if self.breaker.closed else 1)
        return Response(generate_latest(self.metrics.prometheus_registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_doc(self, request: Request) -> Response:
        if (denied := self._deny(request, "docs")) is not None:
            return denied
        return _json(openapi.document(self.model.manifest, self.model.version, self.opts.contracts, self.service,
                                      token=bool(self.opts.token)))

    async def docs(self, request: Request) -> Response:
        if (denied := self._deny(request, "docs")) is not None:
            return denied
        return HTMLResponse(openapi.SWAGGER_HTML)

    async def docs_asset(self, request: Request) -> Response:
        """Swagger UI's own files, from the installed package (no CDN: /docs works without internet)."""
        if (denied := self._deny(request, "docs")) is not None:
            return denied
        body, media_type = openapi.swagger_asset(request.path_params["name"])
        # Immutable for a given package version; the token check above still runs for every fetch.
        return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


class _App(Starlette):
    """Starlette, with ``POST /invocations`` (the hot path, when SageMaker's contract is served) answered before its
    router and middleware: see ``invocations``. Every other request, ``/invocations`` with another method included
    (405), goes through Starlette as before."""

    fast_invocations = None  # the server's invocations_asgi

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/invocations" and scope["method"] == "POST" \
                and self.fast_invocations is not None:
            scope["app"] = self
            await self.fast_invocations(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


_HTTP_ERRORS = {404: "NotFoundError", 405: "MethodNotAllowed"}


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own answers (no such route, wrong method) in the typed error body every other answer has."""
    body = {"error": _HTTP_ERRORS.get(exc.status_code, "HTTPError"),
            "message": f"{request.method} {request.url.path}: {exc.detail}"}
    return _json(body, exc.status_code, dict(exc.headers or {}))


def create_app(model: ServedModel, options: AppOptions | None = None) -> Starlette:
    opts = options or AppOptions()
    unknown = set(opts.contracts) - set(CONTRACTS)
    if unknown:
        raise ValidationError(f"unknown serving contracts {sorted(unknown)}; known: {', '.join(CONTRACTS)}")
    if "eas" in opts.contracts and not opts.token:
        from skewless.errors import ConfigError

        raise ConfigError("the PAI-EAS contract checks an Authorization token: set SKEWLESS_SERVING_TOKEN "
                          "(or --token)")
    if opts.max_body_bytes <= 0:
        from skewless.errors import ConfigError

        raise ConfigError(f"max_body_bytes must be a positive number of bytes, not {opts.max_body_bytes}")
    if opts.monitor_seconds < 0 or opts.monitor_lookback <= 0:
        from skewless.errors import ConfigError

        raise ConfigError(f"monitor_seconds must be >= 0 (0: off) and monitor_lookback > 0 seconds, not "
                          f"{opts.monitor_seconds} and {opts.monitor_lookback}")
    if opts.audit_seconds < 0 or opts.audit_lookback <= 0 or opts.audit_sample < 1:
        from skewless.errors import ConfigError

        raise ConfigError(f"audit_seconds must be >= 0 (0: off), audit_lookback > 0 seconds and audit_sample >= 1 "
                          f"row, not {opts.audit_seconds}, {opts.audit_lookback} and {opts.audit_sample}")
    if opts.predict_timeout is not None and opts.predict_timeout <= 0:
        from skewless.errors import ConfigError

        raise ConfigError(f"predict_timeout must be positive seconds (or None: no timeout), "
                          f"not {opts.predict_timeout}")
    srv = _Server(model, opts)
    routes = [Route("/live", srv.live), Route("/ready", srv.ping), Route("/metrics", srv.metrics_route),
              Route("/openapi.json", srv.openapi_doc), Route("/docs", srv.docs),
              Route("/docs/{name:str}", srv.docs_asset)]
    if "sagemaker" in opts.contracts:
        routes += [Route("/ping", srv.ping), Route("/invocations", srv.invocations, methods=["POST"])]
    if "eas" in opts.contracts:
        routes += [Route("/api/predict/{service}", srv.eas_predict, methods=["GET", "POST"])]
    if "v2" in opts.contracts:
        routes += v2.V2Routes(srv).routes()
    app = _App(routes=routes, lifespan=srv.lifespan, exception_handlers={HTTPException: http_error})
    if "sagemaker" in opts.contracts:
        app.fast_invocations = srv.invocations_asgi
    app.state.server = srv
    return app

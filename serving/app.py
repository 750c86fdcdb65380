"""The HTTP server: one Starlette app that speaks both managed contracts.

    SageMaker  GET /ping, POST /invocations                      (no token: SageMaker authenticates callers)
    PAI-EAS    POST /api/predict/<service>, GET same for health    (``Authorization: <token>`` checked, else 401)
    both       GET /live, /ready, /metrics (Prometheus), /openapi.json, /docs

Readiness (``/ping``, ``/ready``) is true only once the model is loaded and the online store answers a round
trip and holds rows of at least one of the model's views (an empty store after a restart is not ready); it is
re-checked (at most every ``store_check_seconds``), so the server recovers without a restart when
the store comes back. A prediction past ``predict_timeout`` is answered 504 and the server goes on serving (see
``batcher``); readiness is false only while ``max_overrunning`` such predictions are still running. Every error
is one ``SkewlessError`` mapped to one status (``errors.http_status``).
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from skewless.errors import SkewlessError, StoreUnavailable, ValidationError

from . import openapi
from .batcher import MicroBatcher
from .errors import NotReady, Unauthorized, error_body, http_status
from .metrics import Metrics
from .model import ServedModel

log = logging.getLogger("skewless.serving")
CONTRACTS = ("sagemaker", "eas")


@dataclass
class AppOptions:
    contracts: tuple[str, ...] = CONTRACTS
    token: str | None = None  # required by the EAS routes
    service: str | None = None  # the EAS service name in the path (default: the model's name)
    max_batch_rows: int = 256
    max_queue: int = 1024
    store_check_seconds: float = 1.0
    store_check_timeout: float = 1.5  # SageMaker wants /ping answered within 2 s
    shutdown_timeout: float = 30.0
    # Per request, queueing included; SageMaker's own limit for an invocation is 60 s. None: no timeout.
    predict_timeout: float | None = 60.0
    max_overrunning: int = 4  # timed-out predictions still running (threads cannot be killed) before not ready


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


class _Server:
    def __init__(self, model: ServedModel, opts: AppOptions):
        self.model, self.opts = model, opts
        self.metrics = Metrics(model.name, model.version, [v.name for st in model.stages for v, _ in st])
        model.log._on_event = self.metrics.log_event
        model.on_statuses = self.metrics.statuses
        self.batcher = MicroBatcher(model.predict_batch, max_batch_rows=opts.max_batch_rows,
                                    max_queue=opts.max_queue, on_batch=self.metrics.batch,
                                    timeout=opts.predict_timeout, max_overrunning=opts.max_overrunning)
        self.health_pool = ThreadPoolExecutor(1, thread_name_prefix="skewless-health")
        self.store_ok = False
        self.store_reason = "online store unavailable"  # why store_ok is False
        self.store_checked = 0.0
        self._check: asyncio.Future | None = None
        self.service = opts.service or model.name
        self._children: dict = {}

    # -- lifecycle --------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app):
        self.batcher.start()
        loop = asyncio.get_running_loop()
        # Loaded in the background: the port answers (/live, /ping = 503) while a large model loads.
        load = loop.run_in_executor(self.health_pool, self._load)
        try:
            yield
        finally:
            await self.batcher.drain(self.opts.shutdown_timeout)
            if not load.done():
                await load
            ok = await loop.run_in_executor(None, self.model.close, self.opts.shutdown_timeout)
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
        # collector's reach. Otherwise every full collection walks ~160k objects (pandas, sklearn, pyarrow...), a
        # ~110 ms pause on the request path that showed as the p99 at one connection (55-80 ms against a 1 ms p50).
        gc.collect()
        gc.freeze()
        log.info("model loaded", extra={"model": self.model.name, "version": self.model.version,
                                        "seconds": round(time.perf_counter() - t0, 3)})
        self._check_store()

    def _check_store(self) -> bool:
        try:
            # An online store that answers but holds none of the model's views (emptied by a restart) would only
            # give default predictions: not ready either, with that reason.
            reason = self.model.check_store()
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            reason = "online store unavailable"
            if self.store_ok or not self.store_checked:
                log.warning("online store unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        else:
            if reason and (self.store_ok or not self.store_checked):
                log.warning("online store holds no rows of the model's views", extra={"reason": reason})
        ok = reason is None
        self.store_ok, self.store_reason, self.store_checked = ok, reason or "", time.monotonic()
        return ok

    async def ready(self) -> bool:
        if not self.model.loaded or self.batcher.saturated:
            self.metrics.ready.set(0)
            return False
        if not self.store_ok or time.monotonic() - self.store_checked > self.opts.store_check_seconds:
            # One check at a time: pings arriving while the store hangs wait on it instead of piling up.
            if self._check is None or self._check.done():
                self._check = asyncio.get_running_loop().run_in_executor(self.health_pool, self._check_store)
            try:
                await asyncio.wait_for(asyncio.shield(self._check), self.opts.store_check_timeout)
            except TimeoutError:
                self.store_ok, self.store_reason = False, "online store unavailable"
        self.metrics.ready.set(1 if self.store_ok else 0)
        return self.store_ok

    # -- routes -----------------------------------------------------------------------------------------------
    async def ping(self, request: Request) -> Response:
        if await self.ready():
            return _json({"status": "ready", "model": self.model.name, "version": self.model.version})
        if not self.model.loaded:
            reason = self.model.error or "model not loaded"
        elif self.batcher.saturated:
            reason = f"{self.batcher.overrunning} predictions that timed out are still running"
        else:
            reason = self.store_reason or "online store unavailable"
        return _json({"status": "not ready", "reason": reason}, 503)

    async def live(self, request: Request) -> Response:
        return _json({"status": "alive"})

    async def metrics_route(self, request: Request) -> Response:
        self.metrics.queue_depth.set(self.batcher.depth)
        self.metrics.overrunning.set(self.batcher.overrunning)
        self.metrics.log_pending.set(self.model.log.pending)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def invocations(self, request: Request) -> Response:
        return await self._predict(request, "sagemaker")

    async def eas_predict(self, request: Request) -> Response:
        if request.path_params["service"] != self.service:
            return _json({"error": "NotFoundError", "message": f"no service {request.path_params['service']!r} "
                          f"here (this is {self.service!r})"}, 404)
        try:
            self._authorize(request)
        except Unauthorized as exc:
            self.metrics.requests.labels("eas", "401").inc()
            return _json(error_body(exc), 401, {"WWW-Authenticate": "Bearer"})
        if request.method == "GET":
            return await self.ping(request)
        return await self._predict(request, "eas")

    def _authorize(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        if given.lower().startswith("bearer "):
            given = given[7:]
        if not given or not hmac.compare_digest(given.encode(), (self.opts.token or "").encode()):
            raise Unauthorized("missing or wrong Authorization token")

    async def _predict(self, request: Request, route: str) -> Response:
        t0 = time.perf_counter()
        rid = request.headers.get("x-request-id") or request.headers.get("x-amzn-requestid")
        headers = {}
        try:
            if not self.model.loaded:
                raise NotReady(f"model {self.model.name!r} is not loaded yet"
                               + (f" (load failed: {self.model.error})" if self.model.error else ""))
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise ValidationError(f"the request body is not valid JSON: {exc}") from None
            req = self.model.parse(body, rid)
            rid = req.request_id
            answer = await self.batcher.submit(req, len(req.rows))
            status, content = 200, answer
        except SkewlessError as exc:
            status, content = http_status(exc), error_body(exc)
            if isinstance(exc, StoreUnavailable):
                self.store_ok, self.store_reason = False, "online store unavailable"
                self.metrics.store_errors.inc()
            if status == 429:
                headers["Retry-After"] = "1"
            if status >= 500:
                log.warning("prediction failed", extra={"request_id": rid, "status": status, "error": content})
        except Exception as exc:  # a bug: answer 500 without internals, log everything
            log.exception("unexpected error", extra={"request_id": rid})
            status, content = 500, error_body(exc)
        if rid:
            headers["x-request-id"] = rid
        self._count(route, status).inc()
        self._latency(route).observe(time.perf_counter() - t0)
        return _json(content, status, headers)

    # Label children cached per server: prometheus-client's labels() takes a lock and builds a key on every call.
    def _count(self, route: str, status: int):
        child = self._children.get((route, status))
        if child is None:
            child = self._children[(route, status)] = self.metrics.requests.labels(route, str(status))
        return child

    def _latency(self, route: str):
        child = self._children.get(route)
        if child is None:
            child = self._children[route] = self.metrics.latency.labels(route)
        return child

    async def openapi_doc(self, request: Request) -> Response:
        return _json(openapi.document(self.model.manifest, self.model.version, self.opts.contracts, self.service))

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(openapi.SWAGGER_HTML)


_HTTP_ERRORS = {404: "NotFoundError", 405: "MethodNotAllowed"}


async def _http_error(request: Request, exc: HTTPException) -> Response:
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
    if opts.predict_timeout is not None and opts.predict_timeout <= 0:
        from skewless.errors import ConfigError

        raise ConfigError(f"predict_timeout must be positive seconds (or None: no timeout), "
                          f"not {opts.predict_timeout}")
    srv = _Server(model, opts)
    routes = [Route("/live", srv.live), Route("/ready", srv.ping), Route("/metrics", srv.metrics_route),
              Route("/openapi.json", srv.openapi_doc), Route("/docs", srv.docs)]
    if "sagemaker" in opts.contracts:
        routes += [Route("/ping", srv.ping), Route("/invocations", srv.invocations, methods=["POST"])]
    if "eas" in opts.contracts:
        routes += [Route("/api/predict/{service}", srv.eas_predict, methods=["GET", "POST"])]
    app = Starlette(routes=routes, lifespan=srv.lifespan, exception_handlers={HTTPException: _http_error})
    app.state.server = srv
    return app

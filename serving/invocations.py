"""The prediction routes of the server (``app``): SageMaker's ``POST /invocations``, PAI-EAS's
``/api/predict/<service>``, and the path every prediction takes (the v2 protocol's ``infer`` too: ``v2``), with the
token checks, the body limit, the codecs, tracing and the request metrics. A mixin of ``app._Server``, which holds
the model, the batcher, the breaker and the options these use.

``POST /invocations`` (the hot path) is dispatched before Starlette's router and middleware (``app._App``):
``invocations_asgi`` is the same handler and answer, minus the route matching and the exception middleware whose
work ``_predict`` already does (it answers every error itself). Profiled under load, routing and middleware were
5-15% of the server's Python time (bench/results/serving_i14_profile.md).

Access. With a token configured (``SKEWLESS_SERVING_TOKEN``; the EAS contract requires one), every route but the
health checks needs ``Authorization: <token>`` or ``Authorization: Bearer <token>``, else 401 (checked before the
body is read; nothing is predicted or logged): both prediction routes (``/invocations`` too: it shares the port),
``GET /api/predict/<service>``, ``/metrics`` (model names, traffic and error counts), ``/openapi.json`` and
``/docs`` with its files (the model's keys and features), and the v2 routes but ``/v2/health/*``. ``/ping``,
``/ready`` and ``/live`` (and ``/v2/health/live|ready``) stay open, as the platforms' health checks carry no
credentials, and say only ready or not, the model's name and version, and a one-line reason. The
EAS route (``/api/predict/<service>``) also takes ``Authorization: EAS <signature>``, what Alibaba's
``eas_prediction`` client sends by default (``eas_auth``); it signs the body's md5, so that form alone is checked
once the body is read (within ``max_body_bytes``), still before anything is predicted or logged. Without
a token nothing is checked: on SageMaker, IAM authenticates callers of InvokeEndpoint before they reach the
container (and InvokeEndpoint does not forward an Authorization header). ``skewless model serve`` listens on
127.0.0.1 unless told otherwise (``--host``/``SKEWLESS_HOST``); the image sets ``SKEWLESS_HOST=0.0.0.0``.

Request bodies are limited to ``max_body_bytes`` (``SKEWLESS_MAX_BODY_BYTES``, default 6 MB, SageMaker's own
invocation limit): a larger ``Content-Length`` is refused (413) before anything is read, and a body without one
(chunked) is counted while it arrives and refused the moment it passes the limit; such answers close the
connection, so the rest of the body is never read.

Bodies are JSON, CSV or JSON Lines by ``Content-Type`` and answers JSON, CSV or JSON Lines by ``Accept``
(``codecs``, the media types SageMaker documents for inference and batch transform): an unreadable Content-Type is
415 and an unanswerable Accept 406, both before anything is predicted; error answers are always JSON.
"""

from __future__ import annotations

import logging
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from skewless.errors import SkewlessError, StoreUnavailable

from . import eas_auth
from .codecs import request_headers
from .errors import NotReady, PayloadTooLarge, Unauthorized, error_body, http_status

log = logging.getLogger("skewless.serving")
# Each contract's prediction route (span names).
ROUTES = {"sagemaker": "/invocations", "eas": "/api/predict/{service}", "v2": "/v2/models/{name}/infer"}


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int, setting: str = "SKEWLESS_MAX_BODY_BYTES") -> bytes:
    """The body, refused (PayloadTooLarge, naming ``setting``) past ``limit`` bytes: by its Content-Length before
    reading, and counted while it streams (a chunked body has no length up front)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body has {int(declared):,} bytes; at most {limit:,} ({setting})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body passed {limit:,} bytes ({setting})")
        chunks.append(chunk)
    return b"".join(chunks)


class PredictionRoutes:
    """The prediction routes of ``app._Server`` (see the module docstring)."""

    async def invocations_asgi(self, scope, receive, send) -> None:
        """``POST /invocations`` as a bare ASGI app (``app._App`` routes it here before Starlette's router)."""
        response = await self.invocations(Request(scope, receive))
        await response(scope, receive, send)

    async def invocations(self, request: Request) -> Response:
        if (denied := self._deny(request, "sagemaker")) is not None:
            return denied
        return await self._predict(request, "sagemaker")

    async def eas_predict(self, request: Request) -> Response:
        # The token first: a caller without it learns nothing, not even the service's name. The signed form (the
        # official client's default) covers the body's md5, so that one check reads the (bounded) body first.
        raw = None
        if self.opts.token and eas_auth.is_signed(auth := request.headers.get("authorization", "")):
            try:
                raw = await self._body(request)
            except PayloadTooLarge as exc:
                self._count("eas", 413).inc()
                return json_response(error_body(exc), 413, {"Connection": "close"})
            if not eas_auth.signature_ok(auth, (self.opts.token,), method=request.method, headers=request.headers,
                                         resource=f"/api/predict/{request.path_params['service']}", body=raw):
                return self._unauthorized("eas")
        elif (denied := self._deny(request, "eas")) is not None:
            return denied
        if request.path_params["service"] != self.service:
            return json_response({"error": "NotFoundError", "message": f"no service {request.path_params['service']!r} "
                          f"here (this is {self.service!r})"}, 404)
        if request.method == "GET":
            return await self.ping(request)
        return await self._predict(request, "eas", raw)

    def _deny(self, request: Request, route: str) -> Response | None:
        """None when the request may go on (no token configured, or the right one given, raw or ``Bearer``); else
        the 401 answer, sent before the body is read (and closing the connection, so an unread body is not read
        either)."""
        token = self.opts.token
        if not token or eas_auth.token_ok(request.headers.get("authorization", ""), (token,)):
            return None
        return self._unauthorized(route)

    def _unauthorized(self, route: str) -> Response:
        self._count(route, 401).inc()
        return json_response(error_body(Unauthorized("missing or wrong Authorization token")), 401,
                     {"WWW-Authenticate": "Bearer", "Connection": "close"})

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self.opts.max_body_bytes)

    async def _predict(self, request: Request, route: str, raw: bytes | None = None, codec=None) -> Response:
        """One prediction request, any contract. ``codec`` (e.g. ``v2.InferCodec``): a protocol whose body is not
        the JSON rows, turned into the same ``Request`` (``decode``) and its answer back (``respond``)."""
        t0 = time.perf_counter()
        rid, ctype, accept = request_headers(request.scope)
        headers = {}
        tracing = self.tracing
        span = None if tracing is None else tracing.request_span(
            request.headers, request.method, ROUTES.get(route, request.url.path), request.url.path)
        encode = None  # JSON: the answer as it is (codecs: CSV, JSON Lines)
        try:
            # The (bounded) body first: an answer sent with the body unread would leave the connection to read and
            # discard the rest of it, however large.
            if raw is None:
                raw = await self._body(request)
            if not self.model.loaded:
                raise NotReady(f"model {self.model.name!r} is not loaded yet"
                               + (f" (load failed: {self.model.error})" if self.model.error else ""))
            if codec is None:
                # By Content-Type and Accept (a dict lookup each for JSON); 415/406 before anything is predicted.
                decode = self.codecs.decoder(ctype)
                encode = self.codecs.encoder(accept)
                req = self.model.parse(decode(raw), rid)
            else:  # a protocol of its own (v2 tensors): its body and answer, the same Request
                req = codec.decode(raw, rid)
            rid = req.request_id
            if span is not None:
                req.span = span
            if not self.breaker.closed:
                await self.breaker.admit()
            answer = await self.batcher.submit(req, len(req.rows))
            status, content = 200, answer
        except SkewlessError as exc:
            status, content = http_status(exc), error_body(exc)
            if isinstance(exc, StoreUnavailable):
                if not getattr(exc, "from_breaker", False):  # the store itself failed, not the open breaker
                    self.breaker.failed(content["message"])
                headers["Retry-After"] = str(max(1, round(self.opts.store_check_seconds)))
            elif isinstance(exc, PayloadTooLarge):
                headers["Connection"] = "close"  # the rest of the body is not read
            if status == 429:
                headers["Retry-After"] = "1"
            if status >= 500:
                log.warning("prediction failed", extra={"request_id": rid, "status": status, "error": content})
        except Exception as exc:  # a bug: answer 500 without internals, log everything
            log.exception("unexpected error", extra={"request_id": rid})
            status, content = 500, error_body(exc)
        if rid:
            headers["x-request-id"] = rid
        if span is not None:
            headers.update(tracing.end_request(span, status, rid))
        self._count(route, status).inc()
        self._latency(route).observe(time.perf_counter() - t0)
        if codec is not None:
            return codec.respond(content, status, headers)
        if encode is None or status != 200:  # errors answer JSON whatever the Accept
            return json_response(content, status, headers)
        data, media, extra = encode(content)
        return Response(data, status, headers={**headers, **extra}, media_type=media)

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


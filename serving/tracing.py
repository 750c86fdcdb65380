"""OpenTelemetry tracing of the model server: off by default, turned on and configured by the standard ``OTEL_*``
environment variables, with the official SDK (the ``tracing`` extra: ``pip install 'skewless[tracing]'``).

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``, or both, comma-separated), or, that
variable unset, when an OTLP endpoint is given (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); off when none of these is set, when the exporter is ``none``, or with
``OTEL_SDK_DISABLED=true``. Off, nothing of OpenTelemetry is imported and the request path pays one ``is None``
check per hook. Everything else is the SDK's own reading of the standard variables: ``OTEL_SERVICE_NAME`` (default
here ``skewless-<model>``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER[_ARG]`` (default: parent-based,
always on), ``OTEL_BSP_*`` (the batch span processor), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT|HEADERS|TIMEOUT|
COMPRESSION``. The OTLP exporter is OTLP/HTTP with protobuf (``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``, the
default); another protocol is refused at startup rather than silently sent elsewhere.

Spans. A prediction request (``POST /invocations``, ``POST /api/predict/{service}``) gets a SERVER span, the child
of the caller's W3C ``traceparent`` (and ``tracestate``) when sent; the answer carries ``traceparent`` naming that
span, so a caller without tracing of its own can still find the trace. The work runs in micro-batches, one batch
serving many requests (``batcher``), so it is traced as one ``skewless.predict_batch`` span per batch, whose
children are ``skewless.feature_lookup`` (one per stage of online reads), ``skewless.transform`` (features and
request fields into the model's input frame), ``skewless.predict`` (the model call) and ``skewless.prediction_log``
(the rows handed to the log writer). The batch span is the child of its first request's span and links to every
request's span. Why not one set of spans per request: the online read, the model call and the log hand-off happen
once for the whole batch, so per-request copies would each claim the batch's full duration (a trace would show N
overlapping reads that never happened) and multiply span volume by the batch size exactly when the server is
busiest. This is what OpenTelemetry's messaging conventions do for batch processing: one span, linked to each
message's context. A lone request (an idle server, or any batch of one) is a plain parent/child tree.

The context crosses the batcher's hand-off (the event loop to the predict thread, or the inline run) on the request
object itself (``model.Request.span``), not through context variables, which do not follow a request into a
batch it shares with others; in the batch, the batch span is made current in that thread so the stage spans nest
under it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from skewless.errors import ConfigError

EXPORTERS = ("otlp", "console")
_TRUE = ("true", "1", "yes", "on")


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment turns tracing on (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    names = env.get("OTEL_TRACES_EXPORTER")
    if names is not None and names.strip():
        return names.strip().lower() != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def from_env(model: str, version: int = 0, env: Mapping[str, str] | None = None) -> "Tracing | None":
    """The server's tracing as the environment configures it; None when off. ConfigError (at startup) for a value
    this server cannot honour, naming the variable. ``env``: the variables this function reads (default
    ``os.environ``); the SDK and its exporter read theirs (endpoint, sampler, resource...) from ``os.environ``."""
    env = os.environ if env is None else env
    if not wanted(env):
        return None
    names = [n.strip().lower() for n in (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",") if n.strip()]
    bad = [n for n in names if n not in EXPORTERS]
    if bad:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')!r}: expected a comma-separated "
                          f"list of {', '.join(EXPORTERS)}, or none (unknown: {', '.join(bad)})")
    protocol_var = next((v for v in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
                         if env.get(v)), None)
    if "otlp" in names and protocol_var and env[protocol_var].strip() != "http/protobuf":
        raise ConfigError(f"{protocol_var}={env[protocol_var]!r}: expected http/protobuf (the OTLP exporter "
                          "installed with skewless[tracing] is OTLP/HTTP; point it at the collector's HTTP port, "
                          "usually 4318)")
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise ConfigError("tracing is turned on by the OTEL_* environment variables but OpenTelemetry is not "
                          "installed: pip install 'skewless[tracing]' (or unset OTEL_TRACES_EXPORTER / "
                          "OTEL_EXPORTER_OTLP_ENDPOINT)") from None
    resource = Resource.create({"service.version": str(version), "skewless.model": model})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"skewless-{model}"}))
    # A provider of the server's own, not the global one: like its Prometheus registry, several apps in one process
    # (tests) never share or replace each other's.
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()  # endpoint, headers, timeout, compression: the OTEL_EXPORTER_OTLP_* variables
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


class Tracing:
    """The server's tracer and the few operations the request path needs (each used behind an ``is None`` check)."""

    def __init__(self, provider):
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("skewless.serving")
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()

    # -- the request's span, on the event loop ---------------------------------------------------------------------
    def request_span(self, headers: Mapping[str, str], method: str, route: str, path: str):
        """A SERVER span for one prediction request, the child of its ``traceparent`` if any (``headers``: the
        request's, looked up case-insensitively)."""
        parent = self._propagator.extract(headers)
        return self.tracer.start_span(f"{method} {route}", context=parent, kind=self._trace.SpanKind.SERVER,
                                      attributes={"http.request.method": method, "http.route": route,
                                                  "url.path": path})

    def end_request(self, span, status: int, request_id: str | None) -> dict[str, str]:
        """End the request's span; the answer's ``traceparent`` (and ``tracestate``) header naming it."""
        span.set_attribute("http.response.status_code", status)
        if request_id:
            span.set_attribute("skewless.request_id", request_id)
        if status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()
        out: dict[str, str] = {}
        self._propagator.inject(out, context=self._trace.set_span_in_context(span))
        return out

    # -- the batch's spans, in the predict thread (or the inline run) ----------------------------------------------
    def batch(self, fn: Callable[[list], list]) -> Callable[[list], list]:
        """``fn`` (``ServedModel.predict_batch``) run in a ``skewless.predict_batch`` span: the child of the first
        request's span, linked to every request's span, current while ``fn`` runs so the stage spans nest in it."""
        from opentelemetry.trace import Link

        tracer, set_span = self.tracer, self._trace.set_span_in_context

        def traced(requests: list) -> list:
            spans = [s for s in (getattr(r, "span", None) for r in requests) if s is not None]
            parent = set_span(spans[0]) if spans else None
            with tracer.start_as_current_span(
                    "skewless.predict_batch", context=parent, links=[Link(s.get_span_context()) for s in spans],
                    attributes={"skewless.batch.requests": len(requests),
                                "skewless.batch.rows": sum(len(r.rows) for r in requests)}):
                return fn(requests)
        return traced

    def call(self, name: str, fn: Callable, *args: Any, attributes: dict | None = None) -> Any:
        """``fn(*args)`` in a span ``name``, the child of the current one (the batch's); its exception is recorded
        on the span (status ERROR) and raised."""
        with self.tracer.start_as_current_span(name, attributes=attributes):
            return fn(*args)

    def shutdown(self) -> None:
        """Export what is buffered, then stop (at server shutdown)."""
        self.provider.shutdown()

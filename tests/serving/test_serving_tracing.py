"""OpenTelemetry tracing of the model server, through the real exporter path: the server (a ``python -m
skewless.serving serve`` process configured only by the standard ``OTEL_*`` variables) exports with the official
SDK's OTLP/HTTP exporter to a receiver in the test that decodes the protobuf ``ExportTraceServiceRequest`` with
``opentelemetry-proto`` (tests/support/otlp_receiver.py). Asserted: the caller's W3C ``traceparent`` continues
(same trace id, the server span its child, the answer's ``traceparent`` naming the server span), the stage spans
and their parent/child relations across the batcher's thread hand-off, a micro-batch's links to each of its
requests, and tracing off by default (nothing imported, no header)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.serving.test_serving import free_port, running, trained_credit, wait_ready
from tests.support.otlp_receiver import OtlpReceiver

import skewless as sk
from skewless.serving import tracing
from skewless.serving.server import ServeConfig, build

STAGE_SPANS = ("skewless.transform", "skewless.predict", "skewless.prediction_log")


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return trained_credit(tmp_path_factory.mktemp("tracing") / "repo", sample=4, random_state=21)


@pytest.fixture
def receiver():
    r = OtlpReceiver()
    yield r
    r.close()


@contextlib.contextmanager
def serve(credit, **env_extra):
    """The image's entry point in a process of its own; the environment is its only configuration."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "SKEWLESS_HOST"}
    env.update(SKEWLESS_REPO=str(credit["repo"]), SKEWLESS_MODEL_DIR=str(credit["artifact"].path),
               SAGEMAKER_BIND_TO_PORT=str(port), **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "skewless.serving", "serve"], env=env, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url) as client:
            wait_ready(client, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(60)


def traceparent() -> tuple[str, str, str]:
    tid, sid = secrets.token_hex(16), secrets.token_hex(8)
    return tid, sid, f"00-{tid}-{sid}-01"


def test_traceparent_in_and_out_and_spans_for_each_stage(credit, receiver):
    loan = int(credit["loans"].loan_id.iloc[0])
    tid, caller, header = traceparent()
    with serve(credit, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
               OTEL_SERVICE_NAME="credit-scoring", OTEL_BSP_SCHEDULE_DELAY="50") as (url, _):
        r = httpx.post(f"{url}/invocations", json={"loan_id": loan},
                       headers={"traceparent": header, "tracestate": "vendor=abc"})
        assert r.status_code == 200, r.text
        version, out_tid, server_span, flags = r.headers["traceparent"].split("-")
        assert (version, out_tid, flags) == ("00", tid, "01") and server_span != caller
        assert r.headers["tracestate"] == "vendor=abc"  # the caller's vendor state goes on with the trace
        # Without a traceparent the server starts a trace of its own and still says which.
        fresh = httpx.post(f"{url}/invocations", json={"loan_id": loan})
        fresh_tid = fresh.headers["traceparent"].split("-")[1]
        assert fresh_tid != tid
        # A malformed traceparent is ignored (W3C: start a new trace), never an error.
        bad = httpx.post(f"{url}/invocations", json={"loan_id": loan}, headers={"traceparent": "00-xyz-1-01"})
        assert bad.status_code == 200 and bad.headers["traceparent"].split("-")[1] not in (tid, fresh_tid, "xyz")
        spans = receiver.wait_for(lambda ss: sum(s.name == "skewless.prediction_log" for s in ss) >= 3)
    ours = [s for s in spans if s.trace_id == tid]
    by_name = {}
    for s in ours:
        by_name.setdefault(s.name, []).append(s)
    srv = by_name["POST /invocations"][0]
    assert (srv.kind, srv.span_id, srv.parent_span_id) == ("SERVER", server_span, caller)
    assert srv.attributes["http.response.status_code"] == 200 and srv.attributes["http.route"] == "/invocations"
    assert srv.resource["service.name"] == "credit-scoring" and srv.resource["skewless.model"] == "credit"
    # The batch span, made in the predict thread (or the inline run), is the request span's child...
    (batch,) = by_name["skewless.predict_batch"]
    assert batch.parent_span_id == server_span and (tid, server_span) in batch.links
    assert batch.attributes["skewless.batch.requests"] == 1 and batch.attributes["skewless.batch.rows"] == 1
    # ...and every stage of the work is the batch span's child: one online read per stage of views, then the
    # model's input frame, the model call and the prediction log hand-off.
    lookups = sorted(by_name["skewless.feature_lookup"], key=lambda s: s.attributes["skewless.stage"])
    assert [s.attributes["skewless.views"] for s in lookups] == [["loan_features", "loan_zipcode"],
                                                                  ["zipcode_features"]]
    for s in lookups + [by_name[n][0] for n in STAGE_SPANS]:
        assert s.parent_span_id == batch.span_id, s
    assert {s.name for s in ours} == {"POST /invocations", "skewless.predict_batch", "skewless.feature_lookup",
                                      *STAGE_SPANS}
    fresh_root = [s for s in spans if s.trace_id == fresh_tid and s.name == "POST /invocations"]
    assert fresh_root and fresh_root[0].parent_span_id == ""


def test_a_micro_batch_is_one_span_linked_to_each_of_its_requests(credit, receiver, monkeypatch):
    """Two requests, each from its own trace, answered by one batch: one ``skewless.predict_batch`` span, the child
    of the first request's span, linking both; the stage spans under it once (the work happened once)."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
    tr = tracing.from_env("credit", 0)
    _, model, _ = build(ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path)))
    model.load()
    model.tracing = tr
    loans = [int(x) for x in credit["loans"].loan_id[:2]]
    calls = []
    for loan in loans:
        tid, sid, header = traceparent()
        span = tr.request_span({"traceparent": header}, "POST", "/invocations", "/invocations")
        req = model.parse({"loan_id": loan})
        req.span = span
        calls.append((tid, span, req))
    try:
        answers = tr.batch(model.predict_batch)([req for _, _, req in calls])
        assert [(a["request_id"], len(a["predictions"])) for a in answers] == [(r.request_id, 1) for _, _, r in calls]
        for _, span, req in calls:
            tr.end_request(span, 200, req.request_id)
        tr.provider.force_flush()
        spans = receiver.wait_for(lambda ss: any(s.name == "skewless.prediction_log" for s in ss)
                                  and sum(s.name == "POST /invocations" for s in ss) == 2)
    finally:
        tr.shutdown()
        model.close()
    (batch,) = [s for s in spans if s.name == "skewless.predict_batch"]
    ids = [(tid, format(span.get_span_context().span_id, "016x")) for tid, span, _ in calls]
    assert (batch.trace_id, batch.parent_span_id) == ids[0]  # the first request's trace holds the batch's work
    assert sorted(batch.links) == sorted(ids)  # the second finds it through the link
    assert batch.attributes["skewless.batch.requests"] == 2
    under = [s.name for s in spans if s.parent_span_id == batch.span_id]
    assert sorted(under) == sorted(["skewless.feature_lookup"] * 2 + list(STAGE_SPANS))


def test_requests_queued_behind_a_slow_batch_share_one_batch_span_through_the_real_batcher(credit, receiver,
                                                                                          monkeypatch):
    """The real server and batcher: a first request holds the predict thread (the model made slow by a wrapper
    around the real one), three more arrive meanwhile, each from its own trace, and are answered by one batch. Its
    span is the child of one of them and links all three; each of the three answers names its own trace."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    gate = threading.Event()

    class HeldFirst:  # the real model, its first call held until the other requests are queued
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def predict(self, frame):
            self.calls += 1
            if self.calls == 1:
                gate.wait(30)
            return self.inner.predict(frame)

    loans = [int(x) for x in credit["loans"].loan_id]
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path))
    with running(cfg) as (client, model):
        model._model = HeldFirst(model._model)
        url = str(client.base_url)
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(httpx.post, f"{url}/invocations", json={"loan_id": loans[0]}, timeout=60)
            while model._model.calls == 0:  # the first holds the predict thread
                assert not first.done(), first.result()
                time.sleep(0.01)
            heads = [traceparent() for _ in range(3)]
            queued = [pool.submit(httpx.post, f"{url}/invocations", json={"loan_id": loan}, timeout=60,
                                  headers={"traceparent": h}) for loan, (_, _, h) in zip(loans[1:], heads)]
            deadline = time.monotonic() + 30
            while "skewless_queue_depth 3.0" not in client.get("/metrics").text:  # all three wait for the thread
                assert time.monotonic() < deadline, "the three requests never queued together"
                time.sleep(0.01)
            gate.set()
            answers = [f.result() for f in queued]
            assert first.result().status_code == 200
        assert [a.status_code for a in answers] == [200] * 3
        ids = [(tid, a.headers["traceparent"].split("-")[2]) for (tid, _, _), a in zip(heads, answers)]
        assert [a.headers["traceparent"].split("-")[1] for a in answers] == [tid for tid, _, _ in heads]
        spans = receiver.wait_for(lambda ss: any(s.name == "skewless.predict_batch"
                                                 and s.attributes["skewless.batch.requests"] == 3 for s in ss))
    (batch,) = [s for s in spans if s.name == "skewless.predict_batch" and s.attributes["skewless.batch.requests"] == 3]
    assert sorted(batch.links) == sorted(ids)
    assert (batch.trace_id, batch.parent_span_id) in ids
    under = sorted(s.name for s in spans if s.parent_span_id == batch.span_id)
    assert under == sorted(["skewless.feature_lookup"] * 2 + list(STAGE_SPANS))


def test_a_failed_prediction_marks_its_spans_as_errors(credit, receiver, monkeypatch):
    """A model call that raises: the predict span records the error, the request span has status ERROR."""
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    # The base endpoint alone turns tracing on (the exporter appends /v1/traces).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.removesuffix("/v1/traces"))
    tr = tracing.from_env("credit", 0)
    _, model, _ = build(ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path)))
    model.load()
    model.tracing = tr

    class Broken:
        def predict(self, frame):
            raise RuntimeError("boom")
    model._model = Broken()
    tid, _, header = traceparent()
    span = tr.request_span({"traceparent": header}, "POST", "/invocations", "/invocations")
    req = model.parse({"loan_id": int(credit["loans"].loan_id.iloc[0])})
    req.span = span
    try:
        with pytest.raises(sk.SkewlessError, match="boom"):
            tr.batch(model.predict_batch)([req])
        tr.end_request(span, 500, req.request_id)
        tr.provider.force_flush()
        spans = receiver.wait_for(lambda ss: any(s.name == "POST /invocations" for s in ss))
    finally:
        tr.shutdown()
        model.close()
    status = {s.name: s.status for s in spans if s.trace_id == tid}
    assert status["skewless.predict"] == status["POST /invocations"] == "STATUS_CODE_ERROR"


def test_tracing_is_off_unless_the_environment_turns_it_on(credit):
    endpoint = "http://127.0.0.1:9/v1/traces"
    assert tracing.from_env("m", env={}) is None
    assert tracing.from_env("m", env={"OTEL_SERVICE_NAME": "x"}) is None  # naming a service turns nothing on
    assert tracing.from_env("m", env={"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}) is None
    assert tracing.from_env("m", env={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}) is None
    on = tracing.from_env("m", env={"OTEL_TRACES_EXPORTER": "console"})
    assert on is not None
    on.shutdown()
    # Off, a real server answers without a traceparent and never imports OpenTelemetry's SDK.
    code = ("import sys; from skewless.serving.server import ServeConfig, build; "
            f"build(ServeConfig(repo={str(credit['repo'])!r}, model_dir={str(credit['artifact'].path)!r})); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    with serve(credit) as (url, _):
        r = httpx.post(f"{url}/invocations", json={"loan_id": int(credit["loans"].loan_id.iloc[0])},
                       headers={"traceparent": traceparent()[2]})
        assert r.status_code == 200 and "traceparent" not in r.headers


@pytest.mark.parametrize("env, message", [
    ({"OTEL_TRACES_EXPORTER": "jaeger"}, r"OTEL_TRACES_EXPORTER='jaeger': expected a comma-separated list of otlp, "
                                         r"console, or none"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     r"OTEL_EXPORTER_OTLP_PROTOCOL='grpc': expected http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
     r"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json': expected http/protobuf"),
])
def test_tracing_settings_this_server_cannot_honour_stop_it_at_startup(env, message):
    with pytest.raises(sk.ConfigError, match=message):
        tracing.from_env("m", env=env)

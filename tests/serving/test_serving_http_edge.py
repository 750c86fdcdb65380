"""The model server's HTTP edge, probed as an attacker would: a real ``python -m skewless.serving serve`` process
(the image's entry point, configured by the environment) reached with httpx. The token guards every route but the
health checks (both contracts on one port), a wrong or missing token is refused before the body is read and
predicts nothing, and bodies past the limit are refused (413) before they are parsed or even read, with and
without a Content-Length, while the server's memory stays flat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import psutil
import pytest

import skewless as sk
from skewless.serving.container.build import DOCKERFILE
from skewless.serving.server import ServeConfig

from tests.serving.test_serving import credit, free_port, running  # noqa: F401 - `credit` is a fixture, taken by name below

TOKEN = "edge-s3cret"
LIMIT = 1_000_000
AUTH = {"Authorization": TOKEN}
MB = 1 << 20


@pytest.fixture(scope="module")
def server(credit):  # noqa: F811 - the fixture
    port = free_port()
    env = {**os.environ, "SKEWLESS_REPO": str(credit["repo"]), "SKEWLESS_MODEL_DIR": str(credit["artifact"].path),
           "SAGEMAKER_BIND_TO_PORT": str(port), "SKEWLESS_CONTRACT": "both", "SKEWLESS_SERVING_TOKEN": TOKEN,
           "SKEWLESS_MAX_BODY_BYTES": str(LIMIT)}
    env.pop("SKEWLESS_HOST", None)
    proc = subprocess.Popen([sys.executable, "-m", "skewless.serving", "serve"], env=env,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ping").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(60)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_token_guards_every_route_but_the_health_checks(server, credit):  # noqa: F811
    url, _ = server
    loan = int(credit["loans"].loan_id.iloc[0])
    batches = metric(url, "skewless_batch_requests_count")
    guarded = [("POST", "/invocations"), ("POST", "/api/predict/credit"), ("GET", "/api/predict/credit"),
               ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs")]
    with httpx.Client(base_url=url) as c:
        for method, path in guarded:
            for headers in ({}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                            {"Authorization": f"Basic {TOKEN}"}, {"X-Amzn-SageMaker-Custom-Attributes": TOKEN}):
                r = c.request(method, path, json={"loan_id": loan}, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert r.json()["error"] == "Unauthorized" and r.headers["www-authenticate"] == "Bearer"
        # a caller without the token does not even learn the EAS service's name
        assert c.post("/api/predict/other", json={"loan_id": loan}).status_code == 401
        # nothing was predicted (so nothing reached the prediction log) for any refused request
        assert metric(url, "skewless_batch_requests_count") == batches
        for method, path in guarded:
            for token in (TOKEN, f"Bearer {TOKEN}", f"bearer {TOKEN}"):
                r = c.request(method, path, json={"loan_id": loan}, headers={"Authorization": token})
                assert r.status_code == 200, (method, path, r.text)
        assert metric(url, "skewless_batch_requests_count") == batches + 2 * 3
        # health checks stay open (platforms' probes carry no credentials) and say little
        for path in ("/ping", "/ready", "/live"):
            r = c.get(path)
            assert r.status_code == 200 and set(r.json()) <= {"status", "model", "version"}, r.text
        assert metric(url, 'skewless_requests_total{route="sagemaker",status="401"}') == 5


def test_sagemaker_contract_alone_also_enforces_a_configured_token(credit, tmp_path):  # noqa: F811
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="sagemaker",
                      token=TOKEN)
    loan = int(credit["loans"].loan_id.iloc[0])
    with running(cfg) as (c, model):
        before = model.log.pending + model.log.written
        assert c.post("/invocations", json={"loan_id": loan}, headers={"Authorization": ""}).status_code == 401
        assert model.log.pending + model.log.written == before
        assert c.post("/invocations", json={"loan_id": loan}).status_code == 200  # the client carries the token
        assert model.log.pending + model.log.written == before + 1


def stream(total: int, sent: list, chunk: int = 64 * 1024):
    """``total`` bytes of a JSON list, produced lazily; ``sent[0]`` counts what the server took."""
    yield b"["
    sent[0] += 1
    row = b'{"loan_id": 1},'
    block = row * (chunk // len(row))
    while sent[0] < total:
        part = block[:total - sent[0]]
        yield part
        sent[0] += len(part)


def big_upload(url: str, *, declared: bool, headers: dict, total: int = 300 * MB) -> tuple[int | None, int]:
    """(status or None if the server cut the connection first, bytes the client got to send)."""
    sent = [0]
    hdrs = {**headers, "Content-Type": "application/json"}
    if declared:
        hdrs["Content-Length"] = str(total)
    try:
        r = httpx.post(f"{url}/invocations", content=stream(total, sent), headers=hdrs, timeout=60)
        return r.status_code, sent[0]
    except httpx.TransportError:  # closed (and reset) with the rest of the body unread: also a refusal
        return None, sent[0]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("auth", [True, False], ids=["token", "no-token"])
def test_a_huge_body_is_refused_without_being_read(server, declared, auth):
    """300 MB offered: today all of it was read (+615 MB RSS) and parsed, with or without a token."""
    url, proc = server
    rss = psutil.Process(proc.pid).memory_info().rss
    status, sent = big_upload(url, declared=declared, headers=AUTH if auth else {})
    print(f"refused upload: status {status}, {sent / MB:.1f} MB sent, RSS "
          f"{(psutil.Process(proc.pid).memory_info().rss - rss) / MB:+.1f} MB")
    assert status in (413 if auth else 401, None), status
    assert sent < 40 * MB, f"the server read {sent / MB:.0f} MB of a refused body"  # socket buffers, no more
    # today: +280-300 MB; the margin covers the allocator's own growth (arenas), not the body
    assert psutil.Process(proc.pid).memory_info().rss - rss < 64 * MB
    assert httpx.get(f"{url}/ping").status_code == 200  # and it goes on serving


def test_over_the_limit_answers_413_with_a_typed_error(server, credit):  # noqa: F811
    url, _ = server
    loan = int(credit["loans"].loan_id.iloc[0])
    body = b"[" + b",".join([b'{"loan_id": %d}' % loan] * 70_000) + b"]"  # ~1.1 MB: over the 1 MB limit
    assert len(body) > LIMIT
    with httpx.Client(base_url=url, headers=AUTH) as c:
        r = c.post("/invocations", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge" and "1,000,000" in r.json()["message"]
        chunked = c.post("/api/predict/credit", content=iter([body[:600_000], body[600_000:]]))
        assert chunked.status_code == 413 and chunked.json()["error"] == "PayloadTooLarge"
        # under the limit: served as before
        ok = c.post("/invocations", content=b"[" + b",".join([b'{"loan_id": %d}' % loan] * 500) + b"]")
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 500


def test_body_limit_and_host_configuration(monkeypatch):
    monkeypatch.delenv("SKEWLESS_HOST", raising=False)
    monkeypatch.delenv("SKEWLESS_MAX_BODY_BYTES", raising=False)
    cfg = ServeConfig.from_env()
    assert cfg.host == "127.0.0.1" and cfg.max_body_bytes == 6 * MB  # loopback unless asked; SageMaker's 6 MB
    monkeypatch.setenv("SKEWLESS_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("SKEWLESS_HOST", "0.0.0.0")  # noqa: S104 - what the image sets
    assert ServeConfig.from_env().max_body_bytes == 2048 and ServeConfig.from_env().host == "0.0.0.0"  # noqa: S104
    assert ServeConfig.from_env(max_body_bytes=4096).max_body_bytes == 4096  # `skewless model serve --max-body-bytes`
    monkeypatch.setenv("SKEWLESS_MAX_BODY_BYTES", "6MB")
    with pytest.raises(sk.ConfigError, match="SKEWLESS_MAX_BODY_BYTES"):
        ServeConfig.from_env()
    # the image listens on every interface (SageMaker and PAI-EAS reach it from outside the container)
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ENV .*\bSKEWLESS_HOST=0\.0\.0\.0\b", dockerfile, re.M)

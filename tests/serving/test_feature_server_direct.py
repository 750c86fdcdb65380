"""``POST /get-online-features`` answered by the HTTP protocol itself (``http_protocol``'s direct routes), as a
client's socket sees it on a real uvicorn: the same answers as through the ASGI app, pipelined requests in order
(mixed with requests the app answers), keep-alive and ``Connection: close``, the requests the protocol leaves to the
app (a chunked body, ``Expect: 100-continue``, a body past the limit), a handler that raises (500, not a hung
connection), and a graceful shutdown that waits for an answer still being read."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from tests.serving.test_serving_http_protocol import _exchange
from tests.support.feature_server import TOKEN, driver_repo, free_port, online_of, running

from skewless.serving.feature_server import FeatureServerConfig
from skewless.serving.http_protocol import protocol_class

FEATURES = ["driver_stats:conv_rate", "driver_profile:city", "driver_rating:rating"]


@pytest.fixture(params=["sqlite", "redis"])
def repo(request, tmp_path):
    driver_repo(tmp_path / "repo", online=online_of(request, "fsdirect"), drivers=4)
    return tmp_path / "repo"


def _post(body: bytes, *, extra: str = "", token: str = TOKEN, length: bool = True) -> bytes:
    head = f"POST /get-online-features HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _body(ids) -> bytes:
    return json.dumps({"features": FEATURES, "entities": {"driver_id": ids}}).encode()


def _port(client) -> int:
    return int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))


def test_direct_answers_are_the_apps_in_order_with_keep_alive(repo):
    with running(FeatureServerConfig(repo=str(repo), tokens=(TOKEN,), max_body_bytes=4096)) as (client, app):
        port = _port(client)
        alone = {i: client.post("/get-online-features", json=json.loads(_body([i]))).content for i in (1, 2, 3)}
        # Pipelined on one connection: direct, a GET the app answers, direct, direct closing the connection.
        raw = _post(_body([1])) + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + _post(_body([2])) + \
            _post(_body([3]), extra="Connection: close\r\n")
        answers = _exchange(port, raw, 4)
        assert [a[0] for a in answers] == [200, 200, 200, 200]
        assert [answers[0][2], answers[2][2], answers[3][2]] == [alone[1], alone[2], alone[3]]
        assert json.loads(answers[1][2]) == {"status": "ok"}
        assert [a[1].get("connection") for a in answers] == [None, None, None, "close"]
        assert answers[0][1]["content-type"] == "application/json" and "date" in answers[0][1]
        # What the protocol leaves to the app answers the same: a chunked body, Expect: 100-continue.
        body = _body([2])
        chunked = _post(b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body), extra="Transfer-Encoding: chunked\r\n",
                        length=False)
        assert _exchange(port, chunked, 1)[0][2] == alone[2]
        assert _exchange(port, _post(body, extra="Expect: 100-continue\r\n"), 1)[0][2] == alone[2]
        # Refusals: a wrong token (401, the connection closed once), a body past the limit (413, through the app),
        # an unknown view (404): typed bodies, and counted in the metrics.
        (status, headers, got), = _exchange(port, _post(body, token="wrong"), 1)
        assert status == 401 and headers["connection"] == "close" and json.loads(got)["error"] == "Unauthorized"
        big = json.dumps({"features": FEATURES, "entities": {"driver_id": [1] * 2000}}).encode()
        (status, _, got), = _exchange(port, _post(big), 1)
        assert status == 413 and json.loads(got)["error"] == "PayloadTooLarge"
        (status, _, got), = _exchange(port, _post(b'{"features": ["nope:x"], "entities": {"driver_id": [1]}}'), 1)
        assert status == 404 and json.loads(got)["error"] == "NotFoundError"
        metrics = client.get("/metrics").text
        assert 'skewless_fs_requests_total{route="get-online-features",status="200"} 8.0' in metrics
        assert 'skewless_fs_requests_total{route="get-online-features",status="401"} 1.0' in metrics
        assert app.state.server.reading == 0


class _Slow:
    """A bare ASGI app with one direct route: answers ``{"n": ...}`` after ``delay`` s, or raises for ``b"boom"``."""

    direct_max_body = 1024

    def __init__(self, delay: float):
        self.delay, self.started = delay, threading.Event()
        self.direct_post = {b"/slow": self.slow}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    def slow(self, headers, body, reply):
        if body == b"boom":
            raise RuntimeError("a bug in a handler")
        self.started.set()
        asyncio.get_running_loop().call_later(self.delay, reply, json.dumps({"n": len(body)}).encode())


def _serve(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol_class(),
                                           log_config=None, lifespan="on", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, port


def _slow(body: bytes) -> bytes:
    return b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)


def test_a_raising_handler_is_a_500_and_shutdown_waits_for_a_direct_answer():
    app = _Slow(delay=0.5)
    server, thread, port = _serve(app)
    try:
        (status, headers, body), = _exchange(port, _slow(b"boom"), 1)
        assert status == 500 and headers["connection"] == "close" and body == b"Internal Server Error"
        # A request whose answer is still coming when the server is told to stop: it gets its whole answer, with
        # Connection: close, and only then is the connection closed.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(_slow(b"abc"))
            assert app.started.wait(10)
            server.should_exit = True
            got = b""
            while chunk := s.recv(65536):
                got += chunk
        head, body = got.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in head and json.loads(body) == {"n": 3}
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()

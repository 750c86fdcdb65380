"""The server's HTTP edge as a client's socket sees it: each answer written once (``http_protocol``), and
``POST /invocations`` taken before Starlette's router (``app._App``) without changing what any request gets:
pipelined requests answered in order, ``Expect: 100-continue``, another method on ``/invocations`` (405), a bad
token (401) and a bad Content-Type (415) on the fast route, the request metrics counting it."""

from __future__ import annotations

import asyncio
import json
import re
import socket

from skewless.serving.http_protocol import CoalescingTransport, protocol_class
from skewless.serving.server import ServeConfig

from tests.serving.test_serving import TOKEN, credit, running  # noqa: F401 - `credit` is a fixture, taken by name below


def test_held_writes_leave_as_one_when_flushed_and_never_wait_past_the_loop_step():
    async def main():
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        held = CoalescingTransport(transport, loop)
        held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        held.write(b"{}")
        try:  # nothing on the wire before the flush
            got = peer.recv(4096)
        except BlockingIOError:
            got = b""
        assert got == b""
        held.flush()
        await asyncio.sleep(0.05)
        assert peer.recv(4096) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"  # one segment, in order
        held.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # no flush: sent at the end of this loop step
        await asyncio.sleep(0.05)
        assert peer.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        held.write(b"last")
        held.close()  # what is held goes out before the connection closes
        await asyncio.sleep(0.05)
        assert peer.recv(4096) == b"last"
        assert held.is_closing() and peer.recv(4096) == b""  # the transport's own method, then EOF
        peer.close()

    asyncio.run(main())


def _exchange(port: int, raw: bytes, answers: int) -> list[tuple[int, dict, bytes]]:
    """Send ``raw`` on one connection; read ``answers`` HTTP answers (status, headers, body) in order."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw)
        buf = b""
        while len(out) < answers:
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            if status == 100:
                continue
            n = int(headers["content-length"])
            while len(buf) < n:
                buf += s.recv(65536)
            out.append((status, headers, buf[:n]))
            buf = buf[n:]
    return out


def _post(body: bytes, *, extra: str = "", token: str = TOKEN) -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: {token}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_the_fast_route_answers_what_starlette_did(credit):  # noqa: F811 - the fixture
    loans = [int(i) for i in credit["loans"].loan_id[:3]]
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="sagemaker",
                      token=TOKEN)
    with running(cfg) as (client, _):
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        one = client.post("/invocations", json={"loan_id": loans[0]}).json()
        # Three requests in one send (pipelined): three answers, in order, each the answer alone would get.
        bodies = [json.dumps({"loan_id": loan}).encode() for loan in loans]
        answers = _exchange(port, b"".join(_post(b) for b in bodies), 3)
        assert [a[0] for a in answers] == [200, 200, 200]
        assert [a[1]["content-type"] for a in answers] == ["application/json"] * 3
        assert json.loads(answers[0][2])["predictions"] == one["predictions"]
        assert [len(json.loads(a[2])["predictions"]) for a in answers] == [1, 1, 1]
        # Expect: 100-continue: the interim answer, then the prediction.
        (status, _, body), = _exchange(port, _post(bodies[1], extra="Expect: 100-continue\r\n"), 1)
        assert status == 200 and json.loads(body)["predictions"] == json.loads(answers[1][2])["predictions"]
        # Refusals on the fast route: the same typed answers as before it.
        (status, headers, body), = _exchange(port, _post(bodies[0], token="wrong"), 1)
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert json.loads(body)["error"] == "Unauthorized"
        raw = _post(bodies[0]).replace(b"application/json", b"application/x-nope")
        (status, _, body), = _exchange(port, raw, 1)
        assert status == 415 and json.loads(body)["error"]
        # Another method on /invocations goes through Starlette's router: 405 in the typed error body.
        r = client.get("/invocations")
        assert r.status_code == 405 and r.json()["error"] == "MethodNotAllowed"
        metrics = client.get("/metrics").text
        for status, n in (("200", 5), ("401", 1), ("415", 1)):  # the fast route's answers, counted as before
            found = re.search(rf'^skewless_requests_total{{[^}}]*route="sagemaker"[^}}]*status="{status}"[^}}]*}} '
                              rf'(\S+)$', metrics, re.M)
            assert found and float(found.group(1)) == n, (status, found)


def test_uvicorn_is_given_the_coalescing_protocol():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    cls = protocol_class()
    assert cls is not None and issubclass(cls, HttpToolsProtocol)

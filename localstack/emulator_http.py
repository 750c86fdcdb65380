"""What the emulators (``sagemaker_runtime``, ``eas_emulator``, ``oss_shim``) share: a threaded loopback HTTP server
whose handler hands each request (HEAD and chunked uploads included) to one ``dispatch(method, path, headers, body)``
function, backends started through the deploy runtimes (stopped when the emulator gets SIGTERM), and forwarding a
request to a backend."""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

HOST = "127.0.0.1"
Reply = tuple[int, dict[str, str], bytes]
log = logging.getLogger("skewless.localcloud")


def json_reply(status: int, doc, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc, default=str).encode()


def forward(host: str, port: int, method: str, path: str, headers: dict[str, str], body: bytes,
            timeout: float = 60.0) -> Reply:
    """Send the request on unchanged (minus hop-by-hop headers) and return the answer as it came."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "content-length",
                                                                       "transfer-encoding")}
        conn.request(method, path, body=body, headers=keep)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in (
            "content-length", "connection", "transfer-encoding", "date", "server")}, data
    finally:
        conn.close()


def serve(dispatch: Callable[[str, str, dict[str, str], bytes], Reply], port: int,
          on_stop: Callable[[], None]) -> None:
    """Serve until SIGTERM/SIGINT, then ``on_stop`` (stop the backends, which run in their own process groups and
    would outlive a killed emulator otherwise)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = bytearray()  # a chunked body (clients that stream uploads of unknown length send one)
            while size := int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailer lines up to the blank one
                pass
            return bytes(out)

        def _handle(self):
            body = self._body()
            try:
                status, headers, data = dispatch(self.command, self.path, dict(self.headers.items()), body)
            except Exception as exc:  # an emulator bug must still answer, loudly
                log.exception("emulator error")
                status, headers, data = json_reply(500, {"__type": "InternalFailure", "message": repr(exc)})
            # HEAD answers carry the length a GET would have (the dispatcher's Content-Length) and no body.
            head = self.command == "HEAD"
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            length = next((v for k, v in headers.items() if k.lower() == "content-length"), None) if head else None
            self.send_header("Content-Length", length or str(0 if head else len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        def log_message(self, fmt, *args):
            log.info("%s %s", self.address_string(), fmt % args)

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        on_stop()
        server.server_close()


def runtime(name: str, state: Path, image: str | None = None, registry_auth: Path | None = None):
    """The deploy runtime a backend runs with: ``podman`` runs the image the service names, pulling it with the
    emulator's registry credentials (``registry_auth``, a podman auth file: the platform's pull access, as an
    execution role has to ECR) when it is not present; ``process`` runs the server directly (the image is recorded
    only). Any of them stops any handle of its kind."""
    from skewless.serving.deploy.runtime import get_runtime

    if name == "podman":
        return get_runtime("podman", state_dir=state / "run", image=image, authfile=registry_auth)
    return get_runtime(name, state_dir=state / "run")


def stop_all(rt, handles: list[dict]) -> None:
    """Stop backends in parallel: each stop waits for a graceful shutdown (queue answered, prediction log flushed),
    and the emulator's own stop is bounded by its caller's timeout."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, min(8, len(handles)))) as pool:
        list(pool.map(rt.stop, handles))


def arguments(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state", type=Path, required=True, help="backends' model folders, PID files and logs")
    ap.add_argument("--runtime", default="process", help="process | podman")
    ap.add_argument("--registry-auth", type=Path, help="podman auth file for pulling images (podman runtime)")
    if extra:
        extra(ap)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    return ap.parse_args()

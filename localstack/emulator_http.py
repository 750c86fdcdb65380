"""What the two serving emulators (``sagemaker_runtime``, ``eas_emulator``) share: a threaded loopback HTTP server
whose handler hands each request to one ``dispatch(method, path, headers, body)`` function, backends started through
the deploy runtimes (stopped when the emulator gets SIGTERM), and forwarding a request to a backend."""

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

        def _handle(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                status, headers, data = dispatch(self.command, self.path, dict(self.headers.items()), body)
            except Exception as exc:  # an emulator bug must still answer, loudly
                log.exception("emulator error")
                status, headers, data = json_reply(500, {"__type": "InternalFailure", "message": repr(exc)})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

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


def runtime(name: str, state: Path, image: str | None = None):
    """The deploy runtime a backend runs with: ``podman`` runs the image the service names; ``process`` runs the
    server directly (the image is recorded only). Any of them stops any handle of its kind."""
    from skewless.serving.deploy.runtime import get_runtime

    if name == "podman" and image:
        return get_runtime("podman", state_dir=state / "run", image=image)
    return get_runtime(name, state_dir=state / "run")


def arguments(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state", type=Path, required=True, help="backends' model folders, PID files and logs")
    ap.add_argument("--runtime", default="process", help="process | podman")
    if extra:
        extra(ap)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    return ap.parse_args()

"""uvicorn's httptools protocol, answering each response with one socket write instead of two.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``, then its body at
``http.response.body``: two ``send`` system calls per answer, each releasing and re-taking the GIL (which the
prediction log's writer thread may hold then: up to a switch interval's wait) and each waking the client (strace
at one connection: 2.3 -> 1.3 writes per request; bench/results/serving_i14_profile.md, "p99"). Here the
connection's transport holds what uvicorn writes until the response is complete and sends it in one write. Anything
written outside a complete response (``100 Continue``, a streamed body, uvicorn's own 400/500 answers) is sent at
the end of the event loop's current step at the latest, and before the connection closes, so nothing waits.

Direct routes: an app (or the app inside uvicorn's middleware) with a ``direct_post`` dict, ``{path: handler}``,
has a ``POST`` to one of those paths answered here, without the ASGI request cycle (task, receive/send messages,
header checks: a fixed answer costs 15-19 us of CPU per request this way against 25-28 us as ASGI on the same
uvicorn; bench/results/feature_server_i16fs_http.md): ``handler(headers, body, reply)`` gets the request's headers
(lower-case names) and its whole body, and calls ``reply(answer)`` once, now or later on the loop, with ``bytes`` (a
200 JSON answer) or a Starlette ``Response`` (its status, headers and body). Only plain requests take it: HTTP/1.1, a
Content-Length within ``direct_max_body`` (on the app), no ``Expect: 100-continue``, no upgrade, nothing pipelined
ahead of it, the concurrency limit not reached; anything else goes through the app as before. The connection's
bookkeeping is uvicorn's own (``cycle``, keep-alive, pipelining, graceful shutdown waiting for the answer).

``protocol_class()`` is the class for ``uvicorn.Config(http=...)``; None when httptools is not installed (uvicorn's
own choice then applies). ``PROTOCOL_PATH`` names the same class as an import string, for uvicorn's worker
processes (``workers`` > 1), which import it rather than unpickle it.
"""

from __future__ import annotations

import asyncio


class CoalescingTransport:
    """A connection's transport whose writes are held until ``flush`` (or ``close``), then sent as one."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:  # at the latest at the end of this loop step, whatever writes follow
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        if not self._transport.is_closing():  # the peer went away: uvicorn drops the answer too
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):  # is_closing, get_extra_info, pause_reading, ...: the transport's own
        return getattr(self._transport, name)


class _Direct:
    """A direct request in uvicorn's ``cycle`` slot: the attributes its protocol reads and sets there."""

    __slots__ = ("keep_alive", "response_complete", "disconnected", "headers", "body", "size", "handler")

    def __init__(self, keep_alive: bool, headers: list, size: int, handler):
        self.keep_alive, self.headers, self.size, self.handler = keep_alive, headers, size, handler
        self.response_complete = self.disconnected = False
        self.body: list[bytes] = []

    @property
    def message_event(self):  # connection_lost sets it: nothing waits on a direct request's body
        return self

    def set(self) -> None:
        pass


class _Answer:
    """A direct route's answer with a status and headers: the attributes read of a Starlette ``Response``."""

    __slots__ = ("status_code", "raw_headers", "body")

    def __init__(self, status_code: int, raw_headers: list, body: bytes):
        self.status_code, self.raw_headers, self.body = status_code, raw_headers, body


def _direct_routes(app) -> tuple[dict, int]:
    """The ``direct_post`` routes of ``app`` or of the app inside uvicorn's middleware (each has ``.app``)."""
    for _ in range(4):
        routes = getattr(app, "direct_post", None)
        if routes:
            return routes, app.direct_max_body
        app = getattr(app, "app", None)
        if app is None:
            break
    return {}, 0


PROTOCOL_PATH = "skewless.serving.http_protocol:CoalescingHttpToolsProtocol"
_made: list = []


def __getattr__(name: str):  # ``PROTOCOL_PATH``'s class, made on first import by uvicorn
    if name == "CoalescingHttpToolsProtocol" and (cls := protocol_class()) is not None:
        return cls
    raise AttributeError(name)


def protocol_class():
    if _made:
        return _made[0]
    try:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn's h11 protocol, as before
        return None

    json_head = b"content-type: application/json\r\ncontent-length: "

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            self._direct, self._direct_max = _direct_routes(self.app)
            super().connection_made(CoalescingTransport(transport, self.loop))

        def on_response_complete(self) -> None:
            self.transport.flush()  # the whole answer, written at once (see the module docstring)
            super().on_response_complete()

        # -- direct routes (module docstring) ------------------------------------------------------------------
        def on_headers_complete(self) -> None:
            handler = self._direct.get(self.url) if self._direct else None
            if handler is None or self.expect_100_continue or self.parser.get_method() != b"POST" or \
                    self.parser.should_upgrade() or (self.cycle is not None and not self.cycle.response_complete):
                return super().on_headers_complete()
            size = -1
            for name, value in self.headers:
                if name == b"content-length":
                    size = int(value) if value.isdigit() else -1
                    break
            limit = self.limit_concurrency
            if not 0 <= size <= self._direct_max or self.parser.get_http_version() != "1.1" or (
                    limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)):
                return super().on_headers_complete()
            self.cycle = _Direct(self.parser.should_keep_alive(), self.headers, size, handler)  # type: ignore

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if type(cycle) is not _Direct:
                return super().on_body(body)
            cycle.body.append(body)

        def on_message_complete(self) -> None:
            cycle = self.cycle
            if type(cycle) is not _Direct:
                return super().on_message_complete()
            body = cycle.body
            try:
                cycle.handler(cycle.headers, body[0] if len(body) == 1 else b"".join(body),
                              lambda answer: self._direct_reply(cycle, answer))
            except Exception as exc:  # a handler answers its own errors: this is a bug, answered as uvicorn does
                self.logger.error("Exception in direct route handler", exc_info=exc)
                cycle.keep_alive = False
                self._direct_reply(cycle, _Answer(500, [(b"content-type", b"text/plain; charset=utf-8"),
                                                        (b"content-length", b"21")], b"Internal Server Error"))

        def _direct_reply(self, cycle: _Direct, answer) -> None:
            if cycle.response_complete:
                return
            cycle.response_complete = True
            if cycle.disconnected or self.transport.is_closing():
                return
            head = [STATUS_LINE[200 if isinstance(answer, bytes) else answer.status_code]]
            for name, value in self.server_state.default_headers:  # date, server: as uvicorn's answers
                head += [name, b": ", value, b"\r\n"]
            close = False  # the answer's own Connection header is replaced by the one written below
            if isinstance(answer, bytes):
                head += [json_head, str(len(answer)).encode(), b"\r\n"]
            else:
                for name, value in answer.raw_headers:
                    if name == b"connection":
                        close = close or b"close" in value.lower()
                        continue
                    head += [name, b": ", value, b"\r\n"]
                answer = answer.body
            if close:
                cycle.keep_alive = False
            if not cycle.keep_alive:
                head.append(b"connection: close\r\n")
            head += [b"\r\n", answer]
            self.transport.write(b"".join(head))
            if not cycle.keep_alive:
                self.transport.close()
            self.on_response_complete()

    _made.append(CoalescingHttpToolsProtocol)
    return CoalescingHttpToolsProtocol

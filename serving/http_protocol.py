"""uvicorn's httptools protocol, answering each response with one socket write instead of two.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``, then its body at
``http.response.body``: two ``send`` system calls per answer, each releasing and re-taking the GIL (which the
prediction log's writer thread may hold then: up to a switch interval's wait) and each waking the client (strace
at one connection: 2.3 -> 1.3 writes per request; bench/results/serving_i14_profile.md, "p99"). Here the
connection's transport holds what uvicorn writes until the response is complete and sends it in one write. Anything
written outside a complete response (``100 Continue``, a streamed body, uvicorn's own 400/500 answers) is sent at
the end of the event loop's current step at the latest, and before the connection closes, so nothing waits.

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
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn's h11 protocol, as before
        return None

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, self.loop))

        def on_response_complete(self) -> None:
            self.transport.flush()  # the whole answer, written at once (see the module docstring)
            super().on_response_complete()

    _made.append(CoalescingHttpToolsProtocol)
    return CoalescingHttpToolsProtocol

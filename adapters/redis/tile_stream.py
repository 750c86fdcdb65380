"""Pipelined tile writes to a standalone Redis: the chunks of one refresh go out back to back on one ordered stream,
so the server always has the next chunk queued while the client computes the one after it.

Why a stream of its own: ``RedisTiles.start_write_tiles`` used to send a chunk and read its replies before the next
chunk was framed, so the server waited for the client's framing and the client for the server's last calls of a
chunk (per 100k events, ~0.28 s of server CPU barely overlapped ~0.45 s of client CPU). Here a chunk is framed,
handed to a sender thread and the caller returns at once; the replies of the chunk before are read afterwards.

- One connection per (store, thread), not the thread's own (``Wire.connection``): the synchronous path
  (``write_tiles``, the fallback below) keeps using that one while chunks are still in flight here.
- One ordered stream: each chunk's sender thread waits for the previous one's before sending (``sendall`` frees the
  GIL while the kernel buffer is full), so the bytes of two chunks never interleave and a key's updates reach the
  server in the order they were started. The replies are read in the same order with one hiredis reader kept
  across chunks (a recv may hold the start of the next chunk's replies). A plain socket is read while the next
  chunk is being sent; a TLS one is not (an OpenSSL connection is not read and written from two threads at once):
  its replies are read once the chunks started so far are sent.
- A failure never leaves a chunk half-known: an error reply (NOSCRIPT, a script error, OOM) is read like any
  reply and the chunk is written again through ``write_tiles`` (idempotent: the newest history version wins, equal
  versions carry equal states), which loads the script or raises the typed error. A broken connection (send or
  receive) breaks the stream: every chunk sent on it is written again the same way, in order, and later chunks
  start a new stream. Until ``finish`` returns, the caller reports nothing done (no checkpoint), so a crash in
  between leaves what ingest's pending marker and a rerun already repair.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Callable

try:
    import hiredis
except ImportError:  # pragma: no cover - part of skewless[redis]
    hiredis = None

from redis.exceptions import RedisError, ResponseError

from .wire import read_into


class Stream:
    """One connection written by a chain of sender threads and read, in order, by ``Ticket.replies``."""

    def __init__(self, conn):
        self.conn = conn
        conn.connect()  # now, on the caller's thread: a sender never reconnects a stream that broke
        self.sock = conn._sock
        self.tls = isinstance(self.sock, ssl.SSLSocket)  # OpenSSL: never read and written at once (``replies``)
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.buf = bytearray(1 << 16)
        self.last: threading.Thread | None = None  # the sender of the newest chunk
        self.broken: BaseException | None = None
        self.pid = os.getpid()

    def send(self, packed: list) -> "Ticket":
        ticket = Ticket(self)
        prev = self.last

        def run() -> None:
            if prev is not None:
                prev.join()
            if self.broken is not None:
                ticket.failed = self.broken
                return
            try:
                for buf in packed:
                    self.sock.sendall(buf)  # frees the GIL while the server works through what is queued
            except BaseException as exc:
                ticket.failed = self.break_(exc)
        ticket.sender = threading.Thread(target=run, name="skewless-tiles-send", daemon=True)
        self.last = ticket.sender
        ticket.sender.start()
        return ticket

    def break_(self, exc: BaseException) -> BaseException:
        """Stop the stream: its socket closed (a sender blocked in it fails), nothing more sent or read on it."""
        if self.broken is None:
            self.broken = exc
            self.conn.disconnect()
        return self.broken

    def read(self, n: int) -> list:
        """The next ``n`` replies, in order (error replies as ResponseError objects)."""
        return read_into(self.conn, self.sock, self.reader, self.buf, [], n)


class Ticket:
    """One chunk on a stream: ``replies(n)`` waits for its send, then reads its ``n`` replies; None when the stream
    broke (the chunk must be written again)."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.sender: threading.Thread | None = None
        self.failed: BaseException | None = None

    def replies(self, n: int) -> list | None:
        self.sender.join()
        s = self.stream
        if s.tls and s.last is not None:  # the later chunks sent first: then no sender writes while this reads
            s.last.join()
        if self.failed is not None or s.broken is not None:
            return None
        try:
            return s.read(n)
        except BaseException as exc:
            s.break_(exc)
            if not isinstance(exc, (RedisError, OSError)):
                raise
            return None


class Streams:
    """Each thread's stream on ``new_conn()`` connections; a broken stream is replaced on the next ``get``."""

    def __init__(self, new_conn: Callable[[], object]):
        self.new_conn = new_conn
        self.local = threading.local()

    def get(self) -> Stream:
        s = getattr(self.local, "stream", None)
        if s is None or s.broken is not None or s.pid != os.getpid():  # after a fork the parent's socket is not ours
            s = self.local.stream = Stream(self.new_conn())
        return s


__all__ = ["Stream", "Streams", "Ticket"]

"""The Redis adapter's wire layer: one connection per thread, pre-packed RESP out, replies read with hiredis, and an
adaptive busy-poll of the socket for small reads. No store logic here: ``store.py`` decides what to send.

A standalone server is spoken to through pre-packed RESP (``resp.py``) on one connection per thread (redis-py's
connection class: TLS, AUTH, ACL user, db), not through redis-py's per-command Python layers, and the replies are
parsed by a hiredis reader of our own straight off the socket. A read polls the socket briefly before blocking
(``SpinPolicy``): on a virtual machine the wake-up from a blocking recv() is most of a small read's round trip.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import time
import weakref
from typing import Any, Callable

import redis
from redis.exceptions import ResponseError

try:
    import hiredis
except ImportError:  # pragma: no cover - part of skewless[redis]
    hiredis = None

SPIN_KEYS = 1024  # reads of up to one MGET poll (measured: 1 key per view ~30% faster, 100 keys per view ~10%)
_SPIN_MISSES, _SPIN_PAUSE = 8, 256


class SpinPolicy:
    """Busy-polling for read replies, adaptively. On a virtual machine, waking a thread blocked in recv() costs tens
    of µs, which is most of a small read's latency. So a read of up to ``SPIN_KEYS`` keys first polls the socket
    without blocking for up to ``read_spin_us`` + 0.5 µs per key (the server's own time grows with the keys), then
    blocks. Where replies take longer than that (Redis across a network), polling only burns CPU: after
    ``_SPIN_MISSES`` reads in a row that it did not finish, it is off for the next ``_SPIN_PAUSE`` reads."""

    def __init__(self, budget_us: float):
        self.budget_ns = int(budget_us * 1000)
        self.misses = 0
        self.paused = 0  # reads left without polling

    def use(self) -> bool:
        if self.paused:
            self.paused -= 1
            return False
        return self.budget_ns > 0

    def done(self, finished: bool) -> None:  # races between threads only blur the counts
        if finished:
            self.misses = 0
        else:
            self.misses += 1
            if self.misses >= _SPIN_MISSES:
                self.misses, self.paused = 0, _SPIN_PAUSE


class Wire:
    """Pipelined round trips to a standalone server over this thread's own connection (made from ``pool``'s
    connection class and options; None for a cluster, whose store only uses ``bounded``). ``local.deadline`` (set by
    ``bounded``) bounds a round trip's wait."""

    def __init__(self, pool: redis.ConnectionPool | None, spin: SpinPolicy):
        self.pool = pool
        self.spin = spin
        self.local = threading.local()
        self._lock = threading.Lock()
        self._conns: weakref.WeakSet = weakref.WeakSet()

    @contextlib.contextmanager
    def bounded(self, seconds: float):
        """Within the block, on this thread, each round trip waits at most ``seconds`` for its replies."""
        local = self.local
        prev = getattr(local, "deadline", None)
        local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            local.deadline = prev

    def connection(self):
        """This thread's own connection. The pool's checkout/return (redis-py 8's metrics hooks) cost about an eighth of a
        one-entity read (bench/results/figures_in_code.md)."""
        local = self.local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # after a fork the parent's socket is not ours
            conn = self.new_connection()
            local.conn, local.pid = conn, os.getpid()
        return conn

    def new_connection(self):
        """A connection of the pool's class and options, not connected yet, closed by ``close``."""
        conn = self.pool.connection_class(**self.pool.connection_kwargs)
        with self._lock:
            self._conns.add(conn)
        return conn

    def exchange(self, send: Callable[[Any], int], *, spin: int = 0) -> list:
        """``send(conn)`` writes packed commands and says how many replies to read; one round trip. Error replies
        come back as ResponseError objects (the stream stays in sync). ``spin``: the number of keys read, to
        busy-poll for the replies first (``SpinPolicy``)."""
        conn = self.connection()
        deadline = getattr(self.local, "deadline", None)
        try:
            if deadline is not None and getattr(conn, "_sock", None) is None:
                connect_by(conn, deadline)
            n = send(conn)
            sock = getattr(conn, "_sock", None)
            if deadline is None or sock is None:
                return read_replies(conn, n, self.spin if spin else None, spin)
            timeout = sock.gettimeout()
            sock.settimeout(max(deadline - time.monotonic(), 0.001))  # bounded
            try:
                return read_replies(conn, n, self.spin if spin else None, spin)
            finally:
                sock.settimeout(timeout)
        except BaseException:
            conn.disconnect()  # replies may be left unread: reconnect on next use
            raise

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.disconnect()


def connect_by(conn, deadline: float) -> None:
    """Connect ``conn`` (TCP, then redis-py's handshake: AUTH/HELLO, CLIENT SETNAME, SELECT) by ``deadline``
    (monotonic). Left to ``send``, the handshake's replies would each wait ``socket_timeout`` (5 s by default): a
    bounded read on a thread whose connection is new (the model server's event loop, when its first inline read
    comes after the store hung) would block that long, not its bound. The connection keeps its own timeouts after."""
    timeouts = conn.socket_timeout, conn.socket_connect_timeout
    left = max(deadline - time.monotonic(), 0.001)
    conn.socket_timeout = left
    conn.socket_connect_timeout = left if timeouts[1] is None else min(timeouts[1], left)
    try:
        conn.connect()
    finally:
        conn.socket_timeout, conn.socket_connect_timeout = timeouts
    if hasattr(conn, "update_current_socket_timeout"):  # the socket's and the reply parser's (redis-py >= 7)
        conn.update_current_socket_timeout(-1)
    else:  # pragma: no cover - redis-py internals moved
        conn._sock.settimeout(timeouts[0])


def _poll(conn, sock, reader, buf: bytearray, out: list, n: int, budget_ns: int) -> bool:
    """Non-blocking reads into ``out`` until ``n`` replies or ``budget_ns`` passed; True when all arrived."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        deadline = time.perf_counter_ns() + budget_ns
        while True:
            r = reader.gets()
            if r is not False:
                out.append(r)
                if len(out) >= n:
                    return True
                continue
            try:
                got = sock.recv_into(buf)
            except BlockingIOError:
                if time.perf_counter_ns() > deadline:
                    return False
                continue
            except OSError as exc:
                raise redis.ConnectionError(f"Error while reading from {conn.host}:{conn.port}: {exc}") from exc
            if not got:
                raise redis.ConnectionError(f"Connection closed by {conn.host}:{conn.port}")
            reader.feed(buf, 0, got)
    finally:
        sock.settimeout(timeout)


def read_replies(conn, n: int, spin: SpinPolicy | None = None, keys: int = 0) -> list:
    """Read ``n`` replies straight off the connection's socket with a hiredis reader of our own: redis-py's
    per-reply Python layers cost more than the parsing (they were ~40% of a 300-key read). With ``spin``, poll
    first (``SpinPolicy``; not on TLS sockets, whose non-blocking reads signal differently)."""
    sock = getattr(conn, "_sock", None)
    if hiredis is None or sock is None:  # pragma: no cover - redis-py internals moved: the public, slower way
        out = []
        for _ in range(n):
            try:
                out.append(conn.read_response())
            except ResponseError as exc:
                out.append(exc)
        return out
    reader = hiredis.Reader(replyError=ResponseError)
    buf = bytearray(1 << 16)
    out: list = []
    if spin is not None and n and not isinstance(sock, ssl.SSLSocket) and spin.use():
        finished = _poll(conn, sock, reader, buf, out, n, spin.budget_ns + 500 * keys)
        spin.done(finished)
        if finished:
            return out
    return read_into(conn, sock, reader, buf, out, n)


def read_into(conn, sock, reader, buf: bytearray, out: list, n: int) -> list:
    """Replies parsed by ``reader`` (blocking reads of ``sock`` into ``buf``) appended to ``out`` until it holds
    ``n``; bytes past the ``n``-th reply stay in ``reader``. Socket errors become redis-py's."""
    while len(out) < n:
        r = reader.gets()
        if r is not False:
            out.append(r)
            continue
        try:
            got = sock.recv_into(buf)
        except TimeoutError as exc:  # socket.timeout
            raise redis.TimeoutError(f"Timeout reading from {conn.host}:{conn.port}") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"Error while reading from {conn.host}:{conn.port}: {exc}") from exc
        if not got:
            raise redis.ConnectionError(f"Connection closed by {conn.host}:{conn.port}")
        reader.feed(buf, 0, got)
    return out


__all__ = ["SPIN_KEYS", "SpinPolicy", "Wire", "connect_by", "read_into", "read_replies"]

"""A Tair stand-in: the TairHash (exHash) commands skewless's Tair online store sends, over a real redis-server.

    python -m skewless.localcloud.tair_emulator --port 6391 --redis 127.0.0.1:6390

A RESP server (asyncio) on loopback. Each client connection gets its own connection to the backing redis-server
(the local cloud's Redis), and every command it sends becomes exactly one command there, in order, replies passed
back byte for byte (RESP2 and RESP3):

- TairHash commands run as Lua in the backing server (``tairhash_lua``), one ``FCALL`` each, so they are atomic and
  behave in MULTI/EXEC and WATCH like the backing server's own commands. Supported, with the module's semantics
  (github.com/tair-opensource/TairHash src/tairhash.c, master; Alibaba Cloud's exHash command reference):

    EXHSET key field value [EX s] [EXAT unix-s] [PX ms] [PXAT unix-ms] [NX|XX] [VER v|ABS v] [KEEPTTL]
        1 new field, 0 overwritten, -1 when NX/XX refuses; ``ERR update version is stale`` when VER v (v != 0)
        differs from the field's version; every write bumps the version by 1 (ABS sets it); an expire of 0
        means expired at once; without EX/EXAT/PX/PXAT/KEEPTTL the field's expire time is cleared
    EXHGET key field / EXHMGET key field [field ...]      nil for a missing or expired field
    EXHDEL key field [field ...]                         the number deleted
    EXHPEXPIREAT key field unix-ms [VER v|ABS v]         and EXHPEXPIRE (ms), EXHEXPIREAT (unix-s), EXHEXPIRE (s):
        1 set, 0 no such field; bumps the version (ABS sets it); 0 means expired at once
    EXHPTTL key field / EXHTTL key field                 -2 no key, -3 no field (the module's code; the docs say
                                                         -2), -1 no expire, else the time left (ms / rounded s)
    EXHVER key field                                     -1 no key, -2 no field, else the version
    EXHLEN key [NOEXP]                                   fields, expired ones not yet deleted included unless NOEXP
    EXHGETALL key                                        field, value, ... (expired fields deleted, not listed)

  Wrong option combinations and malformed numbers answer the module's ``ERR syntax error``; a wrong argument count
  ``ERR wrong number of arguments for '<cmd>' command``; an exhash command on another type, and a plain hash command
  (HGET, HMGET, HSET ...) on an exhash key, ``WRONGTYPE``. Expired fields are deleted when touched (passive) and by
  a sweep every ``--active-expire-ms`` (1000, the module's period) over the keys whose earliest expiry has come;
  a key left without fields is deleted. Any other EXH* command (EXHINCRBY, EXHSCAN, EXHMSET, ...) is refused:
  ``ERR command '<cmd>' is not implemented by the skewless Tair emulator (TairHash subset: ...)``.
- Lua: EVAL, EVALSHA, SCRIPT LOAD and SCRIPT EXISTS take the client's scripts with the TairHash code put in front
  (``redis.call('EXHSET', ...)`` inside a script works as on Tair; SCRIPT LOAD answers the SHA1 of the client's own
  source). EVAL_RO/EVALSHA_RO are refused (the TairHash code deletes expired fields, which read-only scripts may
  not); FUNCTION/FCALL pass through untouched, without TairHash.
- MONITOR is answered here, not by the backing server: a monitor sees every command clients send to the emulator
  (as received, before translation), in Redis's MONITOR format.
- Everything else (GET/SET/HSET/..., DEL, UNLINK, SCAN, SELECT, WATCH/MULTI/EXEC, HELLO, CLIENT, PING ...) goes to
  the backing server unchanged.

Not emulated: TYPE of an exhash key answers ``zset`` (Tair: the module's type name), key-space notifications and
OBJECT/DEBUG/MEMORY on exhash keys, inline (telnet-style) commands (a protocol error), TLS and AUTH of its own
(AUTH/HELLO go to the backing server), Pub/Sub (SUBSCRIBE is refused) and RESP3 push messages (CLIENT TRACKING),
versions above 2^53 in EXHVER's answer. Data lives in the backing server (one sorted set per exhash key, see ``tairhash_lua``), which also holds one
bookkeeping key per db, ``__tairhash_emulator__:expires``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import hiredis

from . import tairhash_lua

HOST = "127.0.0.1"
log = logging.getLogger("skewless.localcloud.tair")
_SUPPORTED = {c.lower().encode() for c in tairhash_lua.COMMANDS}
_NOT_IMPLEMENTED = ("-ERR command '%s' is not implemented by the skewless Tair emulator (TairHash subset: "
                    + ", ".join(tairhash_lua.COMMANDS) + ")\r\n")


# -- RESP ------------------------------------------------------------------------------------------------------
def pack(*args) -> bytes:
    return hiredis.pack_command(args)


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(b), b)


def _scan(buf: bytearray, pos: int) -> int | None:
    """Where the RESP2/RESP3 reply starting at ``pos`` ends, or None while incomplete. Replies are passed on as the
    bytes they came in (hiredis parses them into values and would lose status-vs-bulk and RESP3 types)."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind = buf[pos:pos + 1]
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return nl + 2
    n = int(buf[pos + 1:nl])
    if kind in (b"$", b"=", b"!"):  # bulk, verbatim, blob error
        end = nl + 2 if n < 0 else nl + 4 + n
        return end if len(buf) >= end else None
    if kind in (b"*", b"~", b">", b"%", b"|"):  # array, set, push, map, attribute
        p = nl + 2
        for _ in range(max(n, 0) * (2 if kind in (b"%", b"|") else 1)):
            p = _scan(buf, p)
            if p is None:
                return None
        return _scan(buf, p) if kind == b"|" else p  # an attribute precedes the reply it annotates
    raise ConnectionError(f"not RESP from the backing server: {bytes(buf[pos:pos + 20])!r}")


class _Backend:
    """One connection to the backing redis-server: raw replies in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.buf, self.pos = bytearray(), 0

    @classmethod
    async def open(cls, host: str, port: int) -> "_Backend":
        return cls(*await asyncio.open_connection(host, port))

    async def reply(self) -> bytes:
        while True:
            end = _scan(self.buf, self.pos)
            if end is not None:
                out = bytes(self.buf[self.pos:end])
                self.pos = end
                if self.pos > 1 << 20 or self.pos == len(self.buf):
                    del self.buf[:self.pos]
                    self.pos = 0
                return out
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError("the backing redis-server closed the connection")
            self.buf += data

    async def call(self, *args) -> bytes:
        self.writer.write(pack(*args))
        await self.writer.drain()
        return await self.reply()

    def close(self) -> None:
        self.writer.close()


def _repr(arg: bytes) -> str:
    """An argument as Redis's MONITOR shows it (sdscatrepr)."""
    out = ['"']
    for c in arg:
        ch = chr(c)
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in "\n\r\t\a\b":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}[ch])
        elif 32 <= c < 127:
            out.append(ch)
        else:
            out.append(f"\\x{c:02x}")
    out.append('"')
    return "".join(out)


# -- one command ---------------------------------------------------------------------------------------------
@dataclass
class _Step:
    """What one client command becomes: a command for the backing server (and what to do with its reply) or an
    answer given here."""

    send: bytes | None = None
    local: bytes | None = None
    fix: Callable[[bytes], bytes] | None = None


@dataclass
class _Client:
    peer: str
    db: int = 0
    monitor: bool = False


class TairEmulator:
    def __init__(self, port: int, backend: tuple[str, int], active_expire_ms: int = 1000, host: str = HOST):
        self.host, self.port, self.backend = host, port, backend
        self.period = active_expire_ms / 1000
        self.scripts: dict[bytes, bytes] = {}  # SHA1 of a client's source -> SHA1 of the source the backend runs
        self.monitors: set[asyncio.StreamWriter] = set()
        self.dbs: set[int] = {0}  # where the active expiry sweeps
        self.library = tairhash_lua.function_library()

    async def _load_library(self, conn: _Backend) -> None:
        reply = await conn.call("FUNCTION", "LOAD", "REPLACE", self.library)
        if reply.startswith(b"-"):
            raise ConnectionError(f"the backing redis-server refused the TairHash library (Redis >= 7.0 is needed "
                                  f"for functions): {reply.decode(errors='replace').strip()}")

    async def run(self) -> None:
        conn = await _Backend.open(*self.backend)  # fail at once, and loudly, when the backing server is not there
        try:
            await self._load_library(conn)
        finally:
            conn.close()
        server = await asyncio.start_server(self._serve_client, self.host, self.port)
        sweeper = asyncio.create_task(self._sweep_forever())
        log.info("Tair emulator on %s:%d over redis %s:%d", self.host, self.port, *self.backend)
        try:
            async with server:
                await server.serve_forever()
        finally:
            sweeper.cancel()

    # -- active expiry -------------------------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        conn = None
        while True:
            await asyncio.sleep(self.period)
            try:
                if conn is None:
                    conn = await _Backend.open(*self.backend)
                for db in sorted(self.dbs):
                    await conn.call("SELECT", db)
                    reply = await conn.call("FCALL", tairhash_lua.LIBRARY, 0, tairhash_lua.SWEEP, 1000)
                    if reply.startswith(b"-"):  # the backing server restarted without our functions
                        await self._load_library(conn)
            except (OSError, ConnectionError) as exc:
                log.warning("active expiry: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None

    # -- clients ---------------------------------------------------------------------------------------------
    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        try:
            back = await _Backend.open(*self.backend)
            await self._load_library(back)  # cheap, and survives a restart of the backing server
        except (OSError, ConnectionError) as exc:
            writer.write(b"-ERR skewless Tair emulator: backing redis %s:%d unavailable: %s\r\n"
                         % (self.backend[0].encode(), self.backend[1], str(exc).encode()))
            writer.close()
            return
        client = _Client(peer)
        parser = hiredis.Reader()
        try:
            while data := await reader.read(1 << 16):
                if client.monitor:
                    continue  # a monitor only listens
                parser.feed(data)
                batch = []
                while True:
                    try:
                        cmd = parser.gets()
                    except hiredis.ProtocolError:
                        cmd = None
                    if cmd is False:
                        break
                    if not isinstance(cmd, list) or not cmd or not all(isinstance(a, bytes) for a in cmd):
                        writer.write(b"-ERR Protocol error: the skewless Tair emulator takes RESP arrays of bulk "
                                     b"strings only (no inline commands)\r\n")
                        await writer.drain()
                        return
                    batch.append(cmd)
                if batch:
                    await self._run(client, batch, back, writer)
        except (ConnectionError, OSError) as exc:
            log.info("client %s: %s", peer, exc)
        finally:
            self.monitors.discard(writer)
            back.close()
            writer.close()

    async def _run(self, client: _Client, batch: list[list[bytes]], back: _Backend,
                   writer: asyncio.StreamWriter) -> None:
        """A pipeline: every backing command written at once, then the replies passed on in order."""
        steps = []
        for cmd in batch:
            self._to_monitors(client, cmd)
            steps.append(self._step(client, cmd, writer))
        sends = b"".join(s.send for s in steps if s.send is not None)
        if sends:
            back.writer.write(sends)
            await back.writer.drain()
        out = []
        for s in steps:
            if s.send is None:
                out.append(s.local)
                continue
            raw = await back.reply()
            out.append(s.fix(raw) if s.fix else raw)
        writer.write(b"".join(out))
        await writer.drain()

    def _step(self, client: _Client, cmd: list[bytes], writer: asyncio.StreamWriter) -> _Step:
        name = cmd[0].lower()
        if name in _SUPPORTED:
            return _Step(pack(b"FCALL", tairhash_lua.LIBRARY, 0, *cmd))
        if name.startswith(b"exh"):
            return _Step(local=(_NOT_IMPLEMENTED % cmd[0].decode(errors="replace")).encode())
        if name == b"eval" and len(cmd) > 1:
            return _Step(pack(b"EVAL", self._adopt(cmd[1])[1], *cmd[2:]))
        if name == b"evalsha" and len(cmd) > 1:
            # unknown here: sent as it came, the backing server answers NOSCRIPT (at once, or at EXEC)
            return _Step(pack(b"EVALSHA", self.scripts.get(cmd[1].lower(), cmd[1]), *cmd[2:]))
        if name in (b"eval_ro", b"evalsha_ro"):
            return _Step(local=b"-ERR the skewless Tair emulator does not run read-only scripts (its TairHash code "
                               b"deletes expired fields): use EVAL/EVALSHA\r\n")
        if name == b"script" and len(cmd) > 2 and cmd[1].lower() == b"load":
            csha, src = self._adopt(cmd[2])
            return _Step(pack(b"SCRIPT", b"LOAD", src),
                         fix=lambda raw: _bulk(csha) if raw.startswith(b"$") else raw)
        if name == b"script" and len(cmd) > 2 and cmd[1].lower() == b"exists":
            return _Step(pack(b"SCRIPT", b"EXISTS", *[self.scripts.get(s.lower(), s) for s in cmd[2:]]))
        if name in (b"subscribe", b"psubscribe", b"ssubscribe"):
            return _Step(local=b"-ERR Pub/Sub is not supported by the skewless Tair emulator (replies are paired "
                               b"with commands one to one)\r\n")
        if name == b"monitor":
            client.monitor = True
            self.monitors.add(writer)
            return _Step(local=b"+OK\r\n")
        if name == b"select" and len(cmd) == 2:
            def selected(raw: bytes, db=cmd[1]) -> bytes:
                if raw.startswith(b"+"):
                    client.db = int(db)
                    self.dbs.add(client.db)
                return raw
            return _Step(pack(*cmd), fix=selected)
        return _Step(pack(*cmd))

    def _adopt(self, source: bytes) -> tuple[bytes, bytes]:
        """(the client's SHA1, the source the backing server runs), remembered for EVALSHA."""
        src = tairhash_lua.script_prelude(source)
        csha = hashlib.sha1(source).hexdigest().encode()
        self.scripts[csha] = hashlib.sha1(src).hexdigest().encode()
        return csha, src

    def _to_monitors(self, client: _Client, cmd: list[bytes]) -> None:
        if not self.monitors:
            return
        line = (f"+{time.time():.6f} [{client.db} {client.peer}] "
                + " ".join(_repr(a) for a in cmd) + "\r\n").encode()
        for w in list(self.monitors):
            if w.is_closing():
                self.monitors.discard(w)
            else:
                w.write(line)


# -- the local cloud ------------------------------------------------------------------------------------------
def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when the emulator answers PING through the backing server (+PONG)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(pack(b"PING"))
        return sock.recv(64).startswith(b"+PONG")


def service(state: Path):
    """The emulator as a ``Service`` named ``tair`` (port ``SKEWLESS_LOCAL_TAIR_PORT``, default 6391) over the local
    cloud's Redis (which must be up first: ``LocalCloud`` starts it before this one)."""
    from .ports import service_port
    from skewless.process import Service

    port = service_port("tair")

    def command() -> list[str]:
        return [sys.executable, "-m", "skewless.localcloud.tair_emulator", "--port", str(port),
                "--redis", f"{HOST}:{service_port('redis')}"]

    return Service("tair", HOST, port, command, lambda s: ping(s.host, s.port), start_timeout=15, cwd=state)


def main() -> None:
    ap = argparse.ArgumentParser(description="A Tair (TairHash) emulator over a real redis-server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--redis", required=True, help="the backing redis-server, host:port")
    ap.add_argument("--active-expire-ms", type=int,
                    default=int(os.environ.get("SKEWLESS_TAIR_ACTIVE_EXPIRE_MS", "1000")))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    host, _, port = args.redis.rpartition(":")
    emulator = TairEmulator(args.port, (host or HOST, int(port)), args.active_expire_ms)
    try:
        asyncio.run(emulator.run())
    except (OSError, ConnectionError) as exc:
        sys.exit(f"skewless Tair emulator: cannot use the backing redis-server at {args.redis}: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""Redis online store (ElastiCache / MemoryDB / any Redis >= 6.2), through redis-py with hiredis.

    online:
      url: redis://[[user]:password@]host:port/db      # rediss:// for TLS
      options:
        key_prefix: my_project      # default "skewless"; every key starts with "<prefix>:"
        cluster: false              # true: Redis Cluster (redis-py's RedisCluster; db must be 0)
        username: ..., password: ${REDIS_PASSWORD}   # instead of putting them in the URL
        ssl_ca_certs: ca.pem        # TLS: any redis-py ssl_* option (relative paths: the repo's)
        connect_timeout: 0.5        # seconds per connection attempt
        socket_timeout: 5           # seconds per reply
        retries: 2                  # extra attempts after a connection failure, with exponential backoff
        backoff_base: 0.05, backoff_cap: 0.5
        write_batch_rows: 128       # rows per script call: Redis serves nobody else meanwhile (~1 ms)
        ttl_grace_seconds: 0        # keys of views with a TTL expire at event time + ttl + grace

Layout and encodings: ``redis_codec``. Newest-wins is decided on the server by one Lua script per batch of rows
(``redis_lua``): a stored row whose (event, created, batch, row) is greater is never replaced.

Reads: every (view, entity) of one ``read_raw`` call is one HMGET of the requested features plus the event time,
all written to the socket at once and answered in one round trip. A standalone server is spoken to through
pre-packed RESP on one connection per thread (redis-py's connection class: TLS, AUTH, ACL user, db; hiredis parses
the replies), not through redis-py's per-command Python layers. Writes: rows are encoded for a whole Arrow slice
at once (``redis_codec``) and sent as script calls of ``write_batch_rows`` rows, pipelined.

Throughput (2-core machine, Redis 7.0, 10 Float64 features): ~5.5 µs of Redis CPU per row written, so Redis, not
Python (~1 µs per row), bounds materialize at ~180k rows written/s. Measured parts: a script that returns at once
already costs ~2.3 µs per row (parsing 13 arguments and turning each into a Lua string); a plain pipelined HSET of
the same 12 fields costs ~3.4 µs per new key. Packing a row's values into one argument (unpacked in Lua) or HGET
in place of HMGET made no measurable difference; the client's part is to keep Redis busy (``_passes``).

TTL: keys of a view with a TTL carry PEXPIREAT event time + ttl (+ grace), so Redis frees them; the read-time TTL
of ``OnlineStore.read`` still applies, so a value past its TTL is never returned even before Redis evicts it.
After eviction a read reports NOT_FOUND where an embedded store reports EXPIRED (the values are null either way);
``ttl_grace_seconds`` keeps EXPIRED for that long.

Failures: connection errors are retried with exponential backoff (defaults: 3 attempts, < 2 s even against a
black hole), then raised as ``StoreUnavailable`` naming host:port (never the password). Each script call is
atomic, and rows are independent upserts, so an interrupted ``write`` leaves some batches applied and others not:
every stored row is still a real row that won, and repeating the write (a materialize rerun resumes from its
checkpoint) converges to the same state. A script call that fails inside Redis (out of memory) keeps the rows it
applied before the failing one: the same reasoning holds.

Least-privilege ACL (tested): ``~<prefix>:* +hmget +hset +hget +hdel +hgetall +evalsha +script|load +scan +unlink
+pexpireat +persist +ping +client|setname +select``.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pyarrow as pa
import redis

from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (AuthenticationError, AuthorizationError, NoScriptError, RedisClusterException,
                              RedisError, ResponseError)
from redis.retry import Retry

from skewless.definitions import FeatureView
from skewless.errors import ConfigError, StoreUnavailable
from skewless.online.base import Key, OnlineStore

from . import redis_codec as codec
from . import redis_lua as lua

try:
    import hiredis
except ImportError:  # pragma: no cover - part of skewless[aws]
    hiredis = None

_DEFAULTS: dict[str, Any] = {"key_prefix": "skewless", "cluster": False, "connect_timeout": 0.5, "socket_timeout": 5.0,
                             "retries": 2, "backoff_base": 0.05, "backoff_cap": 0.5, "write_batch_rows": 128,
                             "ttl_grace_seconds": 0, "username": None, "password": None, "max_connections": None}
_ENCODE_ROWS = 16_384  # rows encoded per vectorized pass (bounds memory; sending overlaps the next pass)
_FIRST_ROWS = 2_048  # the first pass of a write is short: the server idles until its first call arrives
_US = 1_000_000


def from_url(url: str, repo_path: Path | str | None, options: dict | None) -> "RedisOnlineStore":
    return RedisOnlineStore(url, options or {}, Path(repo_path) if repo_path else None)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _retryable(exc: Exception) -> bool:
    # wrong credentials or a missing permission do not heal by retrying
    return not isinstance(exc, (AuthenticationError, AuthorizationError))


class RedisOnlineStore(OnlineStore):
    supports_per_field_ttl = False
    supports_concurrent_writers = True
    evicts_expired = True
    read_command = "HMGET"  # what each (view, entity) read sends (a subclass may use a same-reply command)

    def __init__(self, url: str, options: dict | None = None, repo_path: Path | None = None):
        opts = dict(options or {})
        ssl_opts = {k: opts.pop(k) for k in list(opts) if k.startswith("ssl_")}
        unknown = set(opts) - set(_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown Redis online store options {sorted(unknown)}; known: "
                              f"{sorted(_DEFAULTS)} and redis-py's ssl_* options")
        self.options = {**_DEFAULTS, **opts}
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ConfigError(f"not a Redis URL: {mask_url(url)} (use redis:// or rediss://)")
        self.url = mask_url(url)
        try:
            self.endpoint = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {self.url}: {exc}") from None
        self._secret = self.options["password"] or parts.password
        prefix = str(self.options["key_prefix"])
        if not prefix or any(c in prefix for c in "{} \r\n"):
            raise ConfigError(f"key_prefix {prefix!r} must be non-empty, without braces or whitespace")
        self.prefix = prefix.encode()
        self.cluster = bool(self.options["cluster"])
        self._batch_rows = max(1, int(self.options["write_batch_rows"]))
        self._grace_us = int(float(self.options["ttl_grace_seconds"]) * _US)
        self.eviction_grace = timedelta(microseconds=self._grace_us)
        self._retry = Retry(ExponentialBackoff(cap=float(self.options["backoff_cap"]),
                                               base=float(self.options["backoff_base"])),
                            int(self.options["retries"]), supported_errors=(redis.ConnectionError, redis.TimeoutError))
        for k in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_ca_path"):
            if ssl_opts.get(k) and repo_path is not None and not Path(ssl_opts[k]).is_absolute():
                ssl_opts[k] = str(repo_path / ssl_opts[k])
        # One retry layer (ours, around whole operations): redis-py's own would multiply attempts.
        self._kwargs = dict(socket_connect_timeout=float(self.options["connect_timeout"]),
                            socket_timeout=float(self.options["socket_timeout"]), retry=Retry(NoBackoff(), 0),
                            client_name="skewless", **ssl_opts)
        for k in ("username", "password", "max_connections"):
            if self.options[k] is not None:
                self._kwargs[k] = self.options[k]
        self._raw_url = url
        self._lock = threading.Lock()
        self._client: Any = None
        self._pool: redis.ConnectionPool | None = None
        self._plans: dict[tuple, codec.ReadPlan] = {}
        self._local = threading.local()
        self._conns: weakref.WeakSet = weakref.WeakSet()
        self._scripts: dict[int, tuple[str, bytes]] = {}  # feature count -> (source, sha)
        self.meta_key = self.prefix + b":__meta"
        if not self.cluster:  # lazily connecting: building the store never touches the network
            try:
                self._pool = redis.ConnectionPool.from_url(url, **self._kwargs)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"invalid Redis URL or options for {self.url}: {self._clean(exc)}") from None
            self._client = redis.Redis(connection_pool=self._pool)

    # -- plumbing ------------------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:  # cluster: discovering the slot map needs the network, so it is retried too
            with self._lock:
                if self._client is None:
                    from redis.cluster import RedisCluster

                    self._client = self._call("connect", lambda: RedisCluster.from_url(self._raw_url, **self._kwargs))
        return self._client

    def _clean(self, exc: BaseException) -> str:
        """The error's text without the password (redis-py does not put it there; this makes sure)."""
        msg = f"{type(exc).__name__}: {exc}"
        for secret in {self._secret, unquote(self._secret or "")} - {None, ""}:
            msg = msg.replace(secret, "***")
        return msg

    def _call(self, op: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with bounded retries; translate redis-py's errors at the edge."""
        try:
            return self._retry.call_with_retry(fn, lambda _exc: None, is_retryable=_retryable)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise StoreUnavailable(f"Redis online store {self.url}: {op} failed at {self.endpoint}: "
                                   f"{self._clean(exc)}", endpoint=self.endpoint) from exc

    def _conn(self):
        """This thread's own connection. The pool's checkout/return costs ~9 µs in redis-py 8 (its metrics
        hooks): an eighth of a one-entity read. Same connection class and options as the pool's."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # after a fork the parent's socket is not ours
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._conns.add(conn)
        return conn

    def _exchange(self, send: Callable[[Any], int]) -> list:
        """Standalone: ``send(conn)`` writes packed commands and says how many replies to read; one round trip.
        Error replies come back as ResponseError objects (the stream stays in sync)."""
        conn = self._conn()
        try:
            return _replies(conn, send(conn))
        except BaseException:
            conn.disconnect()  # replies may be left unread: reconnect on next use
            raise

    def _script(self, nf: int) -> tuple[str, bytes]:
        s = self._scripts.get(nf)
        if s is None:
            src = lua.upsert_script(nf)
            s = self._scripts[nf] = (src, lua.sha1(src).encode())
        return s

    # -- write ---------------------------------------------------------------------------------------------
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        src, sha = self._script(len(view.feature_names))
        keep_us = None if not view.ttl else view.ttl // timedelta(microseconds=1) + self._grace_us
        head = b"%b:%b:{" % (self.prefix, view.name.encode())
        run = self._write_cluster if self.cluster else self._write_standalone
        for attempt in (0, 1):
            errors = self._call("write", lambda: run(view, rows, head, sha, keep_us))
            if not errors:
                return rows.num_rows
            if attempt == 0 and all(_no_script(e) for e in errors):
                # first use on this server (or after SCRIPT FLUSH): load it; a NOSCRIPT call changed nothing
                self._call("script load", lambda: self.client.script_load(src))
                continue
            raise StoreUnavailable(f"Redis online store {self.url}: write to view {view.name!r} failed at "
                                   f"{self.endpoint}: {self._clean(errors[0])}", endpoint=self.endpoint) from errors[0]
        raise AssertionError("unreachable")

    def _encode(self, view: FeatureView, batch: pa.RecordBatch, keep_us: int | None):
        fields = view.features
        feats = [f.name for f in fields]
        cols = [codec.encode_value(batch.column(f.name), f.dtype) for f in fields]
        feats, cols = codec.sort_fixed_first(feats, cols)
        ev, ordr, exp = codec.order_columns(batch, keep_us)
        header = [b"1" if exp is not None else b"0"] + [f.encode() for f in feats]
        return codec.entity_arrow(view, batch), ev, ordr, exp, cols, header

    def _write_standalone(self, view, rows, head, sha, keep_us) -> list:
        calls_head = b"*%%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n" % sha

        def send(conn) -> int:
            calls = 0
            for batch in _passes(rows):
                entity, ev, ordr, exp, cols, header = self._encode(view, batch, keep_us)
                stride = 2 + (exp is not None) + len(cols)
                keys = codec.Slicer(codec.framed_keys(head, entity))
                argv = codec.Slicer(codec.framed_rows(ev, ordr, exp, cols))
                argv_head = b"".join(codec.bulk(h) for h in header)
                n = batch.num_rows
                for i in range(0, n, self._batch_rows):
                    m = min(n, i + self._batch_rows) - i
                    total = 3 + m + len(header) + m * stride
                    conn.send_packed_command([calls_head % total + codec.bulk(b"%d" % m), keys(i, i + m), argv_head,
                                              argv(i, i + m)], check_health=False)
                    calls += 1
            return calls
        return [r for r in self._exchange(send) if isinstance(r, Exception)]

    def _write_cluster(self, view, rows, head, sha, keep_us) -> list:
        """A script may only touch keys of one slot in a cluster: rows are grouped by slot, one call per group,
        all sent through one cluster pipeline (one round trip per node)."""
        from redis.crc import key_slot

        client = self.client
        errors = []
        for batch in rows.to_batches(max_chunksize=_ENCODE_ROWS):
            entity, ev, ordr, exp, cols, header = self._encode(view, batch, keep_us)
            keys = [head + e + b"}" for e in entity.to_pylist()]
            per_row = [c.to_pylist() for c in [ev, ordr] + ([exp] if exp is not None else [])]
            per_row += [c.raw().to_pylist() for c in cols]
            groups: dict[int, list[int]] = {}
            for i, k in enumerate(keys):
                groups.setdefault(key_slot(k), []).append(i)
            pipe = client.pipeline(transaction=False)
            for idx in groups.values():
                for start in range(0, len(idx), self._batch_rows):
                    part = idx[start:start + self._batch_rows]
                    argv = header + [col[i] for i in part for col in per_row]
                    pipe.execute_command("EVALSHA", sha, len(part), *[keys[i] for i in part], *argv)
            errors += [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
        return errors

    # -- read ----------------------------------------------------------------------------------------------
    def _plan(self, view: FeatureView, feats: list[str]) -> codec.ReadPlan:
        ck = (view.name, tuple(feats))
        plan = self._plans.get(ck)
        if plan is not None and plan.view is view:  # the common case: the registry state's own view object
            return plan
        head = b"%b:%b:{" % (self.prefix, view.name.encode())
        fresh = codec.ReadPlan(view, feats, head, self.read_command.encode())
        if plan is None or plan.signature != fresh.signature:
            plan = self._plans[ck] = fresh
        plan.view = view  # a refreshed registry state: same definition, new object
        return plan

    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        plans, spans, cmds = [], [], []
        for view, feats, keys in requests:
            plan = self._plan(view, feats)
            plans.append(plan)
            nulls = [i for i, k in enumerate(keys) if None in k]  # a null key is never stored: not asked for
            live = [k for k in keys if None not in k] if nulls else keys
            start = len(cmds)
            cmds.extend(map(plan.command, live) if not self.cluster else [(plan.key(k), plan.fields) for k in live])
            spans.append((start, len(cmds), nulls))
        replies = self._call("read", lambda: self._read_replies(cmds)) if cmds else []
        out = []
        for plan, (a, b, nulls) in zip(plans, spans):
            part = replies[a:b]
            try:
                got = list(map(plan.decode, part))
            except TypeError:  # an error reply (an exception object) in place of a list: no per-reply check
                err = next((r for r in part if isinstance(r, Exception)), None)
                if err is None:
                    raise
                raise StoreUnavailable(f"Redis online store {self.url}: read failed at {self.endpoint}: "
                                       f"{self._clean(err)}", endpoint=self.endpoint) from err
            for i in nulls:  # ascending: each insert lands at its final position
                got.insert(i, None)
            out.append(got)
        return out

    def _read_replies(self, cmds: list) -> list:
        if not self.cluster:
            def send(conn) -> int:
                conn.send_packed_command([b"".join(cmds)], check_health=False)
                return len(cmds)
            return self._exchange(send)
        pipe = self.client.pipeline(transaction=False)
        for key, fields in cmds:
            pipe.execute_command(self.read_command, key, *fields)
        return pipe.execute(raise_on_error=False)

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        v = self._call("get_meta", lambda: self.client.hget(self.meta_key, key))
        return None if v is None else v.decode()

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._call("set_meta", lambda: self.client.hdel(self.meta_key, key))
        else:
            self._call("set_meta", lambda: self.client.hset(self.meta_key, key, value))

    def list_meta(self, prefix: str) -> dict[str, str]:
        items = self._call("list_meta", lambda: self.client.hgetall(self.meta_key))
        out = {k.decode(): v.decode() for k, v in items.items()}
        return {k: v for k, v in sorted(out.items()) if k.startswith(prefix)}

    def drop_view(self, view: str) -> None:
        """SCAN + UNLINK the view's keys (in a cluster: on every primary). Writes racing with it may survive."""
        pattern = _glob_escape(b"%b:%b:{" % (self.prefix, view.encode())) + b"*"

        def drop():
            client = self.client
            batch = []
            for k in client.scan_iter(match=pattern, count=1000):
                batch.append(k)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        self._call("drop_view", drop)

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.disconnect()
        if self._client is not None:
            self._client.close()
        if self._pool is not None:
            self._pool.disconnect()


def _passes(rows: pa.Table):
    """``rows`` in encoding passes: a short one first (its calls reach the server sooner), then full ones, each
    encoded while the server works through the calls already sent."""
    first = min(rows.num_rows, _FIRST_ROWS)
    for part in (rows.slice(0, first).to_batches(), rows.slice(first).to_batches(max_chunksize=_ENCODE_ROWS)):
        yield from (b for b in part if b.num_rows)


def _replies(conn, n: int) -> list:
    """Read ``n`` replies straight off the connection's socket with a hiredis reader of our own: redis-py's
    per-reply Python layers cost more than the parsing (they were ~40% of a 300-key read)."""
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
    out = []
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


def _no_script(exc: Exception) -> bool:
    return isinstance(exc, NoScriptError) or str(exc).startswith("NOSCRIPT")


def _glob_escape(b: bytes) -> bytes:
    return re.sub(rb"([\\*?\[\]])", rb"\\\1", b)


__all__ = ["RedisOnlineStore", "from_url", "mask_url"]

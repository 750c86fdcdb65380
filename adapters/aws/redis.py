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
        read_spin_us: 100           # a read polls the socket this long (+0.5 µs/key) before blocking (0: never)

Layout: one string per (view, entity) holding the row's order tuple, the id of its layout and its values
(``redis_rows``; key and value encodings: ``redis_codec``).

Writes, newest wins on the server, in two pipelined passes: every row is first sent as ``SET key value NX [PXAT
t]``, which stores it only when the key does not exist yet (then nothing older or newer can be there); the rows
whose key existed then go through one Lua script call per ``write_batch_rows`` rows (``redis_lua``), which replaces
a stored row only when the new (event, created, batch, row) is strictly greater. Rows are encoded for a whole Arrow
slice at once and sent while the next slice is encoded. Measured on this 2-core machine (Redis 7.0, 10 Float64
features): ~1.1 µs of Redis CPU per new key in the materialize benchmark (~1.9 µs in a bare pipelined test),
~3.1-3.5 µs per existing key (script), against ~5.5 µs for the earlier hash layout's scripted HSET + PEXPIREAT.

Reads: the keys of every (view, entity) of one ``read_raw`` call go out as one MGET (per 1,024 keys), answered in
one round trip. A standalone server is spoken to through pre-packed RESP on one connection per thread (redis-py's
connection class: TLS, AUTH, ACL user, db; hiredis parses the replies), not through redis-py's per-command Python
layers. A read polls the socket briefly before blocking (``read_spin_us``, ``_SpinPolicy``): on a virtual machine the
wake-up from a blocking recv() is most of a small read's round trip.

TTL: keys of a view with a TTL carry PXAT event time + ttl (+ grace), so Redis frees them; the read-time TTL of
``OnlineStore.read`` still applies, so a value past its TTL is never returned even before Redis evicts it. After
eviction a read reports NOT_FOUND where an embedded store reports EXPIRED (the values are null either way);
``ttl_grace_seconds`` keeps EXPIRED for that long. A row of a view without TTL clears its key's expire time.

Failures: connection errors are retried with exponential backoff (defaults: 3 attempts, < 2 s even against a
black hole), then raised as ``StoreUnavailable`` naming host:port (never the password). Inside
``bounded_reads(s)`` a read on that thread gets one attempt of at most ``s`` seconds (the model server's event loop
uses it). Each command and script call is atomic, and rows are independent upserts, so an interrupted ``write``
leaves some rows applied and others not: every stored row is still a real row that won, and repeating the write (a
materialize rerun resumes from its checkpoint) converges to the same state.

Least-privilege ACL (tested): ``~<prefix>:* +set +mget +getrange +evalsha +script|load +hget +hset +hsetnx +hdel
+hgetall +scan +unlink +ping +client|setname +select`` (GETRANGE from the script; the H* commands keep the
``<prefix>:__meta`` hash of checkpoints and the ``<prefix>:__layouts`` hash of row layouts).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import ssl
import threading
import time
import weakref
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (AuthenticationError, AuthorizationError, NoScriptError, RedisClusterException,
                              RedisError, ResponseError)
from redis.retry import Retry

from skewless.definitions import FeatureView
from skewless.errors import ConfigError, StoreUnavailable, ValidationError
from skewless.online.base import Key, OnlineStore
from skewless.redact import redact_url

from . import redis_codec as codec
from . import redis_lua as lua
from . import redis_rows as rowcodec

try:
    import hiredis
except ImportError:  # pragma: no cover - part of skewless[aws]
    hiredis = None

_DEFAULTS: dict[str, Any] = {"key_prefix": "skewless", "cluster": False, "connect_timeout": 0.5, "socket_timeout": 5.0,
                             "retries": 2, "backoff_base": 0.05, "backoff_cap": 0.5, "write_batch_rows": 128,
                             "ttl_grace_seconds": 0, "username": None, "password": None, "max_connections": None,
                             "read_spin_us": 100}
_ENCODE_ROWS = 16_384  # rows encoded per vectorized pass (bounds memory; sending overlaps the next pass)
_FIRST_ROWS = 2_048  # the first pass of a write is short: the server idles until its first call arrives
_SEND_ROWS = 4_096  # SET commands per socket write
# SCAN calls (COUNT 1000) holds_rows makes before answering "cannot tell": a store holding the view finds a key in
# the first call or so, an emptied one ends the scan at once; only a large keyspace shared with other data and
# without the view's keys walks the whole budget (~32k keys).
_HOLDS_SCANS = 32
_MGET_KEYS = 1_024  # keys per MGET of a read (one command holds the server: a huge read is cut into several)
_US = 1_000_000


def from_url(url: str, repo_path: Path | str | None, options: dict | None) -> "RedisOnlineStore":
    return RedisOnlineStore(url, options or {}, Path(repo_path) if repo_path else None)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by *** (the SDK's one redaction, which never raises on a bad URL)."""
    return redact_url(url)


def _retryable(exc: Exception) -> bool:
    # wrong credentials or a missing permission do not heal by retrying
    return not isinstance(exc, (AuthenticationError, AuthorizationError))


class RedisOnlineStore(OnlineStore):
    kind = "Redis online store"  # how errors name it
    supports_per_field_ttl = False
    supports_concurrent_writers = True
    evicts_expired = True

    def __init__(self, url: str, options: dict | None = None, repo_path: Path | None = None):
        opts = dict(options or {})
        ssl_opts = {k: opts.pop(k) for k in list(opts) if k.startswith("ssl_")}
        unknown = set(opts) - set(_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown Redis online store options {sorted(unknown)}; known: "
                              f"{sorted(_DEFAULTS)} and redis-py's ssl_* options")
        self.options = {**_DEFAULTS, **opts}
        self.url = mask_url(url)
        try:  # a bad port or IPv6 literal: urlsplit or .port raise ValueError
            parts = urlsplit(url)
            self.endpoint = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {self.url}: {exc}") from None
        if parts.scheme not in ("redis", "rediss"):
            raise ConfigError(f"not a Redis URL: {self.url} (use redis:// or rediss://)")
        self._secret = self.options["password"] or parts.password
        prefix = str(self.options["key_prefix"])
        if not prefix or any(c in prefix for c in "{} \r\n"):
            raise ConfigError(f"key_prefix {prefix!r} must be non-empty, without braces or whitespace")
        self.prefix = prefix.encode()
        self.cluster = bool(self.options["cluster"])
        self._batch_rows = max(1, int(self.options["write_batch_rows"]))
        self._spin = _SpinPolicy(max(0.0, float(self.options["read_spin_us"])))
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
        self._plans: dict[tuple, rowcodec.RowPlan] = {}
        self._layouts: dict[bytes, rowcodec.Layout] = {}  # recorded (or read) layouts by id
        self._sha = lua.sha1(lua.ROW_UPSERT).encode()
        self._local = threading.local()
        self._conns: weakref.WeakSet = weakref.WeakSet()
        self.meta_key = self.prefix + b":__meta"
        self.layouts_key = self.prefix + b":__layouts"  # layout id (hex) -> its fields (redis_rows.Layout)
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

    @property
    def can_bound_reads(self) -> bool:
        """Whether ``bounded_reads`` bounds anything: a standalone server's reads (not a cluster's)."""
        return not self.cluster

    @contextlib.contextmanager
    def bounded_reads(self, seconds: float):
        """Within the block, on this thread, each read of a standalone server waits at most ``seconds`` in all for
        its replies, in one attempt (no retry), else StoreUnavailable: for a caller that must not block long (the
        model server runs small reads on its event loop) and has a slower path to fall back to. A cluster's reads
        go through redis-py and keep their own timeouts."""
        local = self._local
        prev = getattr(local, "deadline", None)
        local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            local.deadline = prev

    def _call(self, op: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with bounded retries (one attempt inside ``bounded_reads``); translate redis-py's errors at
        the edge."""
        try:
            if getattr(self._local, "deadline", None) is not None:
                return fn()
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

    def _exchange(self, send: Callable[[Any], int], *, spin: int = 0) -> list:
        """Standalone: ``send(conn)`` writes packed commands and says how many replies to read; one round trip.
        Error replies come back as ResponseError objects (the stream stays in sync). ``spin``: the number of keys
        read, to busy-poll for the replies first (``_SpinPolicy``)."""
        conn = self._conn()
        deadline = getattr(self._local, "deadline", None)
        try:
            n = send(conn)
            sock = getattr(conn, "_sock", None)
            if deadline is None or sock is None:
                return _replies(conn, n, self._spin if spin else None, spin)
            timeout = sock.gettimeout()
            sock.settimeout(max(deadline - time.monotonic(), 0.001))  # bounded_reads
            try:
                return _replies(conn, n, self._spin if spin else None, spin)
            finally:
                sock.settimeout(timeout)
        except BaseException:
            conn.disconnect()  # replies may be left unread: reconnect on next use
            raise

    # -- write ---------------------------------------------------------------------------------------------
    def _layout(self, view: FeatureView) -> rowcodec.Layout:
        """The view's row layout, recorded in the layouts hash once per store (readers decode older rows by it)."""
        layout = rowcodec.Layout.of(view)
        if layout.id not in self._layouts:
            self._call("record layout", lambda: self.client.hsetnx(self.layouts_key, layout.hex, layout.json))
            self._layouts[layout.id] = layout
        return layout

    def _layout_of(self, lid: bytes) -> rowcodec.Layout:
        layout = self._layouts.get(lid)
        if layout is None:
            text = self._call("read layout", lambda: self.client.hget(self.layouts_key, lid.hex()))
            if text is None:
                raise ValidationError(f"Redis online store {self.url}: a stored row names layout {lid.hex()}, which "
                                      f"is not recorded in {self.layouts_key.decode()}: re-materialize the view")
            layout = self._layouts[lid] = rowcodec.Layout.from_json(text.decode())
        return layout

    def write(self, view: FeatureView, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        layout = self._layout(view)
        run = self._write_cluster if self.cluster else self._write_standalone
        return self._scripted_write(view, rows, lua.ROW_UPSERT, lambda head, keep_us: run(view, layout, rows, head,
                                                                                            keep_us))

    def _scripted_write(self, view: FeatureView, rows: pa.Table, script: str, run: Callable) -> int:
        """``run(key head, keep_us)`` -> error replies, with ``script`` loaded on NOSCRIPT (first use on this server,
        or after SCRIPT FLUSH) and the write run again: a NOSCRIPT call changed nothing, and rows already stored
        lose to themselves (not newer)."""
        keep_us = None if not view.ttl else view.ttl // timedelta(microseconds=1) + self._grace_us
        head = b"%b:%b:{" % (self.prefix, view.name.encode())
        for attempt in (0, 1):
            errors = self._call("write", lambda: run(head, keep_us))
            if not errors:
                return rows.num_rows
            if attempt == 0 and all(_no_script(e) for e in errors):
                self._call("script load", lambda: self.client.script_load(script))
                continue
            raise StoreUnavailable(f"{self.kind} {self.url}: write to view {view.name!r} failed at {self.endpoint}: "
                                   f"{self._clean(errors[0])}", endpoint=self.endpoint) from errors[0]
        raise AssertionError("unreachable")

    def _encoded(self, view, layout, rows, head, keep_us):
        """Per encoding pass: (framed keys, framed values, framed expire times or None)."""
        for batch in _passes(rows):
            keys = codec.framed_keys(head, codec.entity_arrow(view, batch))
            values = rowcodec.bulk_strings(rowcodec.encode_values(view, layout, batch))
            exp = None if keep_us is None else rowcodec.bulk_numbers(rowcodec.expire_at_ms(batch, keep_us))
            yield keys, values, exp

    def _write_standalone(self, view, layout, rows, head, keep_us) -> list:
        """A new key takes its row by ``SET key value NX [PXAT t]``, with no script (the common case: a first
        materialization); a row whose key exists goes through the newest-wins script, ``write_batch_rows`` per call.
        The first short pass is sent as SET NX and its replies read: when most of its keys existed (a
        re-materialization), the rest goes straight to the script; otherwise the rest is sent as SET NX too, and the
        rows it refused go to the script at the end. Any order is right: each command is an insert-if-absent or a
        compare-and-set."""
        passes = self._encoded(view, layout, rows, head, keep_us)
        errors, refused = self._send(passes, 1, nx=True)
        existing = sum(len(r[0]) for r in refused)
        first_rows = min(rows.num_rows, _FIRST_ROWS)
        more, later = self._send(passes, None, nx=existing * 2 <= first_rows)
        return errors + more + (self._send(iter(refused + later), None, nx=False)[0] if refused or later else [])

    def _send(self, parts, limit: int | None, *, nx: bool) -> tuple[list, list]:
        """Send up to ``limit`` of ``parts`` ((framed keys, values, expire times)) in one round trip, as SET NX
        (``nx``) or as script calls. Returns (error replies, the parts' rows that SET NX refused)."""
        sent: list = []
        head_call = b"*%%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n" % self._sha + b"%b"

        def send(conn) -> int:
            replies = 0
            for keys, values, exp in itertools.islice(parts, limit):
                n = len(keys)
                if nx:
                    cmds = codec.Slicer(rowcodec.set_nx_commands(keys, values, exp))
                    for i in range(0, n, _SEND_ROWS):
                        conn.send_packed_command([cmds(i, min(n, i + _SEND_ROWS))], check_health=False)
                    replies += n
                else:
                    argv = codec.Slicer(values if exp is None else
                                        pc.binary_join_element_wise(values, exp, pa.scalar(b"", codec.BIN)))
                    ks, stride, flag = codec.Slicer(keys), 1 if exp is None else 2, b"$1\r\n%d\r\n" % (exp is not None)
                    for i in range(0, n, self._batch_rows):
                        m = min(n, i + self._batch_rows) - i
                        conn.send_packed_command([head_call % (4 + m + m * stride, codec.bulk(b"%d" % m)),
                                                  ks(i, i + m), flag, argv(i, i + m)], check_health=False)
                        replies += 1
                sent.append((keys, values, exp))
            return replies
        replies = self._exchange(send)
        errors = [r for r in replies if isinstance(r, Exception)]
        if not nx or errors:
            return errors, []
        refused, pos = [], 0
        for keys, values, exp in sent:
            mine = replies[pos:pos + len(keys)]
            pos += len(keys)
            if None in mine:
                idx = pa.array(np.flatnonzero(np.fromiter((r is None for r in mine), bool, len(mine))))
                refused.append((keys.take(idx), values.take(idx), None if exp is None else exp.take(idx)))
        return errors, refused

    def _write_cluster(self, view, layout, rows, head, keep_us) -> list:
        """The same two passes through redis-py's cluster pipeline (one round trip per node). A script may only
        touch keys of one slot: the second pass groups rows by slot, one call per group."""
        from redis.crc import key_slot

        client = self.client
        errors = []
        for batch in rows.to_batches(max_chunksize=_ENCODE_ROWS):
            keys = [head + e + b"}" for e in codec.entity_arrow(view, batch).to_pylist()]
            values = rowcodec.encode_values(view, layout, batch).to_pylist()
            exp = None if keep_us is None else rowcodec.expire_at_ms(batch, keep_us).tolist()
            pipe = client.pipeline(transaction=False)
            for i, k in enumerate(keys):
                pipe.execute_command("SET", k, values[i], "NX", *(() if exp is None else ("PXAT", exp[i])))
            replies = pipe.execute(raise_on_error=False)
            errors += [r for r in replies if isinstance(r, Exception)]
            groups: dict[int, list[int]] = {}
            for i, r in enumerate(replies):
                if r is None:
                    groups.setdefault(key_slot(keys[i]), []).append(i)
            if not groups:
                continue
            pipe = client.pipeline(transaction=False)
            for idx in groups.values():
                for start in range(0, len(idx), self._batch_rows):
                    part = idx[start:start + self._batch_rows]
                    argv = [b"0" if exp is None else b"1"]
                    for i in part:
                        argv += [values[i]] if exp is None else [values[i], exp[i]]
                    pipe.execute_command("EVALSHA", self._sha, len(part), *[keys[i] for i in part], *argv)
            errors += [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
        return errors

    # -- read ----------------------------------------------------------------------------------------------
    def _plan(self, view: FeatureView, feats: list[str]) -> rowcodec.RowPlan:
        return self._cached_plan(self._plans, view, feats, lambda head: rowcodec.RowPlan(view, feats, head,
                                                                                          self._layout_of))

    def _cached_plan(self, cache: dict, view: FeatureView, feats: list[str], make: Callable[[bytes], Any]):
        """The read plan of (view, features) from ``cache``, rebuilt only when the definition changed."""
        ck = (view.name, tuple(feats))
        plan = cache.get(ck)
        if plan is not None and plan.view is view:  # the common case: the registry state's own view object
            return plan
        fresh = make(b"%b:%b:{" % (self.prefix, view.name.encode()))
        if plan is None or plan.signature != fresh.signature:
            plan = cache[ck] = fresh
        plan.view = view  # a refreshed registry state: same definition, new object
        return plan

    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        return [list(map(plan.decode, values)) for plan, values in self._fetch(requests)]

    def read_raw_columns(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                         ) -> list[tuple[list[int | None], list[list[Any]]]]:
        return [plan.decode_columns(values) for plan, values in self._fetch(requests)]

    def _fetch(self, requests) -> list[tuple[rowcodec.RowPlan, list]]:
        """Per request, its plan and the stored values of its keys (None: not stored; a null key is never asked)."""
        plans, spans, keys = [], [], []
        # Views read for the same key list (the usual case: one entity, several views) share its null check and
        # encoding. An entry holds its list, so the list's id cannot be reused while the entry exists.
        entities: dict[tuple, tuple[list, list[int], list[bytes]]] = {}
        for view, feats, ks in requests:
            plan = self._plan(view, feats)
            plans.append(plan)
            hit = entities.get((id(ks), plan.key_types))
            if hit is None or hit[0] is not ks:
                nulls = [i for i, k in enumerate(ks) if None in k]
                live = [k for k in ks if None not in k] if nulls else ks
                hit = entities[(id(ks), plan.key_types)] = (ks, nulls, list(map(plan.entity, live)))
            _, nulls, ents = hit
            start = len(keys)
            keys.extend(map(plan.key_of if self.cluster else plan.bulk_key_of, ents))
            spans.append((start, len(keys), nulls))
        values = self._call("read", lambda: self._mget(keys)) if keys else []
        out = []
        for plan, (a, b, nulls) in zip(plans, spans):
            got = values[a:b]
            for i in nulls:  # ascending: each insert lands at its final position
                got.insert(i, None)
            out.append((plan, got))
        return out

    def _mget(self, keys: list) -> list:
        """The values of ``keys`` (framed bulk strings; raw keys in cluster mode), None where absent or not a
        string: one MGET per ``_MGET_KEYS`` keys, all written at once, one round trip."""
        if self.cluster:
            return self.client.mget_nonatomic(keys)

        def send(conn) -> int:
            cmds = [b"*%d\r\n$4\r\nMGET\r\n%b" % (min(len(keys), i + _MGET_KEYS) - i + 1,
                                                 b"".join(keys[i:i + _MGET_KEYS]))
                    for i in range(0, len(keys), _MGET_KEYS)]
            conn.send_packed_command([b"".join(cmds)], check_health=False)
            return len(cmds)
        replies = self._exchange(send, spin=len(keys) if len(keys) <= _SPIN_KEYS else 0)
        if len(replies) == 1 and not isinstance(replies[0], Exception):
            return replies[0]
        err = next((r for r in replies if isinstance(r, Exception)), None)
        if err is not None:
            raise StoreUnavailable(f"{self.kind} {self.url}: read failed at {self.endpoint}: "
                                   f"{self._clean(err)}", endpoint=self.endpoint) from err
        return [v for r in replies for v in r]

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

    def holds_rows(self, view: FeatureView) -> bool | None:
        """A bounded SCAN for one key of the view (at most ``_HOLDS_SCANS`` calls of COUNT 1000): False only when
        the scan went through the whole database without one; None when it ran out of calls (a large database
        shared with other data), in a cluster, or when the server refuses SCAN (an ACL, a proxy without it)."""
        if self.cluster:
            return None
        pattern = _glob_escape(b"%b:%b:{" % (self.prefix, view.name.encode())) + b"*"

        def scan():
            cursor = 0
            for _ in range(_HOLDS_SCANS):
                cursor, keys = self.client.scan(cursor, match=pattern, count=1000)
                if keys:
                    return True
                if int(cursor) == 0:
                    return False
            return None
        try:
            return self._call("holds_rows", scan)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, redis.exceptions.ResponseError):  # refused (ACL, no SCAN): cannot tell
                return None
            raise

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


class _SpinPolicy:
    """Busy-polling for read replies, adaptively. On a virtual machine, waking a thread blocked in recv() costs tens
    of µs (a loopback MGET of 3 keys: ~70 µs blocking, ~24 µs polling on the project machine), which is most of a
    small read's latency. So a read of up to 1,024 keys first polls the socket without blocking for up to
    ``read_spin_us`` + 0.5 µs per key (the server's own time grows with the keys), then blocks. Where replies take
    longer than that (Redis across a network), polling only burns CPU: after ``_SPIN_MISSES`` reads in a row that
    it did not finish, it is off for the next ``_SPIN_PAUSE`` reads."""

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


_SPIN_MISSES, _SPIN_PAUSE = 8, 256
_SPIN_KEYS = 1024  # reads of up to one MGET poll (measured: 1 key per view ~30% faster, 100 keys per view ~10%)


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


def _replies(conn, n: int, spin: _SpinPolicy | None = None, keys: int = 0) -> list:
    """Read ``n`` replies straight off the connection's socket with a hiredis reader of our own: redis-py's
    per-reply Python layers cost more than the parsing (they were ~40% of a 300-key read). With ``spin``, poll
    first (``_SpinPolicy``; not on TLS sockets, whose non-blocking reads signal differently)."""
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

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
        write_batch_rows: 128       # rows per script call: Redis serves nobody else meanwhile
        ttl_grace_seconds: 0        # keys of views with a TTL expire at event time + ttl + grace
        read_spin_us: 100           # a read polls the socket this long (+0.5 µs/key) before blocking (0: never)

Aggregated views: one hash per (view, entity), a field per tile (``tiles``).

Layout: one string per (view, entity) holding the row's order tuple, the id of its layout and its values
(``row_layout``; key and value encodings: ``codec``). Writes: newest wins on the server, a ``SET NX`` pass then a
Lua compare-and-set for the keys that existed, or the compare-and-set alone for a write that fits one script call
(``row_writes``, ``scripts``). Reads: the keys of every (view,
entity) of one ``read_raw`` call go out as one MGET (per 1,024 keys), answered in one round trip, through the wire
layer (``wire``: one connection per thread, pre-packed RESP from ``resp``, hiredis replies, adaptive polling).

TTL: keys of a view with a TTL carry PXAT event time + ttl (+ grace), so Redis frees them; the read-time TTL of
``OnlineStore.read`` still applies, so a value past its TTL is never returned even before Redis evicts it. After
eviction a read reports NOT_FOUND where an embedded store reports EXPIRED (the values are null either way);
``ttl_grace_seconds`` keeps EXPIRED for that long. A row of a view without TTL clears its key's expire time.

Failures: connection errors are retried with exponential backoff (defaults: 3 attempts, < 2 s even against a
black hole), then raised as ``StoreUnavailable`` naming host:port (never the password). Inside
``bounded_reads(s)`` a read on that thread gets one attempt of at most ``s`` seconds, making the thread's connection
included (the model server's event loop uses it). Each command and script call is atomic, and rows are independent upserts, so an interrupted ``write``
leaves some rows applied and others not: every stored row is still a real row that won, and repeating the write (a
materialize rerun resumes from its checkpoint) converges to the same state.

Least-privilege ACL (tested): ``~<prefix>:* +set +mset +mget +evalsha +script|load +hget +hset +hsetnx
+hdel +hgetall +scan +unlink +ping +client|setname +select +hmget +exists +hvals +pexpiretime +pexpireat +multi
+exec +rename +del +eval`` (the row script reads stored rows by MGET and writes rows without expire time by MSET;
the H* commands keep the ``<prefix>:__meta`` hash of checkpoints and the ``<prefix>:__layouts`` hash of row layouts;
HMGET, EXISTS, HVALS, PEXPIRETIME and PEXPIREAT read and write aggregation tiles,
MULTI, EXEC, EVAL, RENAME and DEL write them as transactions of HSETs, ``tiles.py``).

Building on this store (public hooks, as Alibaba's Tair store does): subclass ``RedisOnlineStore`` and override
``write``, ``read_raw`` and ``read_raw_columns`` (the ``OnlineStore`` contract), calling ``super()`` for the row
layout. Inside them use ``call`` (retries, errors translated), ``exchange`` (one pipelined round trip on this
thread's connection, standalone only), ``scripted_write`` (a write whose Lua script is loaded on NOSCRIPT),
``cached_plan`` (a per-(view, features) plan rebuilt only when the definition changed), ``unavailable`` (the
StoreUnavailable of an error reply), ``client`` (redis-py, for commands off the hot path and cluster mode),
``key_head``, ``prefix``, ``cluster``, ``write_batch_rows``, ``endpoint``, ``kind``; and the public codec
(``codec``, ``resp``, ``scripts.script_sha``).
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import redis

from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (AuthenticationError, AuthorizationError, NoScriptError, RedisClusterException,
                              RedisError)
from redis.retry import Retry

from skewless.definitions import FeatureView
from skewless.errors import ConfigError, StoreUnavailable, ValidationError
from skewless.online.base import Key, OnlineStore
from skewless.redact import redact_url

from . import codec
from . import row_layout as rowcodec
from . import scripts
from .row_writes import write_cluster, write_standalone
from .tiles import RedisTiles
from .wire import SPIN_KEYS, SpinPolicy, Wire

_DEFAULTS: dict[str, Any] = {"key_prefix": "skewless", "cluster": False, "connect_timeout": 0.5, "socket_timeout": 5.0,
                             "retries": 2, "backoff_base": 0.05, "backoff_cap": 0.5, "write_batch_rows": 128,
                             "ttl_grace_seconds": 0, "username": None, "password": None, "max_connections": None,
                             "read_spin_us": 100}
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


class RedisOnlineStore(RedisTiles, OnlineStore):
    kind = "Redis online store"  # how errors name it
    supports_per_field_ttl = False
    supports_concurrent_writers = True
    evicts_expired = True
    accepts_worker_writes = True  # a server: any process that can reach it writes newest-wins (materialize from Spark)

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
        self.write_batch_rows = max(1, int(self.options["write_batch_rows"]))  # rows per script call
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
        self._view_layouts: dict[str, tuple[FeatureView, rowcodec.Layout]] = {}  # a write's layout, per view object
        self._sha = scripts.script_sha(scripts.ROW_UPSERT).encode()
        self.meta_key = self.prefix + b":__meta"
        self.layouts_key = self.prefix + b":__layouts"  # layout id (hex) -> its fields (row_layout.Layout)
        if not self.cluster:  # lazily connecting: building the store never touches the network
            try:
                self._pool = redis.ConnectionPool.from_url(url, **self._kwargs)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"invalid Redis URL or options for {self.url}: {self.clean(exc)}") from None
            self._client = redis.Redis(connection_pool=self._pool)
        # the wire layer (standalone: its connections; both: bounded_reads' per-thread deadline)
        self.wire = Wire(self._pool, SpinPolicy(max(0.0, float(self.options["read_spin_us"]))))
        self._local = self.wire.local

    # -- plumbing ------------------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:  # cluster: discovering the slot map needs the network, so it is retried too
            with self._lock:
                if self._client is None:
                    from redis.cluster import RedisCluster

                    self._client = self.call("connect", lambda: RedisCluster.from_url(self._raw_url, **self._kwargs))
        return self._client

    def clean(self, exc: BaseException) -> str:
        """The error's text without the password (redis-py does not put it there; this makes sure)."""
        msg = f"{type(exc).__name__}: {exc}"
        for secret in {self._secret, unquote(self._secret or "")} - {None, ""}:
            msg = msg.replace(secret, "***")
        return msg

    def unavailable(self, op: str, exc: BaseException) -> StoreUnavailable:
        """The StoreUnavailable for ``exc`` (an error or an error reply) during ``op``: names the store, its URL
        without the password and the endpoint. Raise it ``from exc``."""
        return StoreUnavailable(f"{self.kind} {self.url}: {op} failed at {self.endpoint}: {self.clean(exc)}",
                                endpoint=self.endpoint)

    @property
    def can_bound_reads(self) -> bool:
        """Whether ``bounded_reads`` bounds anything: a standalone server's reads (not a cluster's)."""
        return not self.cluster

    def bounded_reads(self, seconds: float):
        """Within the block, on this thread, each read of a standalone server waits at most ``seconds`` in all for
        its replies (and for connecting, when this thread's connection is new), in one attempt (no retry), else
        StoreUnavailable: for a caller that must not block long (the model server runs small reads on its event
        loop) and has a slower path to fall back to. A cluster's reads go through redis-py and keep their own
        timeouts."""
        return self.wire.bounded(seconds)

    def call(self, op: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with bounded retries (one attempt inside ``bounded_reads``); redis-py's errors become
        ``unavailable(op, ...)``."""
        try:
            if getattr(self._local, "deadline", None) is not None:
                return fn()
            return self._retry.call_with_retry(fn, lambda _exc: None, is_retryable=_retryable)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self.unavailable(op, exc) from exc

    def exchange(self, send: Callable[[Any], int], *, spin: int = 0) -> list:
        """Standalone only: one pipelined round trip on this thread's connection (``Wire.exchange``): ``send(conn)``
        writes packed RESP (``conn.send_packed_command``) and returns how many replies to read; error replies come
        back as exception objects. Call it inside ``call``."""
        return self.wire.exchange(send, spin=spin)

    def key_head(self, view_name: str) -> bytes:
        """``<prefix>:<view>:{``: every key of the view starts so (the entity and ``}`` follow)."""
        return b"%b:%b:{" % (self.prefix, view_name.encode())

    # -- write ---------------------------------------------------------------------------------------------
    def _layout(self, view: FeatureView) -> rowcodec.Layout:
        """The view's row layout, recorded in the layouts hash once per store (readers decode older rows by it).
        Made once per view object (the registry state's, the same for every push until the next version): making
        it (JSON, SHA-1, struct) was ~5% of a small push's CPU."""
        hit = self._view_layouts.get(view.name)
        if hit is not None and hit[0] is view:
            return hit[1]
        layout = rowcodec.Layout.of(view)
        if layout.id not in self._layouts:
            self.call("record layout", lambda: self.client.hsetnx(self.layouts_key, layout.hex, layout.json))
            self._layouts[layout.id] = layout
        self._view_layouts[view.name] = (view, layout)
        return layout

    def _layout_of(self, lid: bytes) -> rowcodec.Layout:
        layout = self._layouts.get(lid)
        if layout is None:
            text = self.call("read layout", lambda: self._read_layout(lid.hex()))
            if text is None:
                raise ValidationError(f"Redis online store {self.url}: a stored row names layout {lid.hex()}, which "
                                      f"is not recorded in {self.layouts_key.decode()}: re-materialize the view")
            layout = self._layouts[lid] = rowcodec.Layout.from_json(text.decode())
        return layout

    def _read_layout(self, field: str) -> bytes | None:
        """HGET of one recorded layout. Standalone: on this thread's wire connection, so inside ``bounded_reads``
        it keeps the read's bound (a row's decode looks its layout up after the rows came back: through redis-py's
        pool, a store that hung in between held the caller 5 s a reply, the model server's event loop included)."""
        if self.cluster:
            return self.client.hget(self.layouts_key, field)

        def send(conn) -> int:
            conn.send_packed_command(conn.pack_command("HGET", self.layouts_key, field), check_health=False)
            return 1
        (reply,) = self.wire.exchange(send)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def write(self, view: FeatureView, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        layout = self._layout(view)
        sha, batch_rows = self._sha, self.write_batch_rows
        if self.cluster:
            run = lambda head, keep_us: write_cluster(self.client, sha, batch_rows, view, layout, rows, head, keep_us)  # noqa: E731
        else:
            run = lambda head, keep_us: write_standalone(self.wire, sha, batch_rows, view, layout, rows, head, keep_us)  # noqa: E731
        return self.scripted_write(view, rows, scripts.ROW_UPSERT, run)

    def scripted_write(self, view: FeatureView, rows: pa.Table, script: str,
                       run: Callable[[bytes, int | None], list]) -> int:
        """Write ``rows`` of ``view`` by ``run(key_head(view), keep_us)``, which sends them (calling ``script`` by
        EVALSHA where it needs to) and returns the error replies; ``keep_us``: how long a row is kept after its
        event time (the view's TTL + ``ttl_grace_seconds``; None: no TTL). On NOSCRIPT (first use on this server,
        or after SCRIPT FLUSH) ``script`` is loaded and the write run again: a NOSCRIPT call changed nothing, and
        rows already stored lose to themselves (not newer). Any other error reply raises StoreUnavailable."""
        keep_us = None if not view.ttl else view.ttl // timedelta(microseconds=1) + self._grace_us
        head = self.key_head(view.name)
        for attempt in (0, 1):
            errors = self.call("write", lambda: run(head, keep_us))
            if not errors:
                return rows.num_rows
            if attempt == 0 and all(_no_script(e) for e in errors):
                self.call("script load", lambda: self.client.script_load(script))
                continue
            raise self.unavailable(f"write to view {view.name!r}", errors[0]) from errors[0]
        raise AssertionError("unreachable")

    # -- read ----------------------------------------------------------------------------------------------
    def _plan(self, view: FeatureView, feats: list[str]) -> rowcodec.RowPlan:
        return self.cached_plan(self._plans, view, feats, lambda head: rowcodec.RowPlan(view, feats, head,
                                                                                          self._layout_of))

    def cached_plan(self, cache: dict, view: FeatureView, feats: list[str], make: Callable[[bytes], Any]):
        """The read plan of (view, features) from ``cache`` (a dict the caller keeps), else ``make(key_head)``'s,
        rebuilt only when the definition changed: a plan has ``view`` and ``signature`` (what decoding depends
        on) attributes."""
        ck = (view.name, tuple(feats))
        plan = cache.get(ck)
        if plan is not None and plan.view is view:  # the common case: the registry state's own view object
            return plan
        fresh = make(self.key_head(view.name))
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
        values = self.call("read", lambda: self._mget(keys)) if keys else []
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
        replies = self.wire.exchange(send, spin=len(keys) if len(keys) <= SPIN_KEYS else 0)
        if len(replies) == 1 and not isinstance(replies[0], Exception):
            return replies[0]
        err = next((r for r in replies if isinstance(r, Exception)), None)
        if err is not None:
            raise self.unavailable("read", err) from err
        return [v for r in replies for v in r]

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        v = self.call("get_meta", lambda: self.client.hget(self.meta_key, key))
        return None if v is None else v.decode()

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.call("set_meta", lambda: self.client.hdel(self.meta_key, key))
        else:
            self.call("set_meta", lambda: self.client.hset(self.meta_key, key, value))

    def list_meta(self, prefix: str) -> dict[str, str]:
        items = self.call("list_meta", lambda: self.client.hgetall(self.meta_key))
        out = {k.decode(): v.decode() for k, v in items.items()}
        return {k: v for k, v in sorted(out.items()) if k.startswith(prefix)}

    def holds_rows(self, view: FeatureView) -> bool | None:
        """A bounded SCAN for one key of the view (at most ``_HOLDS_SCANS`` calls of COUNT 1000): False only when
        the scan went through the whole database without one; None when it ran out of calls (a large database
        shared with other data), in a cluster, or when the server refuses SCAN (an ACL, a proxy without it)."""
        if self.cluster:
            return None
        pattern = _glob_escape(self.key_head(view.name)) + b"*"

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
            return self.call("holds_rows", scan)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, redis.exceptions.ResponseError):  # refused (ACL, no SCAN): cannot tell
                return None
            raise

    def delete_entities(self, view: FeatureView, key_columns, keys) -> int:
        """UNLINK each entity's key (its row, or its hash of tiles: the same key). With a subset of a composite key
        (one entity of a view keyed by several), a SCAN of the view's keys, each key's parts compared with the
        entity's (in a cluster: on every primary). Writes racing with it may survive, as with ``drop_view``."""
        wanted = [tuple(k) for k in dict.fromkeys(tuple(k) for k in keys) if None not in k]
        if not wanted:
            return 0
        head = self.key_head(view.name)
        if list(key_columns) == view.join_keys:
            entity = codec.entity_py(view)
            names = [b"%b%b}" % (head, entity(k)) for k in wanted]
        else:
            names = self._matching_keys(view, head, list(key_columns), wanted)

        def unlink() -> int:
            gone = 0
            for i in range(0, len(names), 1000):
                gone += int(self.client.unlink(*names[i:i + 1000]) if not self.cluster else
                            sum(self.client.unlink(n) for n in names[i:i + 1000]))
            return gone
        return self.call("delete_entities", unlink) if names else 0

    def _matching_keys(self, view: FeatureView, head: bytes, key_columns: list[str], wanted: list[tuple]
                       ) -> list[bytes]:
        """The view's keys whose parts at ``key_columns`` equal one of ``wanted`` (a SCAN of the view's keys)."""
        dts = view.join_key_dtypes
        at = [view.join_keys.index(c) for c in key_columns]
        want = {tuple(codec.key_part(v, dts[c]) for v, c in zip(k, key_columns)) for k in wanted}
        pattern = _glob_escape(head) + b"*"

        def scan() -> list[bytes]:
            out = []
            for name in self.client.scan_iter(match=pattern, count=1000):
                parts = codec.split_composite(name[len(head):-1])
                if parts is not None and tuple(parts[i] for i in at) in want:
                    out.append(name)
            return out
        return self.call("delete_entities", scan)

    def drop_view(self, view: str) -> None:
        """SCAN + UNLINK the view's keys (in a cluster: on every primary). Writes racing with it may survive."""
        pattern = _glob_escape(self.key_head(view)) + b"*"

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
        self.call("drop_view", drop)

    def close(self) -> None:
        self.wire.close()
        if self._client is not None:
            self._client.close()
        if self._pool is not None:
            self._pool.disconnect()


def _no_script(exc: Exception) -> bool:
    return isinstance(exc, NoScriptError) or str(exc).startswith("NOSCRIPT")


def _glob_escape(b: bytes) -> bytes:
    return re.sub(rb"([\\*?\[\]])", rb"\\\1", b)


__all__ = ["RedisOnlineStore", "from_url", "mask_url"]

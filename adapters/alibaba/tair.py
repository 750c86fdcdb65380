"""Tair online store (Alibaba Cloud Tair, the Redis-compatible service): the Redis store plus, where the server has
TairHash (exHash), per-feature TTL.

    online:
      url: tair://[[user]:password@]host:port/db      # tairs:// (or the option tls: true) for TLS
      options:
        tairhash: auto      # auto: ask the server once; true: require TairHash; false: the plain Redis layout
        tls: false          # true: TLS with a tair:// URL (Tair's "SSL encryption"); CA etc. as ssl_* options
        # ... and every option of the Redis online store (skewless.adapters.redis.store): key_prefix, cluster,
        # username/password, ssl_*, connect_timeout, socket_timeout, retries, backoff_*, write_batch_rows,
        # ttl_grace_seconds

Which path: on first use (never when the store is built) the store sends ``EXHGET <prefix>:__tairhash_probe probe``
once. A server without TairHash answers "unknown command" (Redis, Tair's Redis-compatible editions): then the store
is exactly the Redis store (one string per row, key TTL by PXAT). Otherwise it uses TairHash
(``tair_exhash``):

- Layout: one exhash per (view, entity), ``<prefix>:<view>:{<entity>}`` (the Redis store's key), with the Redis
  store's value encodings (``skewless.adapters.redis.codec``): ``__e`` event time, ``__o`` the rest of the order tuple, one field per
  non-null feature.
- Writes: the Redis store's batching and framing, with a newest-wins Lua script (Tair runs module commands from
  Lua): per row, ``EXHMGET key __e __o``, the same order comparison, and when the row wins one
  ``EXHSET key field value [PXAT expire]`` per field (TairHash has no multi-field set that takes an expire time)
  plus ``EXHDEL`` of its null features. One script call of ``write_batch_rows`` rows is atomic.
- TTL per field: a view with a TTL gives each field of a row ``PXAT`` event time + ttl (+ ``ttl_grace_seconds``),
  rounded up to the next millisecond and 1 ms more (TairHash expires a field when now >= its time; the read-time TTL
  is inclusive). A row of a view without TTL clears its fields' expire times (EXHSET without EX/PX/KEEPTTL does).
  Fields of other rows of the key and fields a newer definition no longer writes keep their own times: this is
  ``supports_per_field_ttl``. The read-time TTL of ``OnlineStore.read`` still decides what is returned.
- Reads: ``EXHMGET`` of the event time and the requested features, every (view, entity) of a ``read_raw`` call
  written at once, one round trip.

The path is part of the data: a TairHash read of a plain-path key answers WRONGTYPE, and the plain path reads
a TairHash key as absent (and its writes replace it), so switching (``tairhash``
changed, or data moved between a Tair and a Redis) means re-materializing the views (``drop_view``, then
materialize).
Tair cluster instances in proxy mode run a script only when all its keys share a slot: there, use
``write_batch_rows: 1`` (or ``cluster: true`` against the direct-connection endpoint, which groups by slot).
Least-privilege ACL on the TairHash path: ``~<prefix>:* +exhget +exhmget +exhset +exhdel +hget +hset +hdel
+hgetall +evalsha +script|load +scan +unlink +ping +client|setname +select``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
from redis.exceptions import ResponseError

from skewless.definitions import FeatureView
from skewless.errors import ConfigError
from skewless.online.base import Key, OnlineStore

from skewless.adapters.redis.scripts import script_sha
from skewless.adapters.redis.store import RedisOnlineStore, mask_url

from . import tair_exhash as exh
from .tair_exhash import upsert_script


def from_url(url: str, repo_path: Path | str | None, options: dict | None) -> "TairOnlineStore":
    return TairOnlineStore(url, options or {}, Path(repo_path) if repo_path else None)


class TairOnlineStore(exh.ExHashPath, RedisOnlineStore):
    kind = "Tair online store"

    def __init__(self, url: str, options: dict | None = None, repo_path: Path | None = None):
        opts = dict(options or {})
        mode, tls = opts.pop("tairhash", "auto"), opts.pop("tls", False)
        if not (mode == "auto" or isinstance(mode, bool)) or not isinstance(tls, bool):
            raise ConfigError(f"Tair online store: tairhash must be auto, true or false (got {mode!r}) and tls a "
                              f"boolean (got {tls!r})")
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # an unbalanced IPv6 bracket
            raise ConfigError(f"invalid Tair URL {mask_url(url)}: {exc}") from None
        if parts.scheme not in ("tair", "tairs"):
            raise ConfigError(f"not a Tair URL: {mask_url(url)} (use tair:// or tairs://)")
        scheme = "rediss" if parts.scheme == "tairs" or tls else "redis"
        super().__init__(urlunsplit((scheme, *parts[1:])), opts, repo_path)
        self.url = mask_url(url)
        self._mode: bool | None = None if mode == "auto" else mode
        self._tairhash: bool | None = None  # decided on first use
        self._probe_lock = threading.Lock()
        self._tair_scripts: dict[int, tuple[str, bytes]] = {}
        self._exh_plans: dict[tuple, Any] = {}

    # -- which path ------------------------------------------------------------------------------------------
    @property
    def uses_tairhash(self) -> bool:
        """True when this store writes TairHash. Asking connects once (the first read or write does too)."""
        if self._tairhash is None:
            with self._probe_lock:
                if self._tairhash is None:
                    self._tairhash = self._probe()
        return self._tairhash

    @property
    def tiles_in_exhash(self) -> bool:  # aggregation tiles: per-field expire where the server has TairHash
        return self.uses_tairhash

    @property
    def supports_per_field_ttl(self) -> bool:  # type: ignore[override]  # a capability known after the probe
        return self.uses_tairhash

    def _probe(self) -> bool:
        if self._mode is False:
            return False
        key = self.prefix + b":__tairhash_probe"

        def ask() -> bool:
            try:
                self.client.execute_command("EXHGET", key, b"probe")  # a missing key: nil, nothing is written
            except ResponseError as exc:
                if "unknown command" in str(exc).lower():
                    return False
                raise
            return True
        has = self.call("TairHash probe (EXHGET)", ask)
        if self._mode and not has:
            raise ConfigError(f"Tair online store {self.url}: tairhash is true but {self.endpoint} has no TairHash "
                              f"(EXHGET is an unknown command there); use a Tair instance or tairhash: auto/false")
        return has

    def _exh_script(self, nf: int) -> tuple[str, bytes]:
        s = self._tair_scripts.get(nf)
        if s is None:
            src = upsert_script(nf)
            s = self._tair_scripts[nf] = (src, script_sha(src).encode())
        return s

    # -- the hot paths: TairHash's, or the Redis store's -------------------------------------------------------
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        if not self.uses_tairhash:
            return super().write(view, rows)
        if rows.num_rows == 0:
            return 0
        src, sha = self._exh_script(len(view.feature_names))
        run = self._exh_write_cluster if self.cluster else self._exh_write_standalone
        return self.scripted_write(view, rows, src, lambda head, keep_us: run(view, rows, head, sha, keep_us))

    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        return self._exh_read_raw(requests) if self.uses_tairhash else super().read_raw(requests)

    def read_raw_columns(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                         ) -> list[tuple[list[int | None], list[list[Any]]]]:
        if self.uses_tairhash:  # TairHash replies are per key: the generic transposition of read_raw
            return OnlineStore.read_raw_columns(self, requests)
        return super().read_raw_columns(requests)


__all__ = ["TairOnlineStore", "from_url", "upsert_script"]

"""Tair online store (Alibaba Cloud Tair, the Redis-compatible service): the Redis store plus, where the server has
TairHash (exHash), per-feature TTL.

    online:
      url: tair://[[user]:password@]host:port/db      # tairs:// (or the option tls: true) for TLS
      options:
        tairhash: auto      # auto: ask the server once; true: require TairHash; false: the plain Redis layout
        tls: false          # true: TLS with a tair:// URL (Tair's "SSL encryption"); CA etc. as ssl_* options
        # ... and every option of the Redis online store (skewless.adapters.aws.redis): key_prefix, cluster,
        # username/password, ssl_*, connect_timeout, socket_timeout, retries, backoff_*, write_batch_rows,
        # ttl_grace_seconds

Which path: on first use (never when the store is built) the store sends ``EXHGET <prefix>:__tairhash_probe probe``
once. A server without TairHash answers "unknown command" (Redis, Tair's Redis-compatible editions): then the store
is exactly the Redis store (hashes, key TTL by PEXPIREAT). Otherwise it uses TairHash:

- Layout: one exhash per (view, entity), ``<prefix>:<view>:{<entity>}``, the same key, field names and value
  encodings as the Redis store (``redis_codec``): ``__e`` event time, ``__o`` the rest of the order tuple, one field
  per non-null feature.
- Writes: the Redis store's batching and framing, with its newest-wins Lua script in a TairHash form (Tair runs
  module commands from Lua): per row, ``EXHMGET key __e __o``, the same order comparison, and when the row wins one
  ``EXHSET key field value [PXAT expire]`` per field (TairHash has no multi-field set that takes an expire time)
  plus ``EXHDEL`` of its null features. One script call of ``write_batch_rows`` rows is atomic.
- TTL per field: a view with a TTL gives each field of a row ``PXAT`` event time + ttl (+ ``ttl_grace_seconds``),
  rounded up to the next millisecond and 1 ms more (TairHash expires a field when now >= its time; the read-time TTL
  is inclusive). A row of a view without TTL clears its fields' expire times (EXHSET without EX/PX/KEEPTTL does).
  Fields of other rows of the key and fields a newer definition no longer writes keep their own times: this is
  ``supports_per_field_ttl``. The read-time TTL of ``OnlineStore.read`` still decides what is returned.
- Reads: ``EXHMGET`` of the event time and the requested features, every (view, entity) of a ``read_raw`` call
  written at once, one round trip (the Redis store's read path, with its read command swapped).

The path is part of the data: keys written by one path answer WRONGTYPE to the other, so switching (``tairhash``
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
from skewless.online.base import Key

from ..aws import redis_lua as lua
from ..aws.redis import RedisOnlineStore, mask_url

# The Redis store's script parts are reused as they are (order parsing and comparison, argument layout, the row
# loop's head); only the commands differ. The row's read is the same HMGET with TairHash's name.
_ROW_START = lua._ROW_START.replace("redis.call('HMGET'", "redis.call('EXHMGET'")
_PUT = """
local F = {}
for j = 1, nf do F[j] = ARGV[j + 1] end
local function put(k, f, v, exp)
  if exp then redis.call('EXHSET', k, f, v, 'PXAT', exp) else redis.call('EXHSET', k, f, v) end
end
"""
# A row's fields expire at the codec's expire time (ms, rounded up) + 1: TairHash drops a field once now >= its time
# (Redis a key once now > its time), and the read-time TTL includes its boundary. At least 1: TairHash refuses a
# negative PXAT (an event before 1970 with a short TTL), and 1 already means "expired".
_ROW_BODY = """
    local exp = nil
    if has_exp then exp = string.format('%.0f', math.max(tonumber(ARGV[a + 2]) + 1, 1)) end
    put(k, '__e', ev, exp)
    put(k, '__o', o, exp)
    local nulls = {}
    for j = 1, nf do
      local v = ARGV[a + off - 1 + j]
      if v == '' then nulls[#nulls + 1] = F[j] else put(k, F[j], v, exp) end
    end
    if #nulls > 0 then redis.call('EXHDEL', k, unpack(nulls)) end
    written = written + 1
  end
  a = a + stride
end
return written
"""


def upsert_script(nf: int) -> str:
    """The TairHash newest-wins upsert for views with ``nf`` features (``redis_lua``'s call layout)."""
    if _ROW_START == lua._ROW_START:  # the Redis script changed shape: fail here, not with a wrong script
        raise AssertionError("redis_lua's row head no longer reads with HMGET")
    return (f"-- skewless newest-wins upsert into TairHash, {nf} features\n" + lua._NEWER + lua._HEAD.format(nf=nf)
            + _PUT + _ROW_START + _ROW_BODY)


def from_url(url: str, repo_path: Path | str | None, options: dict | None) -> "TairOnlineStore":
    return TairOnlineStore(url, options or {}, Path(repo_path) if repo_path else None)


class TairOnlineStore(RedisOnlineStore):
    def __init__(self, url: str, options: dict | None = None, repo_path: Path | None = None):
        opts = dict(options or {})
        mode, tls = opts.pop("tairhash", "auto"), opts.pop("tls", False)
        if not (mode == "auto" or isinstance(mode, bool)) or not isinstance(tls, bool):
            raise ConfigError(f"Tair online store: tairhash must be auto, true or false (got {mode!r}) and tls a "
                              f"boolean (got {tls!r})")
        parts = urlsplit(url)
        if parts.scheme not in ("tair", "tairs"):
            raise ConfigError(f"not a Tair URL: {mask_url(url)} (use tair:// or tairs://)")
        scheme = "rediss" if parts.scheme == "tairs" or tls else "redis"
        super().__init__(urlunsplit((scheme, *parts[1:])), opts, repo_path)
        self.url = mask_url(url)
        self._mode: bool | None = None if mode == "auto" else mode
        self._tairhash: bool | None = None  # decided on first use
        self._probe_lock = threading.Lock()
        self._tair_scripts: dict[int, tuple[str, bytes]] = {}

    # -- which path ------------------------------------------------------------------------------------------
    @property
    def uses_tairhash(self) -> bool:
        """True when this store writes TairHash. Asking connects once (the first read or write does too)."""
        if self._tairhash is None:
            with self._probe_lock:
                if self._tairhash is None:
                    has = self._probe()
                    if has:
                        self.read_command = "EXHMGET"  # before the flag: a reader that sees it sees this too
                    self._tairhash = has
        return self._tairhash

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
        has = self._call("TairHash probe (EXHGET)", ask)
        if self._mode and not has:
            raise ConfigError(f"Tair online store {self.url}: tairhash is true but {self.endpoint} has no TairHash "
                              f"(EXHGET is an unknown command there); use a Tair instance or tairhash: auto/false")
        return has

    def _script(self, nf: int) -> tuple[str, bytes]:
        if not self._tairhash:
            return super()._script(nf)
        s = self._tair_scripts.get(nf)
        if s is None:
            src = upsert_script(nf)
            s = self._tair_scripts[nf] = (src, lua.sha1(src).encode())
        return s

    # -- the hot paths: the Redis store's, once the path is known ----------------------------------------------
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        self.uses_tairhash  # noqa: B018 - decides the script before the first call is framed
        return super().write(view, rows)

    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        if self._tairhash is None:
            self.uses_tairhash  # noqa: B018 - decides the read command before the first plan is built
        return super().read_raw(requests)


__all__ = ["TairOnlineStore", "from_url", "upsert_script"]

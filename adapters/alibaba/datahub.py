"""Alibaba Cloud DataHub as a stream source, ``datahub://PROJECT/TOPIC``, through the official SDK ``pydatahub``
(its default JSON protocol): ``skewless.streams.source.StreamSource`` (shards, read after a position).

Options (``datahub://project/topic?endpoint=...`` query or the source's options; options win), all optional but the
endpoint and the credentials:
    endpoint            e.g. ``https://dh-cn-hangzhou.aliyuncs.com``, the local cloud's ``http://127.0.0.1:5058``;
                        default: the public endpoint of ``region``
    region              e.g. ``cn-hangzhou`` (only to build the default endpoint)
    access_key_id / access_key_secret / security_token   explicit keys (prefer the environment; use ${VAR}); else
                        ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (+ ``_SECURITY_TOKEN``)
    connect_timeout, read_timeout (seconds)   defaults 5 and 30; pydatahub retries a refused connection 3 times

Positions are DataHub sequence numbers (decimal text) of the last record handed out. ``read(shard, after, n)``
seeks a cursor at sequence ``after`` (SEQUENCE) and drops that record, or at OLDEST for ``after=None``; the
``NextCursor`` of each read is kept for the next call from the same position, so a consumer that keeps reading pays
one request per batch, plus one LATEST cursor (``behind_latest_ms``: the newest record's time minus the last returned
one's, 0 when caught up). When sequence ``after`` is no longer retained (topic lifecycle) and the oldest record is
not ``after + 1``, records were lost to this consumer: ``StreamPositionExpired``, never a silent skip. A CLOSED
(merged/split) shard read to its end (DataHub's ``InvalidShardOperation``) gives ``closed=True``.

Values: a TUPLE topic's record is ``{field: value}`` with pydatahub's Python types, TIMESTAMP fields (microseconds
since the epoch) as UTC datetimes; a BLOB topic's payload must be a JSON object (UTF-8), else the record comes back
undecoded (``value=None``, ``raw``, ``error``) for the dead-letter location. Record attributes are not read.

Errors: an unreachable endpoint, throttling (``LimitExceeded``) or a 5xx is ``StoreUnavailable``; a missing project,
topic or shard ``NotFoundError``; refused credentials (``Unauthorized``, ``NoPermission``) or a bad URL ``ConfigError``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from datahub import DataHub
from datahub.exceptions import (
    AuthorizationFailedException,
    DatahubException,
    InternalServerException,
    InvalidCursorException,
    LimitExceededException,
    NoPermissionException,
    ResourceNotFoundException,
    SeekOutOfRangeException,
    ShardSealedException,
)
from datahub.models import CursorType, FieldType, RecordType

from skewless.errors import ConfigError, NotFoundError, SkewlessError, StoreUnavailable, StreamPositionExpired
from skewless.streams.source import ReadBatch, StreamRecord, StreamSource

_KNOWN = {"endpoint", "region", "access_key_id", "access_key_secret", "security_token", "connect_timeout",
          "read_timeout"}
_MAX_READ = 1000  # DataHub's largest Limit
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def from_url(url: str, repo_path: Path | None = None, options: dict | None = None) -> "DataHubSource":
    """The plugin table's factory (role ``stream``, scheme ``datahub``)."""
    return DataHubSource(url, options)


class DataHubSource(StreamSource):
    def __init__(self, url: str, options: dict | None = None):
        parts = urlsplit(url)
        topic = parts.path.strip("/")
        if parts.scheme != "datahub" or not parts.netloc or not topic or "/" in topic:
            raise ConfigError(f"a DataHub stream is datahub://PROJECT/TOPIC, got {url!r}")
        opts = {**{k: v[-1] for k, v in parse_qs(parts.query).items()}, **(options or {})}
        unknown = set(opts) - _KNOWN
        if unknown:
            raise ConfigError(f"unknown DataHub options {sorted(unknown)}; known: {sorted(_KNOWN)}")
        self.project, self.topic, self.name = parts.netloc, topic, f"datahub://{parts.netloc}/{topic}"
        self.endpoint = opts.get("endpoint") or (f"https://dh-{opts['region']}.aliyuncs.com" if opts.get("region")
                                                 else None)
        if not self.endpoint:
            raise ConfigError(f"{self.name}: give the DataHub endpoint (option endpoint) or its region")
        env = os.environ.get
        access_id = opts.get("access_key_id") or env("ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = opts.get("access_key_secret") or env("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        token = opts.get("security_token") or (env("ALIBABA_CLOUD_SECURITY_TOKEN") if not opts.get("access_key_id")
                                               else None)
        if not (access_id and secret):
            raise ConfigError(f"{self.name}: no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                              "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or the options access_key_id/access_key_secret")
        # user_agent given: pydatahub's default one probes the host's IP with a UDP socket towards 8.8.8.8
        self._client = DataHub(access_id, secret, self.endpoint, security_token=token or "",
                               user_agent="skewless pydatahub", conn_timeout=float(opts.get("connect_timeout", 5)),
                               read_timeout=float(opts.get("read_timeout", 30)))
        self._record_type: RecordType | None = None
        self._schema = None
        self._cursors: dict[str, tuple[str | None, str]] = {}  # shard -> (position, the cursor just after it)

    # -- StreamSource -------------------------------------------------------------------------------------------
    def shards(self) -> list[str]:
        result = self._call("list shards", self._client.list_shard, self.project, self.topic)
        return sorted((s.shard_id for s in result.shards), key=lambda s: (len(s), s))

    def read(self, shard: str, after: str | None, max_records: int) -> ReadBatch:
        if max_records < 1:
            raise ConfigError(f"max_records must be positive, got {max_records}")
        self._describe()
        limit = min(max_records, _MAX_READ)
        cached = self._cursors.get(shard)
        cursor, skip = (cached[1], None) if cached and cached[0] == after else self._seek(shard, after)
        try:
            result = self._get(shard, cursor, min(limit + (skip is not None), _MAX_READ))
        except InvalidCursorException as exc:  # a kept cursor expired: seek again by sequence
            if cached is None or cached[0] != after:
                raise self._translate(exc, f"read shard {shard}") from exc
            self._cursors.pop(shard, None)
            return self.read(shard, after, max_records)
        except ShardSealedException:
            return ReadBatch([], after, 0, closed=True)
        records = [r for r in result.records if skip is None or r.sequence > skip][:limit]
        if not records or records[-1] is result.records[-1]:  # NextCursor follows the last record handed out
            self._cursors[shard] = (str(records[-1].sequence) if records else after, result.next_cursor)
        else:
            self._cursors.pop(shard, None)
        out = [self._decode(r) for r in records]
        next_position = out[-1].position if out else after
        return ReadBatch(out, next_position, self._behind(shard, records[-1] if records else None))

    def close(self) -> None:
        self._cursors.clear()

    # -- helpers ------------------------------------------------------------------------------------------------
    def _describe(self) -> None:
        if self._record_type is None:
            topic = self._call("describe topic", self._client.get_topic, self.project, self.topic)
            self._record_type, self._schema = topic.record_type, topic.record_schema

    def _seek(self, shard: str, after: str | None) -> tuple[str, int | None]:
        """(cursor, sequence to drop) to read what follows ``after``."""
        if after is None:
            return self._cursor(shard, CursorType.OLDEST).cursor, None
        try:
            seq = int(after)
        except ValueError:
            raise ConfigError(f"{self.name} shard {shard}: position {after!r} is not a DataHub sequence") from None
        try:
            return self._client.get_cursor(self.project, self.topic, shard, CursorType.SEQUENCE, seq).cursor, seq
        except SeekOutOfRangeException as exc:
            oldest = self._cursor(shard, CursorType.OLDEST)
            if oldest.sequence == seq + 1:  # only the record at ``after`` itself was trimmed: nothing is lost
                return oldest.cursor, None
            if oldest.sequence > seq:
                raise StreamPositionExpired(
                    f"{self.name} shard {shard}: position {seq} is no longer retained (oldest is {oldest.sequence}); "
                    "records between them are lost to this consumer", shard=shard, position=after) from exc
            raise NotFoundError(f"{self.name} shard {shard}: position {seq} is beyond the shard's newest record") \
                from exc
        except (DatahubException, requests.RequestException) as exc:
            raise self._translate(exc, f"seek shard {shard}") from exc

    def _cursor(self, shard: str, kind: CursorType):
        return self._call(f"{kind.name} cursor of shard {shard}", self._client.get_cursor, self.project, self.topic,
                          shard, kind)

    def _get(self, shard: str, cursor: str, limit: int):
        try:
            if self._record_type == RecordType.TUPLE:
                return self._client.get_tuple_records(self.project, self.topic, shard, self._schema, cursor, limit)
            return self._client.get_blob_records(self.project, self.topic, shard, cursor, limit)
        except (InvalidCursorException, ShardSealedException):
            raise
        except (DatahubException, requests.RequestException) as exc:
            raise self._translate(exc, f"read shard {shard}") from exc

    def _behind(self, shard: str, last) -> int:
        """Milliseconds between the shard's newest record and ``last`` (the last one returned; None: nothing was)."""
        if last is None:
            return 0  # a read that returns nothing has caught up
        latest = self._call(f"LATEST cursor of shard {shard}", self._client.get_cursor, self.project, self.topic,
                            shard, CursorType.LATEST)
        return 0 if latest.sequence <= last.sequence else max(0, latest.record_time - last.system_time)

    def _decode(self, rec) -> StreamRecord:
        position = str(rec.sequence)
        if self._record_type == RecordType.TUPLE:
            value = {}
            for fld, v in zip(self._schema.field_list, rec.values):
                if fld.type == FieldType.TIMESTAMP and v is not None:
                    v = _EPOCH + dt.timedelta(microseconds=v)
                value[fld.name] = v
            return StreamRecord(position, value)
        raw = rec.blob_data
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return StreamRecord(position, None, raw=raw, error=f"BLOB payload is not UTF-8 JSON: {exc}")
        if not isinstance(value, dict):
            return StreamRecord(position, None, raw=raw, error=f"BLOB payload is JSON {type(value).__name__}, "
                                                               "not an object")
        return StreamRecord(position, value)

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except (DatahubException, requests.RequestException) as exc:
            raise self._translate(exc, what) from exc

    def _translate(self, exc: Exception, what: str) -> SkewlessError:
        where = f"{self.name}: {what}"
        if isinstance(exc, requests.RequestException):
            return StoreUnavailable(f"{where}: DataHub endpoint {self.endpoint} is unreachable "
                                    f"({type(exc).__name__})", endpoint=self.endpoint)
        code = getattr(exc, "error_code", None) or type(exc).__name__
        if isinstance(exc, ResourceNotFoundException):
            return NotFoundError(f"{where}: {code} ({exc.error_msg})")
        if isinstance(exc, (AuthorizationFailedException, NoPermissionException)):
            return ConfigError(f"{where}: DataHub refused the credentials ({code})")
        if isinstance(exc, (LimitExceededException, InternalServerException)) or exc.status_code >= 500:
            return StoreUnavailable(f"{where}: DataHub answered {code} ({exc.error_msg})", endpoint=self.endpoint)
        return StoreUnavailable(f"{where}: DataHub error {code} ({exc.error_msg})", endpoint=self.endpoint)

"""AWS Kinesis Data Streams as a stream source (``kinesis://STREAM-NAME``) through boto3; the
``skewless.streams.source.StreamSource`` contract.

Positions are Kinesis sequence numbers; ``read(shard, after)`` is GetShardIterator (AFTER_SEQUENCE_NUMBER ``after``,
or TRIM_HORIZON when None) + GetRecords, and the NextShardIterator is kept for the position it continues from, so a
consumer reading on pays one GetRecords per read. Each record's Data is one JSON object (UTF-8); anything else is
handed back undecoded (``value=None``, ``raw``, ``error``) for the dead-letter location.

Options (``FeatureStore.stream(..., options=)``), all optional: ``endpoint_url`` (default AWS's, or
$AWS_ENDPOINT_URL), ``region``, ``profile``, ``connect_timeout``, ``read_timeout``, ``max_attempts``. Credentials
come from the standard AWS chain. Tested against moto's Kinesis in server mode (ListShards, GetShardIterator
TRIM_HORIZON / AFTER_SEQUENCE_NUMBER, GetRecords, PutRecords).
"""

from __future__ import annotations

import json

import boto3
import botocore.config
import botocore.exceptions

from skewless.errors import ConfigError, NotFoundError, StoreUnavailable, StreamPositionExpired
from skewless.streams.source import ReadBatch, StreamRecord, StreamSource

_KNOWN = {"endpoint_url", "region", "profile", "connect_timeout", "read_timeout", "max_attempts"}
_UNREACHABLE = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)
_THROTTLED = {"ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException"}


class KinesisSource(StreamSource):
    def __init__(self, stream: str, options: dict | None = None, client=None):
        options = dict(options or {})
        unknown = set(options) - _KNOWN
        if unknown:
            raise ConfigError(f"unknown Kinesis options {sorted(unknown)}; known: {sorted(_KNOWN)}")
        if not stream:
            raise ConfigError("a Kinesis source needs a stream name: kinesis://STREAM-NAME")
        self.name = f"kinesis://{stream}"
        self.stream = stream
        if client is None:
            session = boto3.session.Session(profile_name=options.get("profile"))
            config = botocore.config.Config(
                region_name=options.get("region") or session.region_name or "us-east-1",
                connect_timeout=float(options.get("connect_timeout", 3)),
                read_timeout=float(options.get("read_timeout", 10)),
                retries={"max_attempts": int(options.get("max_attempts", 3)), "mode": "standard"})
            client = session.client("kinesis", endpoint_url=options.get("endpoint_url"), config=config)
        self.client = client
        self._next: dict[str, tuple[str | None, str]] = {}  # shard -> (position it continues from, iterator)

    def _call(self, op: str, with_stream: bool = True, **kw):
        """One Kinesis call, its errors translated: unreachable or throttled -> StoreUnavailable (the consumer
        retries), no such stream/shard -> NotFoundError, no credentials -> ConfigError."""
        try:
            return getattr(self.client, op)(**({"StreamName": self.stream} if with_stream else {}), **kw)
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"Kinesis {op} on {self.stream!r}: endpoint unreachable ({type(exc).__name__})",
                                   endpoint=self.client.meta.endpoint_url) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ConfigError(f"Kinesis {op}: no AWS credentials found in the standard chain") from exc
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            msg = exc.response.get("Error", {}).get("Message", "")
            if code == "ResourceNotFoundException":
                raise NotFoundError(f"Kinesis {op}: {msg or 'stream or shard not found'} ({self.stream!r})") from exc
            if code in _THROTTLED:
                raise StoreUnavailable(f"Kinesis {op} on {self.stream!r} throttled ({code})",
                                       endpoint=self.client.meta.endpoint_url) from exc
            raise

    def shards(self) -> list[str]:
        out, token = [], None
        while True:  # ListShards takes the stream name or a NextToken, never both
            resp = self._call("list_shards") if token is None else \
                self._call("list_shards", with_stream=False, NextToken=token)
            out += [s["ShardId"] for s in resp.get("Shards", [])]
            token = resp.get("NextToken")
            if not token:
                return out

    def _iterator(self, shard: str, after: str | None) -> str:
        cached = self._next.get(shard)
        if cached is not None and cached[0] == after:
            return cached[1]
        kw = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after} if after else \
            {"ShardIteratorType": "TRIM_HORIZON"}
        try:
            return self._call("get_shard_iterator", ShardId=shard, **kw)["ShardIterator"]
        except botocore.exceptions.ClientError as exc:
            if after and exc.response.get("Error", {}).get("Code") == "InvalidArgumentException":
                raise StreamPositionExpired(f"Kinesis shard {shard} of {self.stream!r}: cannot resume after "
                                            f"{after} ({exc.response['Error'].get('Message', '')})",
                                            shard=shard, position=after) from exc
            raise

    def read(self, shard: str, after: str | None, max_records: int) -> ReadBatch:
        for attempt in (0, 1):
            iterator = self._iterator(shard, after)
            try:
                resp = self._call("get_records", with_stream=False, ShardIterator=iterator,
                                  Limit=max(1, min(max_records, 10_000)))
                break
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ExpiredIteratorException" and attempt == 0:
                    self._next.pop(shard, None)
                    continue  # a kept iterator older than 5 minutes: get a fresh one for the same position
                raise
            except Exception:
                self._next.pop(shard, None)
                raise
        records = [_decode(r) for r in resp.get("Records", [])]
        position = records[-1].position if records else after
        nxt = resp.get("NextShardIterator")
        if nxt:
            self._next[shard] = (position, nxt)
        else:
            self._next.pop(shard, None)
        return ReadBatch(records, position, resp.get("MillisBehindLatest"), closed=nxt is None)


def _decode(r: dict) -> StreamRecord:
    data = r["Data"]
    try:
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        return StreamRecord(r["SequenceNumber"], None, raw=bytes(data), error=f"undecodable record: {exc}")
    return StreamRecord(r["SequenceNumber"], value)


def from_url(url: str, repo_path=None, options: dict | None = None) -> KinesisSource:
    return KinesisSource(url.split("://", 1)[1].strip("/"), options)

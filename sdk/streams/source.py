"""The stream-source contract: what a stream (AWS Kinesis, Alibaba DataHub, an in-memory test stream) must offer
for ``skewless stream`` to consume it exactly once. Core and cloud-free: adapters implement it
(``skewless.adapters.aws.kinesis``, ``skewless.adapters.alibaba.datahub``) and are chosen by URL scheme through the
plugin table (role ``stream``: ``kinesis://NAME``, ``datahub://PROJECT/TOPIC``, ``memory://NAME``).

A stream is a set of **shards** (Kinesis shards, DataHub shards), each an ordered, append-only sequence of records.
Every record has a **position** in its shard: an opaque string the source hands out and takes back (a Kinesis
sequence number, a DataHub sequence/cursor). The consumer never compares, parses or does arithmetic on positions;
it only stores the position of the last record it committed, per shard, in the offline commit that holds the
records, and hands it back as ``after`` to resume. So ``read`` must be deterministic: reading the same shard after
the same position returns the same records in the same order (as long as they are within retention).

    class StreamSource(abc.ABC):
        name: str                                      # for messages and the dead-letter location
        def shards(self) -> list[str]                  # every readable shard id, open or closed
        def read(self, shard: str, after: str | None, max_records: int) -> ReadBatch
        def close(self) -> None                        # optional: release clients

    ReadBatch(records, next_position, behind_latest_ms=None, closed=False)

``read(shard, after, max_records)``: at most ``max_records`` records of ``shard`` that come strictly after position
``after`` (``None``: from the oldest record still retained, i.e. Kinesis TRIM_HORIZON / DataHub OLDEST). Returns at
once (no long poll): an empty batch when nothing is new.

- ``records``: ``list[StreamRecord]`` in shard order, or a ``pyarrow.Table`` whose rows are the decoded records in
  shard order (a bulk-decoding source; every row must have decoded — undecodable payloads need StreamRecord).
- ``next_position``: the position to pass as ``after`` on the next call: the last returned record's position, or
  ``after`` unchanged when nothing was returned.
- ``behind_latest_ms``: how far the shard's newest record is ahead of this batch, in milliseconds, when the service
  says (Kinesis MillisBehindLatest); None when unknown. Used for metrics and the "caught up" test only.
- ``closed``: the shard is closed (split/merged) and ``next_position`` is its last record: nothing more will come.

``StreamRecord(position, value, raw=None, error=None)``: ``value`` is the decoded record, a dict of field name →
Python value (timestamps as ISO 8601 text or datetimes); a payload that could not be decoded has ``value=None``,
``raw`` its bytes and ``error`` why, and the consumer sends it to the dead-letter location (never dropped).

Errors (the ``skewless.errors`` tree; vendor errors are translated with ``raise ... from exc``):

- ``StoreUnavailable``: the stream service cannot be reached (the consumer retries with backoff).
- ``NotFoundError``: the stream or the shard does not exist.
- ``StreamPositionExpired`` (a ``NotFoundError``): ``after`` is no longer retained (trimmed by retention), so
  records between it and the oldest retained one are lost to this consumer; never skipped silently.
- ``ConfigError``: a bad URL, missing credentials or a missing extra.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa

from ..errors import ConfigError, NotFoundError, StoreUnavailable, StreamPositionExpired

__all__ = ["StreamSource", "StreamRecord", "ReadBatch", "StreamPositionExpired", "NotFoundError",
           "StoreUnavailable", "ConfigError"]


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record of a shard: its opaque ``position`` and its decoded ``value`` (None when it could not be decoded:
    then ``raw`` holds the payload and ``error`` why)."""

    position: str
    value: dict[str, Any] | None
    raw: bytes | None = field(default=None, repr=False)
    error: str | None = None


class ReadBatch(NamedTuple):
    """What one ``StreamSource.read`` returns (unpacks as ``records, next_position, behind_latest_ms, closed``)."""

    records: list[StreamRecord] | pa.Table
    next_position: str | None
    behind_latest_ms: int | None = None
    closed: bool = False


class StreamSource(abc.ABC):
    """A stream of shards read by position; see the module docstring for the whole contract."""

    name: str = "stream"

    @abc.abstractmethod
    def shards(self) -> list[str]:
        """Every shard id of the stream that may still hold unread records (open ones and closed ones still
        retained), in a stable order."""

    @abc.abstractmethod
    def read(self, shard: str, after: str | None, max_records: int) -> ReadBatch:
        """At most ``max_records`` records of ``shard`` strictly after position ``after`` (None: the oldest
        retained); see the module docstring."""

    def close(self) -> None:
        """Release clients and connections (nothing by default)."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

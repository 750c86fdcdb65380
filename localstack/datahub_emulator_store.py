"""The DataHub emulator's state (``datahub_emulator`` says what is emulated): projects, topics, shards with their
hash-key ranges, records, cursors and TUPLE schema checks. In memory, under one lock held by the caller
(``datahub_emulator_api``); errors are ``DataHubError`` carrying DataHub's status and error code."""

from __future__ import annotations

import decimal
import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field

HASH_SPACE = 1 << 128
MAX_READ = 1000  # DataHub's largest Limit for one read
NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
INT_BOUNDS = {"tinyint": 8, "smallint": 16, "integer": 32, "bigint": 64}
TS_BOUNDS = (-62135798400000000, 253402271999000000)  # DataHub's TIMESTAMP range, microseconds


class DataHubError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def now_ms() -> int:
    return int(time.time() * 1000)


def hash_key(n: int) -> str:
    return f"{n:032X}"


@dataclass
class Shard:
    shard_id: str
    begin: int
    end: int  # exclusive (listed inclusive)
    state: str = "ACTIVE"
    parents: list[str] = field(default_factory=list)
    closed_time: int | None = None
    first_seq: int = 0  # the oldest retained sequence (records below it were trimmed)
    records: list[dict] = field(default_factory=list)  # records[i] has sequence first_seq + i

    @property
    def next_seq(self) -> int:
        return self.first_seq + len(self.records)

    def describe(self) -> dict:
        out = {"ShardId": self.shard_id, "State": self.state, "BeginHashKey": hash_key(self.begin),
               "EndHashKey": hash_key(self.end - 1),  # inclusive, as DataHub lists it
               "ParentShardIds": self.parents, "LeftShardId": "", "RightShardId": ""}
        if self.closed_time is not None:
            out["ClosedTime"] = self.closed_time
        return out


@dataclass
class Topic:
    record_type: str
    schema: list[dict] | None
    schema_text: str | None
    lifecycle: int
    comment: str
    expand_mode: str
    shards: list[Shard]
    created: int = field(default_factory=now_ms)
    modified: int = field(default_factory=now_ms)
    turn: itertools.count = field(default_factory=itertools.count)

    def shard(self, shard_id: str) -> Shard:
        for s in self.shards:
            if s.shard_id == shard_id:
                return s
        raise DataHubError(404, "NoSuchShard", f"The specified shard {shard_id} does not exist.")

    def new_shard_id(self) -> str:
        return str(max(int(s.shard_id) for s in self.shards) + 1)


@dataclass
class Project:
    comment: str
    topics: dict[str, Topic] = field(default_factory=dict)
    created: int = field(default_factory=now_ms)
    modified: int = field(default_factory=now_ms)


def split_range(count: int) -> list[tuple[int, int]]:
    step = HASH_SPACE // count
    return [(i * step, HASH_SPACE if i == count - 1 else (i + 1) * step) for i in range(count)]


def parse_schema(text) -> list[dict]:
    try:
        fields = json.loads(text)["fields"] if isinstance(text, str) else text["fields"]
        out = [{"name": f["name"], "type": f["type"].lower(), "notnull": bool(f.get("notnull", False))}
               for f in fields]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataHubError(400, "InvalidSchema", f"Invalid RecordSchema: {exc!r}") from None
    known = {*INT_BOUNDS, "string", "boolean", "timestamp", "float", "double", "decimal"}
    bad = [f["type"] for f in out if f["type"] not in known]
    if not out or bad:
        raise DataHubError(400, "InvalidSchema", f"Invalid RecordSchema: unknown field types {bad}")
    return out


def check_value(value, fld: dict, index: int) -> None:
    """Raise MalformedRecord unless ``value`` (the JSON protocol's text form) fits field ``fld``."""
    kind = fld["type"]
    if value is None or (value == "" and kind != "string"):
        if fld["notnull"]:
            raise DataHubError(400, "MalformedRecord", f"Field {fld['name']} (index {index}) can not be null")
        return
    if not isinstance(value, str):
        raise DataHubError(400, "MalformedRecord", f"Field {fld['name']}: values are strings in the JSON protocol")
    try:
        if kind in INT_BOUNDS or kind == "timestamp":
            n = int(value)
            bits = INT_BOUNDS.get(kind)
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if bits else TS_BOUNDS
            if not low <= n <= high:
                raise ValueError(f"{n} out of range for {kind}")
        elif kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{value!r} is not true/false")
        elif kind in ("float", "double"):
            float(value)
        elif kind == "decimal":
            decimal.Decimal(value)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise DataHubError(400, "MalformedRecord", f"Field {fld['name']} ({kind}): {exc}") from None


# -- cursors: opaque to clients; here 16 hex digits of shard id and 16 of sequence ----------------------------------
def make_cursor(shard: Shard, seq: int) -> str:
    return f"{int(shard.shard_id):016x}{seq:016x}"


def cursor_sequence(shard: Shard, cursor) -> int:
    if not isinstance(cursor, str) or not re.fullmatch(r"[0-9a-f]{32}", cursor):
        raise DataHubError(400, "InvalidCursor", "The cursor is invalid.")
    if int(cursor[:16], 16) != int(shard.shard_id):
        raise DataHubError(400, "InvalidCursor", "The cursor does not belong to this shard.")
    seq = int(cursor[16:], 16)
    if seq < shard.first_seq:
        raise DataHubError(400, "InvalidCursor", "The cursor is expired.")
    if seq > shard.next_seq:
        raise DataHubError(400, "InvalidCursor", "The cursor is out of range.")
    return seq


def seek(shard: Shard, kind: str, doc: dict) -> tuple[int, int]:
    """(sequence, record time) a cursor of type ``kind`` points at."""
    recs, first = shard.records, shard.first_seq

    def at(seq: int) -> tuple[int, int]:
        return seq, recs[seq - first]["SystemTime"] if first <= seq < shard.next_seq else -1

    if kind == "OLDEST":
        return at(first)
    if kind == "LATEST":
        return at(shard.next_seq - 1) if recs else at(first)
    if kind == "SEQUENCE":
        seq = _int_param(doc, "Sequence")
        if not first <= seq < shard.next_seq:
            raise DataHubError(400, "SeekOutOfRange", f"Sequence {seq} is out of range "
                                                      f"[{first}, {shard.next_seq}).")
        return at(seq)
    if kind == "SYSTEM_TIME":
        ms = _int_param(doc, "SystemTime")
        for i, rec in enumerate(recs):
            if rec["SystemTime"] >= ms:
                return at(first + i)
        raise DataHubError(400, "SeekOutOfRange", f"Time {ms} is after the newest record of the shard.")
    raise DataHubError(400, "InvalidParameter", f"Unknown cursor type {kind!r}")


def _int_param(doc: dict, key: str) -> int:
    try:
        return int(doc[key])
    except (KeyError, TypeError, ValueError):
        raise DataHubError(400, "InvalidParameter", f"{key} is missing or not an integer") from None


def route(topic: Topic, rec: dict) -> Shard:
    """The shard a put record goes to: ShardId, else HashKey, else MD5(PartitionKey), else active shards in turn."""
    if rec.get("ShardId") not in (None, ""):
        return topic.shard(str(rec["ShardId"]))
    active = [s for s in topic.shards if s.state == "ACTIVE"]
    key = None
    if rec.get("HashKey"):
        try:
            key = int(rec["HashKey"], 16)
        except ValueError:
            raise DataHubError(400, "MalformedRecord", f"HashKey {rec['HashKey']!r} is not hexadecimal") from None
    elif rec.get("PartitionKey"):
        key = int(hashlib.md5(str(rec["PartitionKey"]).encode()).hexdigest(), 16)  # noqa: S324 - DataHub's routing
    if key is None:
        return active[next(topic.turn) % len(active)]
    for s in active:
        if s.begin <= key < s.end:
            return s
    raise DataHubError(400, "MalformedRecord", f"no active shard holds hash key {key:032X}")

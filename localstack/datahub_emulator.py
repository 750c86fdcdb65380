"""A local Alibaba Cloud DataHub for tests: the REST subset pydatahub 2.29 uses with its default protocol.

    python -m skewless.localcloud.datahub_emulator --port 5058 --state DIR
    datahub.DataHub("test", "test", "http://127.0.0.1:5058")      # the default client: JSON records, LZ4 bodies

Every request must carry pydatahub's ``Authorization: DATAHUB <id>:<signature>``: HMAC-SHA1 (base64) with the
AccessKey secret over ``METHOD\\nContent-Type\\nDate\\n`` + the ``x-datahub-*`` headers (lowercase, sorted,
``name:value`` lines) + the unquoted path and sorted query, as ``datahub.auth.AliyunAccount`` signs it. Only the
pair ``test``/``test`` exists (``--access-id``/``--access-key`` change it); an unknown id or a wrong signature is 401
``Unauthorized``, as DataHub answers. Errors are DataHub's JSON ``{"ErrorCode", "ErrorMessage"}`` with the codes
pydatahub maps to its exceptions (``NoSuchProject``/``NoSuchTopic``/``NoSuchShard`` 404, ``InvalidParameter``,
``InvalidCursor``, ``SeekOutOfRange``, ``InvalidShardOperation``, ``MalformedRecord``, ``*AlreadyExist`` 400).

REST (exactly this; anything else is 400 ``InvalidParameter`` naming method and path):
    GET    /projects                                     list
    POST   /projects/{p}          GET  PUT  DELETE       create {Comment} / get / update comment / delete (empty)
    GET    /projects/{p}/topics                          list
    POST   /projects/{p}/topics/{t}                      create: {ShardCount, Lifecycle, RecordType TUPLE|BLOB,
                                                         RecordSchema (JSON text, TUPLE only), Comment, ExpandMode}
    GET    /projects/{p}/topics/{t}        DELETE        get / delete
    GET    /projects/{p}/topics/{t}/shards               list: ShardId, State ACTIVE|CLOSED, hash key range,
                                                         ParentShardIds, ClosedTime
    POST   /projects/{p}/topics/{t}/shards  Action=pub   put records (JSON); Action=merge|split (parents CLOSED at
                                                         once, children ACTIVE with the next ids)
    POST   /projects/{p}/topics/{t}/shards/{s}  Action=cursor   Type OLDEST | LATEST (the newest record itself) |
                                                         SYSTEM_TIME (first record at or after SystemTime ms) |
                                                         SEQUENCE (that record); SeekOutOfRange outside the records
    POST   /projects/{p}/topics/{t}/shards/{s}  Action=sub      read from Cursor, at most Limit (<= 1000) records;
                                                         NextCursor follows the last one; a CLOSED shard read at its
                                                         end is 400 InvalidShardOperation (pydatahub's
                                                         ShardSealedException: "read to the end")
Records: the JSON protocol only (pydatahub's default); request bodies plain or ``Content-Encoding: lz4`` (pydatahub's
default compression, LZ4 block with ``x-datahub-content-raw-size``) or ``zlib``; answers are plain JSON. A record
goes to its ``ShardId``, else by ``HashKey``, else by the MD5 of ``PartitionKey`` (DataHub's hash ranges), else to
the active shards in turn. TUPLE values are checked against the schema (count, null-ability, type: integers in
range, booleans true/false, doubles, decimals, microsecond timestamps); any bad record rejects the whole request
(400 MalformedRecord, nothing written); a record for a CLOSED shard is reported in ``FailedRecords``. Sequences count
from 0 per shard; SystemTime is the emulator's clock in milliseconds when the record was written. Cursors are opaque
32-hex-digit strings naming shard and sequence; any other text, or another shard's cursor, is 400 InvalidCursor, and
a cursor below the oldest retained record is 400 InvalidCursor ("expired").

Not supported (loud errors): the protobuf and batch record protocols (``protocol_type=PB|BATCH``; 400
InvalidParameter), put_records_by_shard, subscriptions and their offsets, consumer groups, connectors, extend/append
field, schema registry, metering. Lifecycles are recorded, not enforced; to emulate retention, the emulator-only
``POST /_emulator/trim/{p}/{t}/{s}?before=SEQ`` drops a shard's records below SEQ (not a DataHub API, not signed).
State is in memory, in the emulator process (it outlives the consumers tests kill); a restart empties it.
``GET /health`` answers 200.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skewless.errors import ConfigError
from skewless.process import Service

from .emulator_http import HOST, arguments, serve

ACCESS_ID = ACCESS_KEY = "test"


def service(state: Path) -> Service:
    """The emulator as a local-cloud ``Service``: port 5058 (``SKEWLESS_LOCAL_DATAHUB_PORT``), state in memory."""
    from .ports import http_ok, service_port

    port = service_port("datahub")

    def command() -> list[str]:
        try:
            import lz4.block  # noqa: F401
        except ImportError as exc:
            raise ConfigError('the DataHub emulator needs lz4 (with pydatahub): pip install "skewless[alibaba]"') \
                from exc
        return [sys.executable, "-m", "skewless.localcloud.datahub_emulator", "--port", str(port), "--state",
                str(state)]

    return Service("datahub", HOST, port, command,
                   lambda s: http_ok(f"http://{s.host}:{s.port}/health") is not None, start_timeout=30, cwd=state)


def endpoint_options(host_port: str) -> dict:
    """The ``datahub://`` source options (and ``datahub.DataHub`` arguments) for the emulator at ``host:port``."""
    return {"endpoint": f"http://{host_port}", "access_key_id": ACCESS_ID, "access_key_secret": ACCESS_KEY}


def main() -> None:
    from .datahub_emulator_api import DataHubEmulator

    def extra(ap):
        ap.add_argument("--access-id", default=ACCESS_ID)
        ap.add_argument("--access-key", default=ACCESS_KEY)

    args = arguments("A local Alibaba Cloud DataHub (the JSON REST subset of pydatahub)", extra)
    emu = DataHubEmulator({args.access_id: args.access_key})
    serve(emu.dispatch, args.port, lambda: None)


if __name__ == "__main__":
    main()

"""A local MaxCompute (ODPS) for tests: the REST and tunnel subset pyodps 0.13 uses, SQL executed on DuckDB.

    python -m skewless.localcloud.maxcompute_emulator --port 5057 --state DIR
    odps.ODPS("test", "test", project="local", endpoint="http://127.0.0.1:5057/api",
              tunnel_endpoint="http://127.0.0.1:5057/tunnel")   # tunnel_endpoint optional: it is discovered

One port serves REST under ``/api`` and the tunnel under ``/tunnel`` (``GET /projects/{p}/tunnel?service`` names it).
Every request must carry pyodps's ``Authorization: ODPS <id>:<sig>`` (v2, or v4 with a region) for the dummy pair
``test``/``test``; a wrong signature is 401 ``SignatureNotMatch``. Projects exist on first use, one DuckDB file each
(``<state>/maxcompute/<project>.duckdb``); instances and tunnel sessions live in memory (lost on restart).

REST (exactly this; anything else is 400 ``NotSupported`` naming method and path; 4xx because pyodps retries
5xx for minutes):
    GET  /logview/host, /tenants, /projects/{p}
    GET  /projects/{p}/tunnel?service
    GET  /projects/{p}/tables                       list (name prefix filter)
    GET  /projects/{p}/tables/{t}[?extended]        metadata, 404 NoSuchTable
    GET  /projects/{p}/tables/{t}?partitions[&partition=spec]   partition list
    GET  /projects/{p}/tables/{t}?partition=spec    one partition, 404 NoSuchPartition
    POST /projects/{p}/instances                    one SQLTask; runs at once; 201 + Location
    GET  /projects/{p}/instances/{id}[?taskstatus|?result|?instancestatus|?instanceprogress|?source]
                                                    (?result: the task's CSV result or its error text)
    PUT  /projects/{p}/instances/{id}               stop (a no-op: instances finish on creation)
    PUT  /projects/{p}/logs                         pyodps's usage log, ignored
Tunnel:
    POST /projects/{p}/tables/{t}?uploads[&partition=..&create_partition&overwrite]   upload session
    PUT  ...?uploadid=..&blockid=..[&arrow]         a block: protobuf records (CRC-checked) or Arrow; replaces
                                                    a block of the same id; nothing is visible before commit
    GET  ...?uploadid=..                            session + uploaded blocks
    POST ...?uploadid=..                            commit: all blocks in one DuckDB transaction
    POST /projects/{p}/tables/{t}?downloads[&partition=..]   download session (a snapshot of the rows)
    GET  ...?downloadid=..[&data&rowrange=(s,n)&columns=..&arrow]
    POST /projects/{p}/instances/{id}?downloads[&instance_tunnel_limit_enabled]   a SELECT's result
    GET  /projects/{p}/instances/{id}?downloadid=..[&data&rowrange=(s,n)&columns=..&arrow]
Not supported (loud errors): stream upload, upsert, preview, compressed bodies other than deflate, schemas
(three-tier names), complex column types (ARRAY/MAP/STRUCT in tables), non-SQL tasks, cross-project queries. A
query may return ARRAY columns (COLLECT_LIST, ...): the instance tunnel sends them as Arrow lists.

SQL (one task = ``SET k=v;`` lines, accepted and ignored, then one or more statements run in one transaction):
    CREATE TABLE [IF NOT EXISTS] t (col TYPE [COMMENT '..'], ...) [COMMENT '..'] [PARTITIONED BY (p TYPE, ...)]
        [LIFECYCLE n]                                   LIFECYCLE is accepted and ignored: tables never expire
    CREATE TABLE [IF NOT EXISTS] t [LIFECYCLE n] AS SELECT ...
    DROP TABLE [IF EXISTS] t
    ALTER TABLE t ADD COLUMNS [IF NOT EXISTS] (col TYPE [COMMENT '..'], ...)   old rows read NULL
    ALTER TABLE t ADD [IF NOT EXISTS] PARTITION (p='v', ...) [PARTITION (...) ...]
    ALTER TABLE t DROP [IF EXISTS] PARTITION (p='v', ...) [PARTITION (...) ...]
    TRUNCATE TABLE t [PARTITION (p='v', ...)]
    INSERT INTO|OVERWRITE TABLE t [PARTITION (p='v' | p, ...)] SELECT ...   (static and dynamic partitions;
        OVERWRITE replaces the partitions written, or the whole unpartitioned table)
    SELECT / WITH ... (joins, UNION, GROUP BY, window functions, CASE, subqueries)
Types: BIGINT INT SMALLINT TINYINT DOUBLE FLOAT DECIMAL(p<=38,s) STRING VARCHAR(n) CHAR(n) BOOLEAN DATE
DATETIME (millisecond precision, DuckDB TIMESTAMP_MS) TIMESTAMP (nanosecond, TIMESTAMP_NS) BINARY. All times UTC.
Functions: see ``maxcompute_emulator_sql.SUPPORTED_FUNCTIONS``; MaxCompute's DATEADD, DATEDIFF, DATETRUNC (date parts
yyyy/year, mm/month/mon, dd/day, hh/hour, mi/minute, ss/second, ff3), TO_MILLIS, FROM_UNIXTIME, UNIX_TIMESTAMP,
GETDATE, TO_DATE, TO_CHAR (formats yyyy mm dd hh mi ss ff3) are translated; CAST fails on bad input (no NULL).
What training sets' aggregations use, with the meaning Alibaba Cloud documents: ISNAN (false for NULL), VAR_SAMP,
STDDEV_SAMP, ARG_MAX(valueToMaximize, valueToReturn) (rows with a NULL first argument skipped, a NULL result kept),
COLLECT_LIST (NULLs skipped; [] when nothing is left, as Hive), SORT_ARRAY(a[, isasc]) (NULL least; structs field by
field), SLICE(a, start, length) (a literal start >= 1 only), TRANSFORM(a, x -> expr), NAMED_STRUCT, ARRAY(v, ...).
VARIANCE/STDDEV stay refused (population statistics in MaxCompute, sample ones in DuckDB).
Any other statement, function or type fails the instance with an ``ODPS-...`` message that names it.
Result types: DuckDB's HUGEINT sums become BIGINT and microsecond timestamps TIMESTAMP, as in MaxCompute.
The conventional result (``open_reader(tunnel=False)``, CSV) carries DATETIME in whole seconds, the format
pyodps parses; the instance tunnel keeps milliseconds (DATETIME) and nanoseconds (TIMESTAMP).
Not emulated: hints/settings (accepted, ignored), full-scan protection of partitioned tables, lifecycles, quotas,
ACLs, logview; instances finish inside the POST that creates them (status is Terminated at once); concurrent writes
(each SQL task and tunnel commit is one transaction of its own, in turn: a tunnel upload committing while an INSERT
OVERWRITE rewrites its partition is never lost here, as it can be on MaxCompute).
"""

from __future__ import annotations

import sys
from pathlib import Path

from skewless.errors import ConfigError

from .emulator_http import HOST, arguments, serve
from skewless.process import Service

DEFAULT_PROJECT = "local"


def __getattr__(name):  # the server needs pyodps, DuckDB and pyarrow (the alibaba extra): load them only when used
    if name == "MaxComputeEmulator":
        from .maxcompute_emulator_rest import MaxComputeEmulator

        return MaxComputeEmulator
    raise AttributeError(name)


def service(state: Path) -> Service:
    """The emulator as a local-cloud ``Service``: port 5057 (``SKEWLESS_LOCAL_MAXCOMPUTE_PORT``), projects in
    ``<state>/maxcompute/``."""
    from .ports import http_ok, service_port

    port = service_port("maxcompute")

    def command() -> list[str]:
        try:
            import duckdb  # noqa: F401
            import odps  # noqa: F401
        except ImportError as exc:
            raise ConfigError('the MaxCompute emulator needs pyodps and duckdb: pip install "skewless[alibaba]"') \
                from exc
        return [sys.executable, "-m", "skewless.localcloud.maxcompute_emulator", "--port", str(port), "--state",
                str(state)]

    return Service("maxcompute", HOST, port, command,
                   lambda s: http_ok(f"http://{s.host}:{s.port}/health") is not None, start_timeout=30, cwd=state)


def endpoint_options(host_port: str, project: str = DEFAULT_PROJECT) -> dict:
    """Keyword arguments for ``odps.ODPS(**...)`` against the emulator at ``host:port``."""
    return {"access_id": "test", "secret_access_key": "test", "project": project,
            "endpoint": f"http://{host_port}/api", "tunnel_endpoint": f"http://{host_port}/tunnel"}


def main() -> None:
    from .maxcompute_emulator_rest import MaxComputeEmulator

    args = arguments("A local MaxCompute (REST + tunnel subset of pyodps, SQL on DuckDB)")
    emu = MaxComputeEmulator(args.state, args.port)
    serve(emu.dispatch, args.port, emu.close)


if __name__ == "__main__":
    main()

"""The local MaxCompute emulator, driven only through pyodps (the real client): DDL and partitions, tunnel round
trips (records and Arrow) of every supported type, atomic upload commits, SQL equal to a DuckDB reference, the
instance tunnel, signatures and loud rejections."""

import datetime as dt
import decimal
import uuid

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

odps = pytest.importorskip("odps")  # the alibaba extra
from odps import ODPS, errors, options  # noqa: E402
from odps.tunnel import TableTunnel  # noqa: E402

PROJECT = "skewless_emulator_test"
TYPES = [("i64", "bigint"), ("i32", "int"), ("i16", "smallint"), ("i8", "tinyint"), ("f64", "double"),
         ("f32", "float"), ("s", "string"), ("b", "boolean"), ("dtm", "datetime"), ("ts", "timestamp"),
         ("dec", "decimal(18,6)"), ("day", "date"), ("bin", "binary")]
ROWS = [
    [1, 2, 3, 4, 1.5, 0.25, "héllo", True, dt.datetime(2024, 1, 2, 3, 4, 5, 678000),
     pd.Timestamp("2024-01-02 03:04:05.123456789"), decimal.Decimal("12.345678"), dt.date(2024, 1, 2), b"\x00\xff"],
    [-(2**62), -2, -3, -4, -1e300, -2.5, "", False, dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
     pd.Timestamp("1969-12-31 23:59:59.999999999"), decimal.Decimal("-0.000001"), dt.date(1900, 1, 1), b""],
    [None] * len(TYPES),
]


@pytest.fixture(autouse=True)
def utc():
    """Read and write times as UTC (pyodps converts to the machine's zone otherwise)."""
    saved, options.local_timezone = options.local_timezone, False
    yield
    options.local_timezone = saved


@pytest.fixture(scope="module")
def o(maxcompute_endpoint):
    return ODPS(**{**maxcompute_endpoint, "project": PROJECT})


@pytest.fixture
def name(o):
    """A fresh table name, dropped afterwards."""
    n = f"t_{uuid.uuid4().hex[:10]}"
    yield n
    o.execute_sql(f"DROP TABLE IF EXISTS {n}")


def _create_all_types(o, name, partitioned=True):
    cols = ", ".join(f"{c} {t.upper()}" for c, t in TYPES)
    o.execute_sql(f"CREATE TABLE {name} ({cols}) {'PARTITIONED BY (ds STRING)' if partitioned else ''} LIFECYCLE 1")
    return o.get_table(name)


def _values(rows):
    return [list(r) for r in rows]


def test_ddl_partitions_and_metadata(o, name):
    assert not o.exist_table(name)
    t = _create_all_types(o, name)
    assert o.exist_table(name)
    assert [(c.name, str(c.type).lower()) for c in t.table_schema.simple_columns] == TYPES
    assert [p.name for p in t.table_schema.partitions] == ["ds"]
    assert name in [x.name for x in o.list_tables(prefix=name[:6])]
    o.execute_sql(f"ALTER TABLE {name} ADD PARTITION (ds='20240101') PARTITION (ds='20240102')")
    o.execute_sql(f"ALTER TABLE {name} ADD IF NOT EXISTS PARTITION (ds='20240101')")
    with pytest.raises(errors.ODPSError, match="already exists"):
        o.execute_sql(f"ALTER TABLE {name} ADD PARTITION (ds='20240101')")
    assert [str(p.partition_spec) for p in t.partitions] == ["ds='20240101'", "ds='20240102'"]
    assert t.exist_partition("ds='20240102'")
    o.execute_sql(f"ALTER TABLE {name} DROP PARTITION (ds='20240102')")
    assert not t.exist_partition("ds='20240102'")
    with pytest.raises(errors.ODPSError, match="already exists"):
        o.execute_sql(f"CREATE TABLE {name} (a BIGINT)")
    o.execute_sql(f"CREATE TABLE IF NOT EXISTS {name} (a BIGINT)")  # a no-op
    o.execute_sql(f"DROP TABLE {name}")
    assert not o.exist_table(name)
    with pytest.raises(errors.NoSuchTable):
        o.execute_sql(f"DROP TABLE {name}")


@pytest.mark.parametrize("arrow", [False, True], ids=["records", "arrow"])
def test_tunnel_round_trip_of_every_type(o, name, arrow):
    t = _create_all_types(o, name)
    if arrow:
        data = pa.Table.from_pylist([dict(zip([c for c, _ in TYPES], r)) for r in ROWS], schema=_arrow_schema(t))
        with t.open_writer(partition="ds='20240101'", create_partition=True, arrow=True) as w:
            w.write(data)
        with t.open_reader(partition="ds='20240101'", arrow=True) as r:
            got = r.read_all()
        assert got.schema == data.schema
        assert got.to_pylist() == data.to_pylist()
    else:
        with t.open_writer(partition="ds='20240101'", create_partition=True) as w:
            w.write(ROWS)
        with t.open_reader(partition="ds='20240101'") as r:
            got = [rec.values[: len(TYPES)] for rec in r]
        assert got == _values(ROWS)
    # the same rows through SQL: nanoseconds and milliseconds kept exactly
    inst = o.execute_sql(f"SELECT ts, dtm, dec, bin FROM {name} WHERE ds = '20240101' AND i64 IS NOT NULL "
                         "ORDER BY i64 DESC")
    with inst.open_reader(tunnel=True) as r:
        assert [rec.values for rec in r] == [[row[9], row[8], row[10], row[12]] for row in ROWS[:2]]


def _arrow_schema(t):
    from odps.tunnel.io.types import odps_schema_to_arrow_schema

    return odps_schema_to_arrow_schema(t.table_schema)


def test_upload_is_invisible_until_commit(o, name):
    t = _create_all_types(o, name)
    tunnel = TableTunnel(o)
    session = tunnel.create_upload_session(name, partition_spec="ds='20240105'", create_partition=True)
    with session.open_record_writer(0) as w:
        for row in ROWS:
            w.write(session.new_record(row))
    # written, not committed: neither the rows nor the partition they would create exist
    assert not t.exist_partition("ds='20240105'")
    with o.execute_sql(f"SELECT COUNT(*) AS n FROM {name}").open_reader(tunnel=True) as r:
        assert [rec["n"] for rec in r] == [0]
    session.commit([0])
    assert t.exist_partition("ds='20240105'")
    with o.execute_sql(f"SELECT COUNT(*) AS n FROM {name}").open_reader(tunnel=True) as r:
        assert [rec["n"] for rec in r] == [3]
    # an upload to a partition that does not exist, without create_partition, is refused
    with pytest.raises(errors.ODPSError, match="20240106"):
        tunnel.create_upload_session(name, partition_spec="ds='20240106'")


def test_corrupt_block_is_rejected(o, name):
    _create_all_types(o, name, partitioned=False)
    session = TableTunnel(o).create_upload_session(name)
    with session.open_record_writer(0) as w:
        w.write(session.new_record(ROWS[0]))
    good = _block_bytes(session)
    bad = bytearray(good)
    bad[3] ^= 0x55
    with pytest.raises(errors.ODPSError, match="(?i)checksum|bad record"):
        session._client.put(session._table.table_resource(), data=bytes(bad),
                            params={"uploadid": session.id, "blockid": "1"})


def _block_bytes(session):
    import io

    from odps.tunnel.io.writer import BaseRecordWriter

    class Sink(io.BytesIO):
        def close(self):
            pass

    out = Sink()
    w = BaseRecordWriter(session.schema, out)
    w.write(session.new_record(ROWS[0]))
    w.close()
    return out.getvalue()


def _load(o, name, ddl, table: pa.Table, partition=None):
    o.execute_sql(f"CREATE TABLE {name} ({ddl})" + (" PARTITIONED BY (ds STRING)" if partition else ""))
    with o.get_table(name).open_writer(partition=partition, create_partition=bool(partition), arrow=True) as w:
        w.write(table)


def test_sql_with_windows_and_joins_equals_duckdb(o, name):
    events = pa.table({"entity": [1, 1, 1, 2, 2, 3], "ts": [10, 20, 30, 15, 15, 5],
                       "v": [1.0, 2.0, None, 4.0, 5.0, 6.0], "tag": ["a", "b", "c", "d", "e", None]})
    queries = pa.table({"entity": [1, 1, 2, 3, 4], "at": [25, 5, 15, 100, 1]})
    ev, qu = name, name + "_q"
    try:
        _load(o, ev, "entity BIGINT, ts BIGINT, v DOUBLE, tag STRING", events, partition="ds='20240101'")
        _load(o, qu, "entity BIGINT, at BIGINT", queries)
        mc_sql = f"""
            WITH j AS (
              SELECT q.entity, q.at, e.v, e.tag, e.ts,
                     ROW_NUMBER() OVER (PARTITION BY q.entity, q.at ORDER BY e.ts DESC, e.tag DESC) AS rn
              FROM `{qu}` AS q LEFT JOIN {ev} AS e ON q.entity = e.entity AND e.ts <= q.at AND e.ds >= '20240101')
            SELECT entity, at, v, CASE WHEN tag IS NULL THEN 'none' ELSE CONCAT(tag, '!') END AS tag,
                   NVL(ts, -1) AS ts, SUM(entity) OVER (PARTITION BY at) AS s
            FROM j WHERE rn = 1 ORDER BY entity, at"""
        duck_sql = """
            WITH j AS (
              SELECT q.entity, q."at", e.v, e.tag, e.ts,
                     row_number() OVER (PARTITION BY q.entity, q."at" ORDER BY e.ts DESC NULLS LAST,
                                        e.tag DESC NULLS LAST) AS rn
              FROM queries q LEFT JOIN events e ON q.entity = e.entity AND e.ts <= q."at")
            SELECT entity, "at", v, CASE WHEN tag IS NULL THEN 'none' ELSE tag || '!' END AS tag,
                   coalesce(ts, -1) AS ts, sum(entity) OVER (PARTITION BY "at") AS s
            FROM j WHERE rn = 1 ORDER BY entity, "at" """
        with o.execute_sql(mc_sql).open_reader(tunnel=True, arrow=True) as r:
            got = r.read_all()
        ref = duckdb.connect()
        ref.register("events", events)
        ref.register("queries", queries)
        want = ref.sql(duck_sql).to_arrow_table()
        assert got.column_names == ["entity", "at", "v", "tag", "ts", "s"]
        assert got.to_pylist() == want.to_pylist()
        assert got.schema.field("s").type == pa.int64()  # DuckDB's HUGEINT sum comes back as MaxCompute BIGINT
    finally:
        o.execute_sql(f"DROP TABLE IF EXISTS {qu}")


def test_insert_overwrite_dynamic_partitions_ctas_and_add_columns(o, name):
    src = name + "_src"
    try:
        _load(o, src, "k BIGINT, ds STRING", pa.table({"k": [1, 2, 3], "ds": ["a", "a", "b"]}))
        o.execute_sql(f"CREATE TABLE {name} (k BIGINT) PARTITIONED BY (ds STRING)")
        o.execute_sql(f"INSERT INTO TABLE {name} PARTITION (ds) SELECT k, ds FROM {src}")
        o.execute_sql(f"INSERT INTO TABLE {name} PARTITION (ds='c') SELECT k * 10 FROM {src}")
        o.execute_sql(f"INSERT OVERWRITE TABLE {name} PARTITION (ds='a') SELECT 100")
        assert sorted(str(p.partition_spec) for p in o.get_table(name).partitions) == ["ds='a'", "ds='b'", "ds='c'"]
        rows = _rows(o, f"SELECT ds, k FROM {name} ORDER BY ds, k")
        assert rows == [["a", 100], ["b", 3], ["c", 10], ["c", 20], ["c", 30]]
        # CTAS is create-if-absent: a second one on the same name fails, whatever it selects
        o.execute_sql(f"CREATE TABLE {name}_c AS SELECT CAST(1 AS BIGINT) AS batch, 'x' AS doc")
        with pytest.raises(errors.ODPSError, match="ODPS-0130211"):
            o.execute_sql(f"CREATE TABLE {name}_c AS SELECT CAST(2 AS BIGINT) AS batch, 'y' AS doc")
        assert _rows(o, f"SELECT * FROM {name}_c") == [[1, "x"]]
        # schema growth: new columns before the partition columns, NULL in old rows
        o.execute_sql(f"ALTER TABLE {name} ADD COLUMNS (extra DOUBLE COMMENT 'new')")
        assert [c.name for c in o.get_table(name).table_schema.columns] == ["k", "extra", "ds"]
        o.execute_sql(f"INSERT INTO TABLE {name} PARTITION (ds='b') SELECT 4, 0.5")
        assert _rows(o, f"SELECT * FROM {name} WHERE ds = 'b' ORDER BY k") == [[3, None, "b"], [4, 0.5, "b"]]
    finally:
        for t in (src, name + "_c"):
            o.execute_sql(f"DROP TABLE IF EXISTS {t}")


def _rows(o, sql):
    with o.execute_sql(sql).open_reader(tunnel=True) as r:
        return [rec.values for rec in r]


def test_date_functions(o):
    got = _rows(o, """SELECT DATEADD(CAST('2024-01-31 10:00:00' AS DATETIME), 1, 'mm') AS a,
                             DATEADD(CAST('2024-01-01 00:00:00' AS DATETIME), -3, 'hh') AS b,
                             DATEDIFF(CAST('2024-01-03 00:00:00' AS DATETIME), CAST('2024-01-01 23:59:59' AS DATETIME),
                                      'dd') AS c,
                             TO_MILLIS(CAST('1970-01-01 00:00:01.5' AS DATETIME)) AS d,
                             FROM_UNIXTIME(86400) AS e,
                             TO_CHAR(CAST('2024-02-03 04:05:06' AS DATETIME), 'yyyy-mm-dd hh:mi:ss') AS f,
                             DATETRUNC(CAST('2024-02-03 04:05:06' AS DATETIME), 'dd') AS g,
                             UNIX_TIMESTAMP(CAST('1970-01-02 00:00:00' AS DATETIME)) AS h,
                             TO_DATE('2024-05-06 07:08:09', 'yyyy-mm-dd hh:mi:ss') AS i""")
    assert got == [[dt.datetime(2024, 2, 29, 10), dt.datetime(2023, 12, 31, 21), 2, 1500, dt.datetime(1970, 1, 2),
                    "2024-02-03 04:05:06", dt.datetime(2024, 2, 3), 86400, dt.datetime(2024, 5, 6, 7, 8, 9)]]
    sql = "SELECT FLOOR(-2.5) AS f, CEIL(2.1) AS c, INSTR('abc', 'c') AS i, SUBSTR('hello', -3, 2) AS s"
    with o.execute_sql(sql).open_reader(tunnel=True, arrow=True) as r:
        got = r.read_all()
    assert got.to_pylist() == [{"f": -3, "c": 3, "i": 3, "s": "ll"}]
    assert got.schema.field("f").type == got.schema.field("c").type == pa.int64()  # BIGINT, as in MaxCompute
    (now,), = _rows(o, "SELECT GETDATE()")
    assert abs((now - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).total_seconds()) < 60


def test_instance_tunnel_arrow_types_and_limit(o, name):
    t = _create_all_types(o, name, partitioned=False)
    with t.open_writer() as w:
        w.write(ROWS)
    inst = o.execute_sql(f"SELECT i64, ts, dtm, dec, SUM(i32) OVER () AS total FROM {name} ORDER BY i64 NULLS LAST")
    with inst.open_reader(tunnel=True, arrow=True) as r:
        got = r.read_all()
    assert got.schema.types == [pa.int64(), pa.timestamp("ns"), pa.timestamp("ms"), pa.decimal128(18, 6), pa.int64()]
    assert got.column("ts").to_pylist() == [ROWS[1][9], ROWS[0][9], None]
    assert got.column("total").to_pylist() == [0, 0, 0]
    assert got.column("i64").to_pylist() == [-(2**62), 1, None]
    with inst.open_reader(tunnel=True, limit=True) as r:  # MaxCompute's limited mode: at most 10000 rows
        assert r.count == 3
    with inst.open_reader(tunnel=False) as r:  # the conventional CSV result
        assert [rec["i64"] for rec in r] == [-(2**62), 1, None]


def test_aggregation_functions_and_array_results(o, name):
    """What a training set's aggregations use (adapters/alibaba/maxcompute_sql.py), with MaxCompute's meaning; ARRAY
    results come back through the instance tunnel as Arrow lists."""
    o.execute_sql(f"CREATE TABLE {name} (g BIGINT, o BIGINT, v DOUBLE) LIFECYCLE 1")
    with o.get_table(name).open_writer() as w:
        w.write([[1, 1, 1.0], [1, 3, None], [1, 2, float("nan")], [1, None, 5.0], [2, None, 7.0]])
    newest = ("TRANSFORM(SLICE(SORT_ARRAY(COLLECT_LIST(CASE WHEN o IS NULL THEN NULL ELSE NAMED_STRUCT('o', o, 'v', v) "
              "END), FALSE), 1, 2), s -> s.v)")
    sql = f"""SELECT g, ARG_MAX(o, v) AS last, ARG_MAX(v, o) AS o_of_max_v, VAR_SAMP(o) AS var, STDDEV_SAMP(o) AS sd,
                     SORT_ARRAY(COLLECT_LIST(o)) AS os, {newest} AS newest, SLICE(ARRAY(CAST(NULL AS DOUBLE)), 1, 0) AS e,
                     SUM(isnan_v) AS nans, SUM(CAST(o AS DECIMAL(38, 0))) AS wide
              FROM (SELECT g, o, v, CASE WHEN ISNAN(v) THEN 1 ELSE 0 END AS isnan_v FROM {name}) AS t
              GROUP BY g ORDER BY g"""
    with o.execute_sql(sql).open_reader(tunnel=True, arrow=True) as r:
        got = r.read_all()
    assert got.schema.field("os").type == pa.list_(pa.int64()) and pa.types.is_list(got.schema.field("newest").type)
    assert pa.types.is_decimal(got.schema.field("wide").type)  # exact: no float on the way
    one, two = got.to_pylist()
    # ARG_MAX(valueToMaximize, valueToReturn): the row of o = 3, its null v kept; rows with a null o are skipped
    assert one["last"] is None and two["last"] is None
    assert one["var"] == 1.0 and one["sd"] == 1.0 and two["var"] is None
    assert one["os"] == [1, 2, 3] and two["os"] == []  # COLLECT_LIST skips NULLs; nothing left: []
    assert one["newest"][0] is None and one["newest"][1] != one["newest"][1] and len(one["newest"]) == 2  # o=3, o=2
    assert two["newest"] == [] and one["e"] == [] == two["e"]
    assert one["nans"] == 1 and two["nans"] == 0 and one["wide"] == decimal.Decimal(6)
    (flags,), = _rows(o, "SELECT ISNAN(CAST(NULL AS DOUBLE)) AS n")
    assert flags is False  # NULL is not NaN (false, not NULL)


def test_wrong_credentials_are_refused(maxcompute_endpoint):
    bad = ODPS(**{**maxcompute_endpoint, "project": PROJECT, "secret_access_key": "not-test"})
    with pytest.raises(errors.SignatureNotMatch):
        bad.exist_table("anything")
    stranger = ODPS(**{**maxcompute_endpoint, "project": PROJECT, "access_id": "someone"})
    with pytest.raises(errors.ODPSError, match="someone"):
        stranger.exist_table("anything")


@pytest.mark.parametrize("sql, error, text", [
    ("SELECT WEEKDAY(GETDATE())", errors.ODPSError, "function WEEKDAY is not supported"),
    ("SELECT DATEADD(GETDATE(), 1, 'week')", errors.ODPSError, "date part 'week'"),
    ("SELECT STDDEV(1.0)", errors.ODPSError, "function STDDEV"),  # population in MaxCompute, sample in DuckDB
    ("SELECT VARIANCE(1.0)", errors.ODPSError, "function VARIANCE"),  # the same
    ("SELECT SLICE(ARRAY(1, 2), -1, 1)", errors.ODPSError, "SLICE from -1"),
    ("SELECT GREATEST(1, 2)", errors.ODPSError, "function GREATEST"),
    ("DESC some_table", errors.ODPSError, "not supported"),
    ("INSERT INTO TABLE x VALUES (1)", errors.ODPSError, "VALUES"),
    ("SELECT * FROM no_such_table_here", errors.NoSuchTable, "no_such_table_here"),
    ("SELECT * FROM other_project.t", errors.ODPSError, "only tables of the current project"),
    ("SELECT FROM WHERE", errors.ParseError, "ODPS-0130161"),
    ("SELECT CAST('abc' AS BIGINT)", errors.ODPSError, "Conversion"),
    ("CREATE TABLE bad_types (a ARRAY<BIGINT>)", errors.ODPSError, "ARRAY"),
])
def test_unsupported_or_wrong_sql_fails_loudly(o, sql, error, text):
    with pytest.raises(error, match=text):
        o.execute_sql(sql)


def test_v4_signature_overwrite_upload_and_column_subsets(maxcompute_endpoint, name):
    o4 = ODPS(**{**maxcompute_endpoint, "project": PROJECT}, region_name="cn-local")  # pyodps signs v4 then
    o4.execute_sql(f"CREATE TABLE {name} (a BIGINT, b STRING) PARTITIONED BY (ds STRING, hh STRING)")
    t = o4.get_table(name)
    with t.open_writer(partition="ds=1,hh=2", create_partition=True) as w:
        w.write([[1, "a"], [2, "b"]])
    with t.open_writer(partition="ds=1,hh=2", overwrite=True) as w:  # replaces the partition's rows
        w.write([[3, "c"]])
    with t.open_reader(partition="ds=1,hh=2", columns=["b", "a"]) as r:
        assert [rec.values for rec in r] == [["c", 3]]
    with t.open_reader(partition="ds=1,hh=2", columns=["b"], arrow=True) as r:
        assert r.read_all().to_pylist() == [{"b": "c"}]
    with pytest.raises(errors.ODPSError, match="(?i)partition"):  # MaxCompute downloads one partition at a time
        TableTunnel(o4).create_download_session(name)


def test_tunnel_features_outside_the_subset_are_refused(o, name):
    o.execute_sql(f"CREATE TABLE {name} (a BIGINT)")
    with pytest.raises(errors.ODPSError, match="does not implement"):
        TableTunnel(o).create_stream_upload_session(name)


def test_large_bodies_cross_chunk_boundaries(o, name):
    """Bodies far over pyodps's 64 KiB tunnel chunk: every chunk's CRC and the final one must hold."""
    n = 60_000
    data = pa.table({"a": pa.array(range(n), pa.int64()), "s": [f"row-{i:06d}" for i in range(n)]})
    _load(o, name, "a BIGINT, s STRING", data)
    inst = o.execute_sql(f"SELECT a, s FROM {name} ORDER BY a DESC")
    with inst.open_reader(tunnel=True, arrow=True, limit=False) as r:
        got = pa.Table.from_batches(list(r))
    assert got.num_rows == n and got.column("a").to_pylist() == list(range(n - 1, -1, -1))
    with inst.open_reader(tunnel=True, limit=False) as r:
        assert sum(1 for _ in r) == n
    with o.get_table(name).open_reader(arrow=True) as r:
        assert r.read_all().equals(data)


def test_concurrent_uploads_and_sql_tasks(o, name):
    from concurrent.futures import ThreadPoolExecutor

    o.execute_sql(f"CREATE TABLE {name} (a BIGINT) PARTITIONED BY (ds STRING)")

    def upload(i):
        with o.get_table(name).open_writer(partition=f"ds='{i}'", create_partition=True, arrow=True) as w:
            w.write(pa.table({"a": pa.array(range(i * 100, i * 100 + 100), pa.int64())}))

    def ctas(i):
        try:
            o.execute_sql(f"CREATE TABLE {name}_c AS SELECT CAST({i} AS BIGINT) AS winner")
            return True
        except errors.ODPSError as exc:
            assert "ODPS-0130211" in str(exc)
            return False

    try:
        with ThreadPoolExecutor(8) as pool:
            ups = [pool.submit(upload, i) for i in range(8)]
            wins = [pool.submit(ctas, i) for i in range(4)]
            [f.result() for f in ups]
            assert sum(f.result() for f in wins) == 1  # create-if-absent: exactly one CTAS wins
        assert _rows(o, f"SELECT COUNT(*), COUNT(DISTINCT ds), SUM(a) FROM {name}") == [[800, 8, sum(range(800))]]
    finally:
        o.execute_sql(f"DROP TABLE IF EXISTS {name}_c")


def test_a_failing_task_changes_nothing(o, name):
    """One SQL task is one transaction: the INSERT's conversion error undoes the CREATE before it."""
    with pytest.raises(errors.ODPSError, match="(?i)ODPS-0121095.*conver"):
        o.execute_sql(f"CREATE TABLE {name} (a BIGINT); INSERT INTO TABLE {name} SELECT 'not a number'")
    assert not o.exist_table(name)

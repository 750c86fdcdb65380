"""The MaxCompute dialect renders the one PIT definition (pit.py) correctly, checked without MaxCompute: the rendered
MaxCompute SQL is parsed back (read=MaxCompute), written as DuckDB SQL and run on DuckDB over tables laid out as the
MaxCompute engine lays them out (instants as BIGINT epoch microseconds), against the spec oracle."""

import random
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from tests.support import oracle
from skewless.adapters.alibaba.maxcompute_sql import MaxCompute
from skewless.offline.pit import ENTITY_ROW, FeatureColumn, PitQuery, ViewQuery, latest_per_entity, render

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HIST = ("k", "event_timestamp", "created_timestamp", "_skewless_batch", "_skewless_row", "x")


def us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def history(seed: int, n: int = 300):
    rnd = random.Random(seed)
    rows = []
    for b in range(3):  # three writes; within and across them rows tie on event, and on event and created
        for i in range(n // 3):
            rows.append(oracle.Row((rnd.randint(1, 8),), T0 + timedelta(hours=rnd.randint(0, 30)),
                                   T0 + timedelta(hours=rnd.randint(0, 40)), (b, i), {"x": float(rnd.randint(0, 99))}))
    table = pa.table({"k": [r.key[0] for r in rows], "event_timestamp": [us(r.event_ts) for r in rows],
                      "created_timestamp": [us(r.created_ts) for r in rows],
                      "_skewless_batch": [r.write_order[0] for r in rows],
                      "_skewless_row": [r.write_order[1] for r in rows], "x": [r.values["x"] for r in rows]})
    return rows, table


def on_duckdb(maxcompute_sql: str, **tables) -> list[dict]:
    sql = sqlglot.transpile(maxcompute_sql, read=MaxCompute, write="duckdb")[0]
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con.sql(sql).to_arrow_table().to_pylist()


@pytest.mark.parametrize("point_in_time", ["event", "available"])
@pytest.mark.parametrize("ttl", [None, timedelta(hours=5), timedelta(microseconds=1)])
def test_rendered_pit_sql_equals_the_oracle(point_in_time, ttl):
    rows, hist = history(1)
    rnd = random.Random(2)
    ents = [{"k": rnd.choice([*range(10), None]), "event_timestamp": T0 + timedelta(hours=rnd.randint(-2, 42),
                                                                                    microseconds=rnd.choice([0, 1]))}
            for _ in range(400)]
    entity = pa.table({ENTITY_ROW: list(range(len(ents))), "event_timestamp": [us(e["event_timestamp"]) for e in ents],
                       "k": pa.array([e["k"] for e in ents], pa.int64())})
    view = ViewQuery("v", ("k",), (FeatureColumn("x", "x"),), ttl, "(SELECT * FROM hist)", "v__event_timestamp")
    pq = PitQuery("entity", (), "event_timestamp", (view,), point_in_time, ordered=False)
    sql = render(pq, dialect=MaxCompute, strategy="window")
    assert "INTERVAL" not in sql.upper() and "`_skewless_entity_row`" in sql  # integer bounds, backtick identifiers
    got = sorted(on_duckdb(sql, entity=entity, hist=hist), key=lambda r: r[ENTITY_ROW])
    want = oracle.training_set({"v": (["k"], ttl, rows)}, ents, ["v:x"], point_in_time=point_in_time,
                               with_statuses=True)
    assert [g[ENTITY_ROW] for g in got] == list(range(len(ents)))
    assert [g["x"] for g in got] == [w["x"] for w in want]
    assert [g["v__event_timestamp"] for g in got] == [
        None if w["__event_ts__"]["x"] is None else us(w["__event_ts__"]["x"]) for w in want]
    assert sum(g["x"] is not None for g in got) > 30  # not vacuous


@pytest.mark.parametrize("tie_level", [0, 1, 2])
@pytest.mark.parametrize("start", [None, T0 + timedelta(hours=10)])
def test_rendered_latest_per_entity_equals_the_oracle(tie_level, start):
    rows, hist = history(3)
    if tie_level < 2:  # keep only rows the level allows: no (key, event, created) ties, and at level 0 no event ties
        seen, kept = set(), []
        for r in rows:
            ident = (r.key, r.event_ts) if tie_level == 0 else (r.key, r.event_ts, r.created_ts)
            if ident not in seen:
                seen.add(ident)
                kept.append(r)
        rows = kept
        hist = hist.filter(pa.array([(r.key, r.event_ts, r.created_ts, r.write_order) in
                                     {(k.key, k.event_ts, k.created_ts, k.write_order) for k in kept}
                                     for r in history(3)[0]]))
    end = T0 + timedelta(hours=25)
    sql = latest_per_entity("(SELECT * FROM hist)", ("k",), ("x",), str(us(end)),
                            str(us(start)) if start else None, tie_level=tie_level, dialect=MaxCompute)
    got = on_duckdb(sql, hist=hist)
    keys = sorted({r.key[0] for r in rows})
    ttl = end - start if start else None  # rows with event in [start, end] are those within that TTL at t = end
    want = [w for w in oracle.training_set({"v": (["k"], ttl, rows)}, [{"k": k, "event_timestamp": end} for k in keys],
                                           ["v:x"], with_statuses=True) if w["__status__"]["x"] == oracle.PRESENT]
    assert [g["k"] for g in got] == [w["k"] for w in want]  # key order, entities without rows left out
    assert [(g["x"], g["event_timestamp"]) for g in got] == [(w["x"], us(w["__event_ts__"]["x"])) for w in want]
    assert list(got[0]) == list(HIST)


def test_other_interval_units_are_refused_not_rendered_wrong():
    with pytest.raises(sqlglot.errors.UnsupportedError, match="epoch microseconds"):
        sqlglot.transpile("SELECT t - INTERVAL '2' HOUR FROM x", read="duckdb", write=MaxCompute)


def test_derived_tables_get_an_alias_and_identifiers_backticks():
    sql = sqlglot.transpile('SELECT "k" FROM (SELECT * FROM h) WHERE "k" > 1', read="duckdb", write=MaxCompute)[0]
    assert sql == "SELECT `k` FROM (SELECT * FROM h) AS _d0 WHERE `k` > 1"
    assert sqlglot.transpile(sql, read="maxcompute", write="duckdb")[0] == \
        'SELECT "k" FROM (SELECT * FROM h) AS _d0 WHERE "k" > 1'


@pytest.mark.parametrize("tie_level", [0, 2])
def test_aggregations_render_in_maxcompute_functions_only(tie_level):
    """The shared training-set rendering (aggregation/sql.py) transpiled: only MaxCompute's documented functions,
    instants as plain integers, the Int64 sum unchecked as DECIMAL(38, 0) (checked after download), VAR_SAMP not
    VARIANCE (a population variance in MaxCompute), ARG_MAX with its arguments swapped."""
    from skewless import dtypes
    from skewless.aggregation.sql import AggColumn, AggViewQuery, render_training

    aggs = (AggColumn("s", "sum", "n", 3600, None, dtypes.Int64), AggColumn("v", "var", "x", 7200, None, dtypes.Float64),
            AggColumn("l", "last", "x", 7200, None, dtypes.Float64),
            AggColumn("lk", "last_k", "x", 7200, 2, dtypes.Float64))
    vq = AggViewQuery("view", ("k",), 3600, "eid", "hist", aggs, tie_level)
    for pit in ("event", "available"):
        sql = render_training("ent", "ts", vq, pit, dialect=MaxCompute)
        upper = sql.upper()
        for absent in ("EPOCH_US", "ERROR(", "VARIANCE(", "ARG_MAX_NULL", "MAX_BY", "QUALIFY", "HUGEINT", "{'"):
            assert absent not in upper, (absent, sql)
        for present in ("VAR_SAMP(", "ISNAN(", "SUM(CASE WHEN H.__EV > E.__S0 THEN CAST(H.`N` AS DECIMAL(38, 0))",
                        "COLLECT_LIST(", "SORT_ARRAY(", "TRANSFORM(SLICE(", "SLICE(ARRAY(CAST(NULL AS DOUBLE)), 1, 0)"):
            assert present in upper, (present, sql)
        order = "NAMED_STRUCT('e', h.__ev" if tie_level else "h.__ev"
        assert f"ARG_MAX({order}" in sql  # ARG_MAX(valueToMaximize, valueToReturn)
        assert "`ts` AS __t" in sql and "`event_timestamp` AS __ev" in sql  # BIGINT microseconds already

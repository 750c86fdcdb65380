"""Property-based tests: the SDK against the brute-force oracle (tests/support/oracle.py) built from the time spec.

Two properties:

* ``test_historical_matches_oracle`` — random histories (ties on event and created time, TTL boundaries, late and
  future rows, several ingest calls, created timestamps given / null / absent, input time zones), random entity
  tables (duplicates, null keys, mixed time zones, extra columns), both point-in-time modes: every output row equals
  the oracle's, including the winner's event timestamp. For point_in_time="event" the portable ``window`` SQL form
  is checked too (internal ``engine.pit_sql(..., strategy="window")``; the public path uses DuckDB's ASOF join).
  Entity and ingest data come as pandas or pyarrow, timestamps as UTC / naive / other zones / ISO strings.
* ``test_online_matches_model_and_invariant`` — random interleavings of ingests, ``materialize`` and
  ``materialize_incremental``: online reads at ``now >= T`` equal a spec model of the online store (newest-wins
  writes from ingest pushes and materializations, TTL at read time), and — for every (view, entity) whose rows were
  all covered by a push or a later materialization — equal the oracle's value at ``t = now`` and the SDK's own
  historical retrieval at ``t = now`` (the spec's invariant). Also a read at the real clock (no ``now``).

The tests at the end are minimised findings (fixed in the SDK); they stay as regression tests.

Why timestamps are relative to the wall clock and not in 2024: ``ingest`` pushes each batch's newest row online
*at the wall-clock time of the ingest* (rows after the wall clock are left to materialization), and the
``now=`` override of ``get_online_features`` cannot move that. So every generated instant lies either in a "past"
band (3..1 days before the test started) or a "future" band (1..2 days after), never near the wall clock; ordering
against the real write time (``created_timestamp`` of rows without one, push time) is then unambiguous.

Scale with ``SKEWLESS_PROPERTY_EXAMPLES=<n>`` (default keeps the file under ~60 s).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from tests.support import oracle
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from tests.support.oracle import NOT_FOUND, PRESENT, OnlineModel, Row, to_utc

import skewless as sk

UTC = timezone.utc
US = timedelta(microseconds=1)
DAY = timedelta(days=1)
W0 = datetime.now(UTC).replace(microsecond=0)  # the test session's wall clock; nothing is generated near it
PAST0 = W0 - 3 * DAY  # past band: [W0-3d, W0-1d)
FUTURE0 = W0 + DAY  # future band: [W0+1d, W0+2d)
BAND = 86_400  # seconds per band

EXAMPLES = int(os.environ.get("SKEWLESS_PROPERTY_EXAMPLES", "0")) or None
SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CI") == "true",  # CI replays a fixed search; local runs explore new examples
    print_blob=True,
)

TTLS = [None, timedelta(0), timedelta(hours=1), timedelta(hours=6), timedelta(seconds=5400), timedelta(hours=12)]
KEYS = [1, 2, 3]
REGIONS = ["x", "y"]
FEATURES = ["a:f", "a:s", "b:f", "c:g"]
TZ_MODES = ["utc", "naive", "kolkata", "minus8", "str", "mixed"]
_KOLKATA = ZoneInfo("Asia/Kolkata")
_MINUS8 = timezone(timedelta(hours=-8))


def grid(sec: int) -> datetime:
    """Second ``sec`` of the two bands (0 .. 2*BAND-1) as an aware UTC instant."""
    return PAST0 + timedelta(seconds=sec) if sec < BAND else FUTURE0 + timedelta(seconds=sec - BAND)


def in_past_band(t: datetime) -> bool:
    return t < W0


# --------------------------------------------------------------------------- views


def define_views(ttls):
    """Three views: a (k; f Float64, s String), b (k; f Int64: collides with a:f), c (k, region; g Float64)."""
    ek = sk.Entity(name="ek", join_keys=["k"])
    er = sk.Entity(name="er", join_keys=["region"])
    a = sk.FeatureView(
        name="a",
        entities=[ek],
        ttl=ttls["a"],
        schema=[sk.Field("k", sk.Int64), sk.Field("f", sk.Float64), sk.Field("s", sk.String)],
    )
    b = sk.FeatureView(
        name="b", entities=[ek], ttl=ttls["b"], schema=[sk.Field("k", sk.Int64), sk.Field("f", sk.Int64)]
    )
    c = sk.FeatureView(
        name="c",
        entities=[ek, er],
        ttl=ttls["c"],
        schema=[sk.Field("k", sk.Int64), sk.Field("region", sk.String), sk.Field("g", sk.Float64)],
    )
    return [ek, er, a, b, c]


JOIN_KEYS = {"a": ["k"], "b": ["k"], "c": ["k", "region"]}
VIEW_FEATURES = {"a": ["f", "s"], "b": ["f"], "c": ["g"]}


def feature_values(view: str, serial: int, nulls: list[bool]) -> dict:
    """Distinct values per row so the winner is identifiable; some nulls."""
    if view == "a":
        return {"f": None if nulls[0] else serial + 0.5, "s": None if nulls[1] else f"r{serial}"}
    if view == "b":
        return {"f": None if nulls[0] else serial}
    return {"g": None if nulls[0] else serial + 0.25}


# --------------------------------------------------------------------------- generated data


@dataclass
class GenRow:
    view: str
    key: tuple
    event_ts: datetime
    created_ts: datetime | None  # None: null/absent -> the write time
    values: dict


@dataclass
class Batch:
    view: str
    rows: list
    created_mode: str  # "column" (possibly with nulls) | "absent"
    tz_mode: str
    fmt: str = "pandas"  # "pandas" | "arrow"


@dataclass
class History:
    ttls: dict
    batches: list = field(default_factory=list)


@st.composite
def instants(draw, anchors):
    """An anchor (frequent exact ties) moved by nothing, one microsecond or one second; or a fresh grid point."""
    if anchors and draw(st.sampled_from([True] * 4 + [False])):
        base = draw(st.sampled_from(anchors))
    else:
        base = grid(draw(st.integers(0, 2 * BAND - 1)))
    return base + draw(st.sampled_from([timedelta(0)] * 4 + [US, -US, timedelta(seconds=1)]))


@st.composite
def gen_rows(draw, view, anchors, serial0, max_rows=8):
    rows = []
    for i in range(draw(st.integers(0, max_rows))):
        k = draw(st.sampled_from(KEYS))
        key = (k, draw(st.sampled_from(REGIONS))) if view == "c" else (k,)
        ev = draw(instants(anchors))
        cr_kind = draw(st.sampled_from(["same", "later", "earlier", "anchor", "null"]))
        cr = {
            "same": ev,
            "later": ev + draw(st.sampled_from([US, timedelta(hours=2), 2 * DAY])),
            "earlier": ev - timedelta(hours=1),
            "anchor": draw(instants(anchors)),
            "null": None,
        }[cr_kind]
        nulls = [draw(st.sampled_from([False] * 5 + [True])) for _ in range(2)]
        rows.append(GenRow(view, key, ev, cr, feature_values(view, serial0 + i, nulls)))
    return rows


@st.composite
def gen_ttls(draw):
    return {v: draw(st.sampled_from(TTLS)) for v in ("a", "b", "c")}


@st.composite
def gen_batches(draw, anchors, serial0=0):
    """Rows of every view split over several ingest calls, interleaved across views."""
    batches = []
    serial = serial0
    for view in ("a", "b", "c"):
        rows = draw(gen_rows(view, anchors, serial))
        serial += len(rows)
        n = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(0, len(rows)), min_size=n - 1, max_size=n - 1)))
        parts = [rows[i:j] for i, j in zip([0] + cuts, cuts + [len(rows)])]
        for part in parts:
            if not part:
                continue
            absent_ok = all(r.created_ts is None for r in part)
            mode = "absent" if absent_ok and draw(st.booleans()) else "column"
            tz_mode = draw(st.sampled_from(TZ_MODES))
            fmt = "pandas" if tz_mode == "mixed" else draw(st.sampled_from(["pandas", "arrow"]))
            batches.append(Batch(view, part, mode, tz_mode, fmt))
    order = draw(st.permutations(range(len(batches))))
    return [batches[i] for i in order]


# --------------------------------------------------------------------------- rendering to the SDK


def render_ts(t: datetime | None, mode: str, rnd: int = 0):
    if t is None:
        return None
    if mode == "mixed":
        mode = ["utc", "naive", "kolkata", "minus8"][rnd % 4]
    if mode == "utc":
        return t
    if mode == "naive":
        return t.replace(tzinfo=None)
    if mode == "kolkata":
        return t.astimezone(_KOLKATA)
    if mode == "minus8":
        return t.astimezone(_MINUS8)
    if mode == "str":
        return t.astimezone(_MINUS8).isoformat()
    raise AssertionError(mode)


_TS_DTYPES = {
    "utc": "datetime64[us, UTC]",
    "naive": "datetime64[us]",
    "kolkata": "datetime64[us, Asia/Kolkata]",
    "minus8": "datetime64[us, UTC-08:00]",
}


def ts_column(values, mode):
    """A timestamp column rendered in ``mode``: typed (even when all null) unless mixed zones or strings."""
    vals = [render_ts(v, mode, i) for i, v in enumerate(values)]
    if mode == "mixed":
        return pd.Series(vals, dtype=object)
    if mode == "str":
        return pd.Series(vals, dtype="string")
    return pd.Series(
        pd.to_datetime(vals).astype(_TS_DTYPES[mode])
        if any(v is not None for v in vals)
        else pd.Series([None] * len(vals), dtype=_TS_DTYPES[mode])
    )


def batch_frame(batch: Batch) -> pd.DataFrame:
    rows = batch.rows
    data = {"k": pd.array([r.key[0] for r in rows], dtype="Int64")}
    if batch.view == "c":
        data["region"] = pd.Series([r.key[1] for r in rows], dtype=object)
    data["event_timestamp"] = ts_column([r.event_ts for r in rows], batch.tz_mode)
    if batch.created_mode == "column":
        data["created_timestamp"] = ts_column([r.created_ts for r in rows], batch.tz_mode)
    for f in VIEW_FEATURES[batch.view]:
        vals = [r.values[f] for r in rows]
        if batch.view == "b":
            data[f] = pd.array(vals, dtype="Int64")
        elif f == "s":
            data[f] = pd.Series(vals, dtype=object)
        else:
            data[f] = pd.Series([math.nan if v is None else v for v in vals], dtype="float64")
    df = pd.DataFrame(data)
    return pa.Table.from_pandas(df, preserve_index=False) if batch.fmt == "arrow" else df


class Harness:
    """A fresh repo plus the oracle's copy of everything written to it."""

    def __init__(self, path, ttls, repo=sk.init_repo):
        self.store = repo(path)  # repo(path): a fresh FeatureStore (the embedded defaults; others' engines reuse this)
        self.ttls = ttls
        self.store.apply(define_views(ttls))
        self.rows = {"a": [], "b": [], "c": []}  # oracle Rows per view
        self.n_writes = 0

    def ingest(self, batch: Batch) -> list[Row]:
        i = self.n_writes
        self.n_writes += 1
        write_time = W0 + i * US  # stands for the real write time: same order, same side of every instant
        written = [
            Row(
                key=r.key,
                event_ts=r.event_ts,
                created_ts=r.created_ts or write_time,
                write_order=(i, pos),
                values=dict(r.values),
            )
            for pos, r in enumerate(batch.rows)
        ]
        self.store.ingest(batch.view, batch_frame(batch))
        self.rows[batch.view].extend(written)
        return written

    def views(self):
        return {v: (JOIN_KEYS[v], self.ttls[v], list(self.rows[v])) for v in ("a", "b", "c")}


def describe_rows(rows):
    return "\n".join(
        f"    key={r.key} ev={r.event_ts.isoformat()} cr={r.created_ts.isoformat()} wo={r.write_order} {r.values}"
        for r in rows
    )


def norm(v):
    """Arrow/pandas nulls (None, NaN, NaT, NA) -> None; pandas/numpy scalars -> Python."""
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item") and not isinstance(v, (str, bytes, datetime)):
        return v.item()
    if isinstance(v, datetime):
        return to_utc(v)
    return v


# --------------------------------------------------------------------------- property 1: historical retrieval


@st.composite
def historical_case(draw):
    ttls = draw(gen_ttls())
    anchors = [grid(s) for s in draw(st.lists(st.integers(0, 2 * BAND - 1), min_size=1, max_size=5))]
    batches = draw(gen_batches(anchors))
    events = [r.event_ts for b in batches for r in b.rows]
    createds = [r.created_ts for b in batches for r in b.rows if r.created_ts is not None]
    ttl_values = [t for t in ttls.values() if t]
    # instants that hit the rules' edges: t == event, t == event + ttl (+-1us), t == created, just before
    edges = list(events) + list(createds) + anchors
    edges += [e + t + d for e in events for t in ttl_values for d in (timedelta(0), US, -US)]
    edges += [e - US for e in events]
    features = draw(st.lists(st.sampled_from(FEATURES), min_size=1, max_size=4, unique=True))
    full = draw(st.booleans())
    if not full and "a:f" in features and "b:f" in features and draw(st.sampled_from([True] * 3 + [False])):
        features.remove("b:f")  # keep name collisions to a minority of examples
    if draw(st.sampled_from([False] * 19 + [True])):
        features.append(features[0])  # the same feature twice: a name collision
    requested = {f.split(":")[0] for f in features}
    targets = [r for b in batches for r in b.rows if r.view in requested]
    n = draw(st.integers(1, 8))
    entity = []
    for i in range(n):
        if targets and draw(st.sampled_from([True, True, False])):
            # targeted at one row: its entity, at a time on one of the rules' edges for that row
            r = draw(st.sampled_from(targets))
            ttl = ttls[r.view] or timedelta(0)
            t = draw(
                st.sampled_from(
                    [r.event_ts, r.event_ts - US, r.event_ts + ttl, r.event_ts + ttl + US, r.event_ts + ttl - US]
                    + ([r.created_ts, r.created_ts - US] if r.created_ts else [])
                )
            )
            k = r.key[0]
            region = r.key[1] if r.view == "c" else draw(st.sampled_from(REGIONS))
        else:
            t = (
                draw(st.sampled_from(edges))
                if edges and draw(st.sampled_from([True] * 4 + [False]))
                else grid(draw(st.integers(0, 2 * BAND - 1)))
            )
            k = draw(st.sampled_from(KEYS + [4, None]))
            region = draw(st.sampled_from(REGIONS + [None]))
        entity.append({"k": k, "region": region, "event_timestamp": t, "label": i, "note": f"n{i}"})
    # duplicates: copies of earlier rows (same label) inserted anywhere
    for _ in range(draw(st.integers(0, 2))):
        src = draw(st.sampled_from(entity))
        entity.insert(draw(st.integers(0, len(entity))), dict(src))
    # sometimes an input column named like a feature (a collision unless full names are used)
    extra = draw(st.sampled_from([None] * 12 + ["g", "s"]))
    ts_col = draw(st.sampled_from(["event_timestamp", "event_timestamp", "ts"]))
    for r in entity:
        r[ts_col] = r.pop("event_timestamp")
        if extra:
            r[extra] = "input"
    tz_mode = draw(st.sampled_from(TZ_MODES))
    fmt = "pandas" if tz_mode == "mixed" else draw(st.sampled_from(["pandas", "arrow"]))
    return dict(
        ttls=ttls,
        batches=batches,
        entity=entity,
        features=features,
        ts_col=ts_col,
        extra=extra,
        full=full,
        pit=draw(st.sampled_from(["event", "available"])),
        tz_mode=tz_mode,
        fmt=fmt,
        with_ev=draw(st.booleans()),
    )


def entity_frame(entity, tz_mode, ts_col="event_timestamp", extra=None, fmt="pandas"):
    df = pd.DataFrame(
        {
            "k": pd.array([r["k"] for r in entity], dtype="Int64"),
            "region": pd.Series([r["region"] for r in entity], dtype=object),
            ts_col: ts_column([r[ts_col] for r in entity], tz_mode),
            "label": [r["label"] for r in entity],
            "note": pd.Series([r["note"] for r in entity], dtype=object),
            **({extra: pd.Series([r[extra] for r in entity], dtype=object)} if extra else {}),
        }
    )
    return pa.Table.from_pandas(df, preserve_index=False) if fmt == "arrow" else df


def window_strategy_table(store, entity_df, features, **kw):
    """The same retrieval through the portable ``window`` SQL form (internal API: the public path uses DuckDB's
    ASOF join for point_in_time="event"; other engines get the window form, so both must equal the oracle)."""
    resolved = store._resolve(features)
    names = [v.name for v, _ in resolved]
    snap = store.offline.snapshot(names)
    files = {n: store.offline.files(n, snap[n]) for n in names}
    con = store.engine.connect()
    try:
        sql = store.engine.pit_sql(con, entity_df, resolved, files, strategy="window", **kw).ordered
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def check_table(table, case, expected, names, view_of, what):
    entity, ts_col = case["entity"], case["ts_col"]
    got = table.to_pylist()
    input_cols = ["k", "region", ts_col, "label", "note"] + ([case["extra"]] if case["extra"] else [])
    ev_cols = {f"{v}__event_timestamp" for v in view_of.values()} if case["with_ev"] else set()
    assert table.column_names[: len(input_cols)] == input_cols, (what, table.column_names)
    assert set(table.column_names[len(input_cols) :]) == set(names) | ev_cols, (what, table.column_names)
    assert len(got) == len(expected), what
    for i, (g, e) in enumerate(zip(got, expected)):
        ctx = f"{what}: entity row {i}: {entity[i]}"
        assert g["label"] == e["label"] and g["note"] == e["note"], ctx
        assert norm(g["k"]) == e["k"] and norm(g["region"]) == e["region"], ctx
        assert norm(g[ts_col]) == to_utc(e[ts_col]), ctx
        if case["extra"]:
            assert g[case["extra"]] == e[case["extra"]], ctx
        for n in names:
            assert norm(g[n]) == e[n], (
                f"{ctx}: feature {n}: got {g[n]!r}, expected {e[n]!r} "
                f"(status {e['__status__'][n]}, winner event {e['__event_ts__'][n]})"
            )
            if case["with_ev"]:
                assert norm(g[f"{view_of[n]}__event_timestamp"]) == e["__event_ts__"][n], (
                    f"{ctx}: winner event time for {n}: got {g[f'{view_of[n]}__event_timestamp']}, "
                    f"expected {e['__event_ts__'][n]}"
                )


def check_historical(h: Harness, case):
    entity, features, full, pit, ts_col = case["entity"], case["features"], case["full"], case["pit"], case["ts_col"]
    views = h.views()
    note("oracle rows:\n" + "\n".join(f"  {v}: ttl={views[v][1]}\n{describe_rows(views[v][2])}" for v in views))
    note(
        f"entity rows: {entity}\nfeatures={features} full={full} point_in_time={pit} tz={case['tz_mode']} "
        f"fmt={case['fmt']}"
    )

    def frame():
        return entity_frame(entity, case["tz_mode"], ts_col, case["extra"], case["fmt"])

    try:
        expected = oracle.training_set(
            views,
            entity,
            features,
            timestamp_column=ts_col,
            point_in_time=pit,
            full_feature_names=full,
            with_statuses=True,
        )
    except ValueError:
        event("collision")
        with pytest.raises((sk.SkewlessError, ValueError)):
            h.store.get_historical_features(
                frame(), features, full_feature_names=full, point_in_time=pit, timestamp_column=ts_col
            ).to_arrow()
        return
    job = h.store.get_historical_features(
        frame(),
        features,
        full_feature_names=full,
        point_in_time=pit,
        timestamp_column=ts_col,
        include_event_timestamps=case["with_ev"],
    )
    names = [f"{r.split(':')[0]}__{r.split(':')[1]}" if full else r.split(":")[1] for r in features]
    view_of = {n: r.split(":")[0] for n, r in zip(names, features)}
    check_table(job.to_arrow(), case, expected, names, view_of, "get_historical_features")
    # to_arrow reads features by the winner's position where it can (offline/gather.py); the streamed path runs
    # the one query that carries them through the join: both must equal the oracle.
    event(f"gathered views: {sum(g is not None for g in getattr(getattr(job, '_plan', None), 'gathers', ()))}")
    check_table(job.to_reader().read_all(), case, expected, names, view_of, "streamed")
    if pit == "event" and hasattr(h.store.engine, "pit_sql"):  # DuckDB used the ASOF form; check the window form too
        table = window_strategy_table(
            h.store,
            frame(),
            features,
            timestamp_column=ts_col,
            full_feature_names=full,
            point_in_time=pit,
            event_timestamps=case["with_ev"],
        )
        check_table(table, case, expected, names, view_of, "window strategy")
    event(f"pit={pit}")
    for e in expected:
        for n in names:
            event(f"status {e['__status__'][n]}")


@settings(max_examples=EXAMPLES or 100, **SETTINGS)
@given(case=historical_case())
def test_historical_matches_oracle(case):
    run_historical_case(case)


def run_historical_case(case, repo=sk.init_repo):
    with tempfile.TemporaryDirectory() as d:
        h = Harness(d, case["ttls"], repo)
        for b in case["batches"]:
            h.ingest(b)
        check_historical(h, case)


# --------------------------------------------------------------------------- property 2: online store


ARG_TZ = ["utc", "naive", "kolkata", "minus8", "str"]  # how materialize/read time arguments are passed


@st.composite
def online_case(draw):
    ttls = draw(gen_ttls())
    T = grid(BAND + draw(st.integers(BAND // 2, BAND - 1)))  # in the second half of the future band
    delta = draw(
        st.sampled_from(
            [
                timedelta(0),
                US,
                timedelta(seconds=1),
                timedelta(minutes=30),
                timedelta(hours=1),
                timedelta(hours=6),
                timedelta(hours=12),
                timedelta(hours=12) + US,
            ]
        )
    )
    now = T + delta
    anchors = [grid(s) for s in draw(st.lists(st.integers(0, 2 * BAND - 1), min_size=1, max_size=4))]
    # rows exactly at now - ttl (the read-time TTL edge), at T and at now
    anchors += [now - t for t in ttls.values() if t] + [T, now]
    until_T = st.integers(0, BAND + (T - FUTURE0) // timedelta(seconds=1)).map(grid)

    def at_or_before_T(t):
        return min(t, T)

    ops, serial, last_end = [], 0, None  # last_end: greatest materialized end so far, over all views
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["ingest", "ingest", "ingest", "mat", "inc"]))
        views = draw(st.sampled_from([None, None, ["a"], ["b", "c"]]))
        if kind == "ingest":
            for b in draw(gen_batches(anchors, serial)):
                serial += len(b.rows)
                ops.append(("ingest", b))
        elif kind == "mat":
            s, e = sorted([at_or_before_T(draw(instants(anchors))), draw(until_T)])
            ops.append(("mat", s, e, views, draw(st.sampled_from(ARG_TZ))))
            last_end = e if last_end is None else max(last_end, e)
        else:
            # only ends at or after every earlier end: going back is not in the spec
            e = at_or_before_T(draw(instants(anchors)))
            e = e if last_end is None else max(last_end, e)
            ops.append(("inc", e, views, draw(st.sampled_from(ARG_TZ))))
            last_end = e
    if draw(st.sampled_from([True] * 4 + [False])):
        ops.append(("inc", T, None, "utc"))
    return dict(ttls=ttls, ops=ops, T=T, now=now, now_tz=draw(st.sampled_from(ARG_TZ)))


ONLINE_ENTITIES = [{"k": k, "region": r} for k in KEYS + [4] for r in REGIONS] + [
    {"k": 1, "region": "x"},
    {"k": None, "region": "x"},
    {"k": 1, "region": None},
]
ALL_FULL = [f"{r.split(':')[0]}__{r.split(':')[1]}" for r in FEATURES]


def _views_of(views):
    return ["a", "b", "c"] if views is None else views


@settings(max_examples=EXAMPLES or 45, **SETTINGS)
@given(case=online_case())
def test_online_matches_model_and_invariant(case):
    run_online_case(case)


def run_online_case(case, repo=sk.init_repo):
    ttls, now = case["ttls"], case["now"]
    model = OnlineModel({v: (JOIN_KEYS[v], ttls[v]) for v in ("a", "b", "c")})
    pending = {v: [] for v in ("a", "b", "c")}  # rows not pushed and not yet materialized
    last_end = {}
    log = []
    with tempfile.TemporaryDirectory() as d:
        h = Harness(d, ttls, repo)
        for op in case["ops"]:
            if op[0] == "ingest":
                b = op[1]
                written = h.ingest(b)
                # the push: the batch's newest row per entity at the wall clock (after every past-band row,
                # before every future-band row); the TTL is applied at read time
                for key in dict.fromkeys(r.key for r in written):
                    model.write_newest(b.view, written, key, W0)
                pending[b.view] += [r for r in written if not in_past_band(r.event_ts)]
                log.append(f"ingest {b.view} ({b.created_mode}, {b.tz_mode}, {b.fmt}):\n{describe_rows(written)}")
            elif op[0] == "mat":
                _, s, e, views, tz = op
                h.store.materialize(render_ts(s, tz), render_ts(e, tz), feature_views=views)
                for v in _views_of(views):
                    model.materialize(v, h.rows[v], s, e)
                    pending[v] = [r for r in pending[v] if not (s <= r.event_ts <= e)]
                    last_end[v] = max(last_end.get(v, e), e)
                log.append(f"materialize({s.isoformat()}, {e.isoformat()}, {views}) passed as {tz}")
            else:
                _, e, views, tz = op
                h.store.materialize_incremental(render_ts(e, tz), feature_views=views)
                for v in _views_of(views):
                    prev = last_end.get(v)
                    s = prev if prev is not None and prev <= e else None
                    model.materialize(v, h.rows[v], s, e)
                    pending[v] = [r for r in pending[v] if not ((s is None or s <= r.event_ts) and r.event_ts <= e)]
                    last_end[v] = max(prev or e, e)
                log.append(f"materialize_incremental({e.isoformat()}, {views}) passed as {tz}")
        note("ttls: " + repr(ttls) + "\nops:\n" + "\n".join(log) + f"\nT={case['T'].isoformat()} now={now.isoformat()}")

        resp = h.store.get_online_features(
            FEATURES, ONLINE_ENTITIES, full_feature_names=True, now=render_ts(now, case["now_tz"])
        )
        want_model = model.read(ONLINE_ENTITIES, FEATURES, now, full_feature_names=True)
        want_spec = oracle.online_read(h.views(), ONLINE_ENTITIES, FEATURES, now, full_feature_names=True)
        hist = (
            h.store.get_historical_features(
                pd.DataFrame(
                    {
                        "k": pd.array([e["k"] for e in ONLINE_ENTITIES], dtype="Int64"),
                        "region": pd.Series([e["region"] for e in ONLINE_ENTITIES], dtype=object),
                        "event_timestamp": [now] * len(ONLINE_ENTITIES),
                    }
                ),
                FEATURES,
                full_feature_names=True,
            )
            .to_arrow()
            .to_pylist()
        )

        for name, ref in zip(ALL_FULL, FEATURES):
            view = ref.split(":")[0]
            for i, ent in enumerate(ONLINE_ENTITIES):
                got = (norm(resp.values[name][i]), resp.statuses[name][i], norm(resp.event_timestamps[name][i]))
                model_v = (
                    want_model["values"][name][i],
                    want_model["statuses"][name][i],
                    want_model["event_timestamps"][name][i],
                )
                ctx = f"{name} for {ent} at now={now.isoformat()}"
                assert got == model_v, f"{ctx}: online read {got}, spec model of the online store {model_v}"
                key = tuple(ent[k] for k in JOIN_KEYS[view])
                uncovered = [r for r in pending[view] if r.key == key and r.event_ts <= now]
                if uncovered:
                    event("invariant not applicable (rows never materialized)")
                    continue
                spec_v = (
                    want_spec["values"][name][i],
                    want_spec["statuses"][name][i],
                    want_spec["event_timestamps"][name][i],
                )
                assert got == spec_v, f"{ctx}: online read {got}, oracle value at t=now {spec_v} (invariant)"
                assert got[0] == norm(hist[i][name]), (
                    f"{ctx}: online value {got[0]!r} != historical retrieval at t=now {hist[i][name]!r}"
                )
                event(f"invariant checked: {got[1]}")

        # and a read at the real clock (no `now`): every past-band row is before it, every future-band row after
        resp = h.store.get_online_features(FEATURES, ONLINE_ENTITIES, full_feature_names=True)
        wall = datetime.now(UTC)
        want = model.read(ONLINE_ENTITIES, FEATURES, wall, full_feature_names=True)
        for name in ALL_FULL:
            got = [
                (norm(v), st_, norm(ev))
                for v, st_, ev in zip(resp.values[name], resp.statuses[name], resp.event_timestamps[name])
            ]
            exp = list(zip(want["values"][name], want["statuses"][name], want["event_timestamps"][name]))
            assert got == exp, f"{name}: online read at the wall clock {got}, spec model {exp}"


# --------------------------------------------------------------------------- minimised findings (not spec core)


def _one_view_store(path):
    store = sk.init_repo(path)
    e = sk.Entity(name="e", join_keys=["k"])
    v = sk.FeatureView(
        name="v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("f", sk.Float64)], ttl=timedelta(hours=1)
    )
    store.apply([e, v])
    return store


def test_arrow_null_typed_created_timestamp_means_write_time(tmp_path):
    store = _one_view_store(tmp_path)
    t = datetime(2024, 1, 1, 1, tzinfo=UTC)
    store.ingest(
        "v",
        pa.table(
            {
                "k": [1],
                "event_timestamp": pa.array([t], pa.timestamp("us", tz="UTC")),
                "created_timestamp": pa.nulls(1),
                "f": [2.0],
            }
        ),
    )
    got = store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [t]}), ["v:f"]).to_pandas()
    assert got["f"].tolist() == [2.0]


@pytest.mark.parametrize("null", [math.nan, pd.NA], ids=["nan", "NA"])
def test_online_null_like_keys_get_nulls(tmp_path, null):
    store = _one_view_store(tmp_path)
    t = datetime(2024, 1, 1, 1, tzinfo=UTC)
    store.ingest("v", pd.DataFrame({"k": [1], "event_timestamp": [t], "f": [1.0]}))
    hist = (
        store.get_historical_features(pd.DataFrame({"k": [1.0, null], "event_timestamp": [t, t]}), ["v:f"])
        .to_arrow()
        .column("f")
        .to_pylist()
    )
    assert hist == [1.0, None]
    resp = store.get_online_features(["v:f"], [{"k": 1}, {"k": null}], now=t)
    assert resp.values["f"] == [1.0, None] and resp.statuses["f"] == [PRESENT, NOT_FOUND]


def test_nanosecond_entity_timestamps_truncate_like_ingest(tmp_path):
    store = _one_view_store(tmp_path)
    t = pd.Timestamp("2024-01-01 01:00:00", tz="UTC")
    store.ingest(
        "v", pd.DataFrame({"k": [1, 1], "event_timestamp": pd.Series([t, t + pd.Timedelta(1, "us")]), "f": [1.0, 2.0]})
    )
    ent = pd.DataFrame(
        {"k": [1], "event_timestamp": pd.Series([t + pd.Timedelta(999, "ns")], dtype="datetime64[ns, UTC]")}
    )
    # 01:00:00.000000999 is before the 01:00:00.000001 row: truncated like every other input, it sees f=1.0
    assert store.get_historical_features(ent, ["v:f"]).to_arrow().column("f").to_pylist() == [1.0]


def test_nanosecond_now_online_equals_historical(tmp_path):
    store = _one_view_store(tmp_path)  # ttl 1h
    t = pd.Timestamp("2024-01-01 01:00:00.000001", tz="UTC")
    store.ingest("v", pd.DataFrame({"k": [1], "event_timestamp": pd.Series([t]), "f": [2.0]}))
    store.materialize(t - pd.Timedelta(1, "h"), t)
    now = t + pd.Timedelta(1, "h") + pd.Timedelta(999, "ns")  # 02:00:00.000001999
    online = store.get_online_features(["v:f"], [{"k": 1}], now=now).values["f"]
    hist = (
        store.get_historical_features(
            pd.DataFrame({"k": [1], "event_timestamp": pd.Series([now], dtype="datetime64[ns, UTC]")}), ["v:f"]
        )
        .to_arrow()
        .column("f")
        .to_pylist()
    )
    assert online == hist, f"online {online} vs historical {hist}"

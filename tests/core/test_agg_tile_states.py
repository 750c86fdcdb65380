"""The vectorised tile states (``tile_states``) against ``partials.state_of`` tile by tile: every field equal,
floats within the spec's tolerance, on events with nulls, NaN, infinities, mixed signs, huge integers, timestamps,
several levels and tiles after ``now`` (kept raw)."""

import math
import random
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

import skewless as sk
from skewless.aggregation import partials, tile_states
from skewless.aggregation.tiles import FANOUT, ancestors, level_count
from tests.support.agg_oracle import same_value

H = timedelta(hours=1)
HOP = 3_600_000_000
CARD = sk.Entity("card", ["card"], dtype=sk.Int64)


def _view():
    fields = [sk.Field("card", sk.Int64), sk.Field("f", sk.Float64), sk.Field("g", sk.Float32),
              sk.Field("i", sk.Int64), sk.Field("ts", sk.UnixTimestamp)]
    aggs = [sk.Aggregation("f", fn, 16 * H) for fn in ("sum", "var", "min", "last")]
    aggs += [sk.Aggregation("f", "last_k", 16 * H, k=3), sk.Aggregation("g", "mean", 16 * H),
             sk.Aggregation("i", "sum", 16 * H), sk.Aggregation("i", "max", 4 * H),
             sk.Aggregation("ts", "min", 16 * H), sk.Aggregation("ts", "last_k", 16 * H, k=2)]
    return sk.AggregatedView("v", [CARD], fields, aggs, hop=H)


def _float(rng, signs):
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.15:
        # (+inf and -inf in one tile: state_of's fsum raises; not compared here)
        return rng.choice([math.nan, -math.inf if signs == "neg" else math.inf])
    v = rng.choice([rng.random() * 100, rng.random() * 1e150, float(rng.randint(0, 5))])
    return v if signs == "pos" else -v if signs == "neg" else rng.choice([v, -v])


def _events(rng, signs):
    rows = []
    for card in range(8):
        for _ in range(rng.randint(0, 40)):
            ev = rng.randint(-3 * HOP, 20 * HOP)
            big = rng.random() < 0.1
            rows.append((card, ev, rng.randint(0, 3), rng.randint(0, 2), rng.randint(0, 9),
                         _float(rng, signs), _float(rng, "pos"),
                         None if rng.random() < 0.1 else rng.randint(-2 ** 62, 2 ** 62) if big
                         else rng.randint(-50, 50),
                         None if rng.random() < 0.1 else rng.randint(0, 10 ** 15)))
    rows.sort(key=lambda r: r[:5])
    return rows


@pytest.mark.parametrize("signs", ["pos", "neg", "mixed"])
@pytest.mark.parametrize("seed", range(6))
def test_vectorised_states_equal_state_of(seed, signs):
    rng = random.Random(seed)
    view = _view()
    specs = partials.ColumnSpecs(view)
    assert tile_states.supported(specs)
    levels = level_count(view)
    rows = _events(rng, signs)
    names = ["__e", "__ev", "__cr", "__wb", "__wr", "v_f", "v_g", "v_i", "v_ts"]
    types = [pa.int64()] * 5 + [pa.float64(), pa.float32(), pa.int64(), pa.int64()]
    table = pa.table({n: pa.array([r[j] for r in rows], t) for j, (n, t) in enumerate(zip(names, types))})
    g = table.column("v_g").to_pylist()  # float32 rounding, as the store's events carry it
    events = [(r[1], r[2], r[3], r[4], (r[5], g[j], r[7], r[8])) for j, r in enumerate(rows)]
    dirty: dict = {}
    for r in rows:
        if rng.random() < 0.7:
            dirty.setdefault((r[0],), set()).update(ancestors((r[1] - 1) // HOP, levels))
    now_us = 15 * HOP + 17
    dirty[(99,)] = {(0, 3), (1, 0)}  # an entity without events: its tiles come back empty
    keys = pa.table({"card": pa.array([k[0] for k in sorted(dirty)], pa.int64())})
    number = {k: i for i, k in enumerate(sorted(dirty))}
    table = table.set_column(0, "__e", pa.array([number.get((r[0],), -1) for r in rows], pa.int64()))
    table = table.filter(pa.compute.greater_equal(table.column("__e"), 0))  # the SQL returns dirty entities only
    flat = sorted((number[k], lv, t) for k, tiles in dirty.items() for lv, t in tiles)
    e, lv, tl = (np.array(c, np.int64) for c in zip(*flat))
    batch = tile_states.encoded_states(table, specs, keys, e, lv, tl, HOP, now_us)
    entries = list(batch)
    assert [(number[k], lv_, t) for k, lv_, t, _ in entries] == flat  # every dirty tile, sorted
    got = {e_[:3]: e_[3] for e_ in entries if e_[3] is not None}
    expected = {}
    for key, tiles in dirty.items():
        for lv, t in tiles:
            size = FANOUT ** lv * HOP
            evs = [e for r, e in zip(rows, events) if (r[0],) == key and (e[0] - 1) // size == t]
            st = partials.state_of(evs, specs, now_us if lv == 0 else None)
            if st is not None:
                expected[(key, lv, t)] = st
    assert set(got) == set(expected)
    assert all(st is None for k, _, _, st in entries if k == (99,))
    assert any(partials.decode(b)[partials.RAW] for b in got.values())  # the raw path is exercised
    for k, st in expected.items():
        assert _same(partials.decode(got[k]), st), (k, partials.decode(got[k]), st)


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                       and not isinstance(a, bool) and not isinstance(b, bool)):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isinf(a):
        return a == b
    return same_value(a, b, rel=1e-12)


def test_state_bytes_are_marshal_of_the_same_values():
    """``state_bytes.Rows`` writes marshal's format: ints at both ends of TYPE_INT and TYPE_LONG (both signs, int64's
    extremes), None where absent, floats with NaN and infinities, bools, tuples and a spliced ``marshal`` version 2
    value; ``marshal.loads`` gives the same values and types."""
    import marshal

    from skewless.aggregation import state_bytes

    ints = [0, 1, -1, 2 ** 31 - 1, 2 ** 31, -2 ** 31, -2 ** 31 - 1, 2 ** 45, -2 ** 60, 2 ** 63 - 1, -2 ** 63,
            1_764_950_000_000_000, 32767, 32768, -32768]
    n = len(ints)
    v = np.array(ints, np.int64)
    has = np.array([i % 3 != 1 for i in range(n)])
    floats = np.array([0.5, -0.0, math.inf, -math.inf, math.nan] * 3)
    rows = state_bytes.Rows(n)
    rows.tuple_head(6)
    rows.ints(v)
    rows.ints(v, has)
    rows.floats(floats, ~has)
    rows.bools(v > 0)
    rows.blobs([marshal.dumps(((i, -i), "x" * i), 2) for i in range(n)])
    rows.ints(v % 1000)  # TYPE_INT only
    got = [marshal.loads(b) for b in rows.build().to_pylist()]
    for i, g in enumerate(got):
        want = (ints[i], ints[i] if has[i] else None, None if has[i] else float(floats[i]), ints[i] > 0,
                ((i, -i), "x" * i), ints[i] % 1000)
        assert len(g) == 6 and [type(x) for x in g] == [type(x) for x in want], (g, want)
        assert _same(g, want) or (not has[i] and math.isnan(want[2]) and math.isnan(g[2])), (g, want)
    # every value a TYPE_LONG of one digit count (event times, batch ids): the rows share one head
    for same in ([2 ** 31 + i for i in range(7)], [1_764_950_000_000_000 + i * 997 for i in range(7)],
                 [2 ** 63 - 1 - i for i in range(7)], [2 ** 45 - 1, 2 ** 45]):  # (the last: two digit counts)
        rows = state_bytes.Rows(len(same))
        rows.ints(np.array(same, np.int64))
        assert [marshal.loads(b) for b in rows.build().to_pylist()] == same
        assert rows.build().to_pylist() == [marshal.dumps(x, 2) for x in same]  # (2: no reference flags)

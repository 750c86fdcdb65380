"""The RESP frames of tile writes built by numpy in one pass (``_frames_packed``, the states' bytes not packed
before) equal byte for byte those built by Arrow from the packed states (``_frames_arrow``), on batches with
negative tiles (before the epoch), several levels, entities of one tile and of many, values of every marshal width
and absent ones; and ``state_bytes.Rows.decimal`` spells every int64 as Python does."""

import random

import numpy as np
import pyarrow as pa
import pytest

import skewless as sk
from skewless.adapters.redis.tiles import RedisTiles
from skewless.aggregation import partials, state_bytes, tile_states
from skewless.aggregation.dirty import Dirty
from skewless.aggregation.tiles import level_count

H = 3_600_000_000
CARD = sk.Entity("card", ["card"], dtype=sk.Int64)


def _view(last_k: bool):
    from datetime import timedelta

    fields = [sk.Field("card", sk.Int64), sk.Field("f", sk.Float64), sk.Field("i", sk.Int64)]
    aggs = [sk.Aggregation("f", fn, timedelta(hours=40)) for fn in ("sum", "min", "count")]
    aggs += [sk.Aggregation("i", "max", timedelta(hours=8))]
    if last_k:
        aggs.append(sk.Aggregation("f", "last_k", timedelta(hours=8), k=2))
    return sk.AggregatedView("v", [CARD], fields, aggs, hop=timedelta(hours=1))


def _batch(view, seed: int, cards: int = 30, start: int = -30 * H):
    rng = random.Random(seed)
    rows = []
    for card in rng.sample(range(-5, 10 ** 12), cards):
        for _ in range(rng.choice([1, 2, 5, 40])):
            ev = rng.randint(start, start + 230 * H)  # (by default before and after the epoch)
            f = None if rng.random() < 0.1 else rng.random() * 100  # one sign: the fast path
            i = None if rng.random() < 0.1 else rng.choice([rng.randint(0, 50), rng.randint(0, 2 ** 40)])
            rows.append((card, ev, rng.randint(0, 10 ** 15), rng.randint(0, 2 ** 62), rng.randint(0, 10 ** 6), f, i))
    rows.sort()
    touched = pa.table({"card": pa.array([r[0] for r in rows], pa.int64()), "__ev": [r[1] for r in rows]})
    dirty = Dirty(touched, 1, view.hop_us, level_count(view))
    ent = np.searchsorted(dirty.keys.column(0).to_numpy(), [r[0] for r in rows])
    events = pa.table({"__e": ent, **{c: [r[j] for r in rows] for j, c in enumerate(["__ev", "__cr", "__wb", "__wr"], 1)},
                       "v_f": pa.array([r[5] for r in rows], pa.float64()),
                       "v_i": pa.array([r[6] for r in rows], pa.int64())})
    return tile_states.encoded_states(events, partials.ColumnSpecs(view), dirty.keys, dirty.e, dirty.lv, dirty.tile,
                                      view.hop_us, 250 * H)


@pytest.mark.parametrize("seed, cards, start", [*((s, 30, -30 * H) for s in range(5)), (5, 400, -30 * H),
                                                (6, 400, 490_000 * H)])
def test_packed_frames_equal_arrow_frames(seed, cards, start):
    """Also on batches of many tiles, whose fields are spelled once per distinct tile and gathered
    (``_field_frames``), negative tiles among them or not."""
    from skewless.adapters.redis.tiles import _field_frames

    view = _view(last_k=False)
    batch = _batch(view, seed, cards, start)
    version = 10 ** 17 + seed
    packed = [p for p in batch.parts if isinstance(p[3], state_bytes.Rows)]
    assert packed and all(p[3].packable for p in packed)
    assert any((p[2] < 0).any() for p in packed) == (start < 0)  # negative tiles are spelled too
    assert any(_field_frames(p[1], p[2]) is not None for p in packed) == (cards > 30)
    for e, lv, tile, states in packed:
        got = RedisTiles._frames_packed(None, view, e, lv, tile, states, version).to_pylist()
        want = RedisTiles._frames_arrow(None, view, e, lv, tile, states.build(), version).to_pylist()
        assert got == want
    # the states inside are the ones tile by tile iteration gives the other stores
    assert sum(len(p[0]) for p in batch.parts) == len(list(batch))


def test_last_k_states_keep_the_arrow_frames():
    batch = _batch(_view(last_k=True), 0)
    assert not any(isinstance(p[3], state_bytes.Rows) and p[3].packable for p in batch.parts)


def test_decimal_spells_int64_as_python():
    rng = random.Random(1)
    values = [0, 1, -1, 9, 10, -10, 99, 100, 2 ** 32 - 1, 2 ** 32, 10 ** 18 - 1, 10 ** 18, 2 ** 63 - 1, -2 ** 63]
    narrow = [[rng.randint(-40, 20) for _ in range(500)], [rng.randint(10 ** 15 - 9, 10 ** 15 + 30) for _ in
                                                            range(500)], [5] * 100, [-2 ** 63 + rng.randint(0, 3)
                                                                                     for _ in range(100)]]
    for case in (values, [rng.randint(-2 ** 63, 2 ** 63 - 1) for _ in range(500)], [rng.randint(0, 999) for _ in
                                                                                         range(500)], [7], [-7],
                 *narrow):  # (narrow ranges: spelled once per value and gathered)
        rows = state_bytes.Rows(len(case))
        rows.decimal(np.array(case, np.int64))
        assert rows.build().to_pylist() == [str(v).encode() for v in case]
        assert state_bytes.decimal_width(np.array(case, np.int64)).tolist() == [len(str(v)) for v in case]

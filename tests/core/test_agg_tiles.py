"""The online tiles' arithmetic (levels, covers, read plans) and partials (merge, cut, overflow), without a store."""

import random
from datetime import timedelta

import pytest

import skewless as sk
from skewless.aggregation import partials
from skewless.aggregation.definition import tile_of, window_start_us
from skewless.aggregation.tiles import FANOUT, ReadPlan, cover, level_count, tile_range
from skewless.errors import ValidationError

H, D = timedelta(hours=1), timedelta(days=1)
CARD = sk.Entity("card", ["card"], dtype=sk.Int64)


def view(*windows, hop=H, column=sk.Field("x", sk.Float64), function="sum"):
    return sk.AggregatedView("v", [CARD], [sk.Field("card", sk.Int64), column],
                             [sk.Aggregation("x", function, w, name=f"x_{i}") for i, w in enumerate(windows)], hop=hop)


def test_cover_is_exactly_the_range_with_aligned_tiles():
    rng = random.Random(7)
    for _ in range(2000):
        levels = rng.randint(1, 6)
        first = rng.randint(-10_000, 10_000)
        last = first + rng.randint(-1, 3000)
        tiles = cover(first, last, levels)
        fine = [f for lv, t in tiles for f in range(t * FANOUT ** lv, (t + 1) * FANOUT ** lv)]
        assert fine == list(range(first, last + 1))
        assert all(lv < levels for lv, _ in tiles)
        # at most 2 (FANOUT - 1) tiles per level below the top, and what the top needs
        top = sum(1 for lv, _ in tiles if lv == levels - 1)
        assert len(tiles) - top <= 2 * (FANOUT - 1) * (levels - 1)


def test_levels_fit_the_longest_window_and_tile_ranges_align_with_tile_of():
    assert level_count(view(H)) == 1 and level_count(view(3 * H)) == 1 and level_count(view(4 * H)) == 2
    assert level_count(view(365 * D)) == 7  # 4**6 h = 170 days fits in 365 days, 4**7 h does not
    hop = 3_600_000_000
    lo, hi = tile_range(0, 5, hop)
    assert tile_of(lo + 1, hop) == tile_of(hi, hop) == 5 and tile_of(hi + 1, hop) == 6
    assert tile_range(2, -1, hop) == (-16 * hop, 0)


def test_a_365_day_window_reads_a_bounded_number_of_tiles():
    rng = random.Random(1)
    nows = [rng.randrange(10 ** 15, 2 * 10 ** 15) for _ in range(3000)]
    day = max(len(ReadPlan(view(D), n).tiles) for n in nows)
    year = max(len(ReadPlan(view(365 * D), n).tiles) for n in nows)
    assert day <= 24 + 1 and year <= 40, (day, year)  # 8,761 fine tiles would be the naive read
    both = view(D, 7 * D, 365 * D)
    for n in nows[:200]:
        plan = ReadPlan(both, n)
        for a, c in zip(both.aggregations, plan.covers):  # whole tiles up to the one holding now, which is cut
            fine = [f for lv, t in c for f in range(t * FANOUT ** lv, (t + 1) * FANOUT ** lv)]
            assert fine == list(range(window_start_us(n, a.window_us, both.hop_us) // both.hop_us, plan.cut))


def test_int_sum_overflow_is_a_typed_error_at_read():
    v = view(D, column=sk.Field("x", sk.Int64))
    specs = partials.ColumnSpecs(v)
    a = partials.state_of([(1, 1, 1, 0, (2 ** 61,)), (2, 2, 1, 1, (2 ** 61,))], specs, None)
    b = partials.decode(partials.encode(a))
    assert partials.value("sum", 0, None, [b], specs, "v", "x_0") == 2 ** 62  # exact: a Python int, not a float
    with pytest.raises(ValidationError, match="overflows Int64"):
        partials.value("sum", 0, None, [b, b], specs, "v", "x_0")
    assert partials.value("mean", 0, None, [b, b], specs, "v", "x_0") == 2.0 ** 61


def test_cut_leaves_out_events_after_now_only_when_raw_events_were_kept():
    specs = partials.ColumnSpecs(view(D))
    evs = [(10, 0, 1, 0, (1.0,)), (20, 0, 1, 1, (2.0,)), (30, 0, 1, 2, (4.0,))]
    kept = partials.state_of(evs, specs, written_us=15)  # written before two of its events: raw events kept
    assert partials.value("sum", 0, None, [partials.cut(kept, 20, specs)], specs, "v", "x") == 3.0
    assert partials.cut(kept, 9, specs) is None  # no event left
    assert partials.cut(kept, 30, specs) is kept
    settled = partials.state_of(evs, specs, written_us=30)
    assert settled[partials.RAW] is None and partials.cut(settled, 20, specs) is False  # a read before its write

"""The (event, created) -> BIGINT ASOF key packing: how one history's ordering pair fits exactly into one 64-bit key.

At tie level 1 (HistoryFiles.tie_level) event and created time alone decide a winner, and the ASOF join's key is
the pair. The 128-bit key (HUGEINT) costs the join's sort about half again the time of a 64-bit one; most
histories fit 64 bits once event times are counted in their own granularity from the view's first event and
created times as a delay after the event. This module is that arithmetic: the statistics a packing is fitted from
(``packing_stats_sql`` over a history, ``packing_stats_arrow`` over rows in memory), the exact packing
(``packing``), the roomier one a store records at ingest (``envelope``, ``recorded_packing``, ``covers``,
``combine_stats``; the Delta store keeps it as the table property ``skewless.keyPacking``), and the SQL of the key
and its probe (``packed_key``), which ``pit.py`` puts into its ASOF join.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..definitions import CREATED_TS, EVENT_TS

# The canonical history columns, quoted (their names need no escaping).
_EVENT, _CREATED = f'"{EVENT_TS}"', f'"{CREATED_TS}"'


@dataclass(frozen=True)
class KeyPacking:
    """How ``(event, created)`` of one history packs exactly into one BIGINT (see ``packing``): event times are
    ``event_min + event_step * i`` (0 <= i <= event_steps), created minus event is ``delay_min + delay_step * j``
    (0 <= j < 2**delay_bits), and the key is ``(i << delay_bits) + j``, lexicographic by construction."""

    event_min: int  # microseconds since the epoch
    event_step: int
    event_steps: int
    delay_min: int  # microseconds
    delay_step: int
    delay_bits: int


# Granularities tried for the packed key, coarsest first: whole seconds, milliseconds, microseconds.
_STEPS = (1_000_000, 1_000, 1)
_PACK_BITS = 62  # the key stays positive and clear of BIGINT overflow
# Headroom of a recorded packing (``envelope``): up to 2 more delay bits (4x the delay range seen, centred) and up
# to a year of event steps (or the span seen, if longer) before the first event, for backfills and late data.
_DELAY_HEADROOM = 2
_YEAR_US = 366 * 86_400 * 1_000_000


def _fit(stats: tuple | None) -> tuple[int, int, int, int, int, int] | None:
    """(event min, event step, event steps, delay min, delay step, delay range in steps) of the exact packing, or
    None when the rows of ``stats`` cannot be packed in ``_PACK_BITS`` bits."""
    if stats is None:
        return None
    rows, created_rows, e_min, e_max, d_min, d_max, *divisible = stats
    if not rows or created_rows != rows:  # empty, or null created times: keep the general key
        return None
    e_div, d_div = divisible[:len(_STEPS)], divisible[len(_STEPS):]
    e_step = next(g for g, ok in zip(_STEPS, e_div) if ok or g == 1)
    d_step = next(g for g, ok in zip(_STEPS, d_div) if ok or g == 1)
    e_steps, d_range = (e_max - e_min) // e_step, (d_max - d_min) // d_step
    if e_steps.bit_length() + d_range.bit_length() > _PACK_BITS:
        return None
    return e_min, e_step, e_steps, d_min, d_step, d_range


def packing(stats: tuple | None) -> KeyPacking | None:
    """A BIGINT packing of ``(event, created)`` for a history, or None when it does not fit in 62 bits.

    ``stats`` is the row of ``packing_stats_sql``. The 128-bit key (HUGEINT) costs the ASOF join's sort about half
    again the time of a 64-bit one; most histories fit 64 bits once event times are counted in their own
    granularity (whole seconds, say) from the view's first event and created times as a delay after the event."""
    fit = _fit(stats)
    if fit is None:
        return None
    e_min, e_step, e_steps, d_min, d_step, d_range = fit
    return KeyPacking(e_min, e_step, e_steps, d_min, d_step, d_range.bit_length())


def envelope(stats: tuple | None) -> KeyPacking | None:
    """A packing for the rows of ``stats`` with room for more rows, to record with a history at ingest (so retrieval
    needs no ``packing_stats_sql`` scan, and later ingests rarely need to change it); None when none fits.

    Its ``event_steps`` is the whole capacity the delay bits leave, ``2**(62 - delay_bits) - 1``: ``packed_key``
    caps the probe there, so it stays a valid BIGINT key for every row ``covers`` accepts. The bits the rows do not
    need are split: a little headroom for delays (they rarely drift far), the rest for event times (which grow)."""
    fit = _fit(stats)
    if fit is None:
        return None
    e_min, e_step, e_steps, d_min, d_step, d_range = fit
    spare = _PACK_BITS - e_steps.bit_length() - d_range.bit_length()
    bits = d_range.bit_length() + min(_DELAY_HEADROOM, spare // 2)
    cap = (1 << (_PACK_BITS - bits)) - 1
    below = min((cap - e_steps) // 4, max(e_steps + 1, _YEAR_US // e_step))
    # Delay min and event min stay multiples of their steps, so divisibility alone shows a row is on the grid.
    return KeyPacking(e_min - below * e_step, e_step, cap, d_min - ((1 << bits) - 1 - d_range) // 2 * d_step,
                      d_step, bits)


def recorded_packing(event_min: int, event_step: int, delay_min: int, delay_step: int,
                     delay_bits: int) -> KeyPacking | None:
    """The packing ``envelope`` made, from the five numbers a store records of it (its ``event_steps`` is implied:
    the whole capacity); None when they are not numbers ``envelope`` can produce, which are then never trusted."""
    if not (event_step in _STEPS and delay_step in _STEPS and 0 <= delay_bits <= _PACK_BITS
            and event_min % event_step == 0 and delay_min % delay_step == 0):
        return None
    return KeyPacking(event_min, event_step, (1 << (_PACK_BITS - delay_bits)) - 1, delay_min, delay_step, delay_bits)


def covers(p: KeyPacking, stats: tuple | None) -> bool:
    """Whether every row of ``stats`` (a ``packing_stats_sql`` row) has a key under ``p``: created time present,
    on ``p``'s grids of event time and delay, and inside their ranges."""
    if stats is None:
        return False
    rows, created_rows, e_min, e_max, d_min, d_max, *divisible = stats
    if not rows:
        return True
    if created_rows != rows or p.event_step not in _STEPS or p.delay_step not in _STEPS:
        return False
    if not (divisible[_STEPS.index(p.event_step)] and divisible[len(_STEPS) + _STEPS.index(p.delay_step)]):
        return False
    return (p.event_min <= e_min and (e_max - p.event_min) // p.event_step <= p.event_steps
            and p.delay_min <= d_min and (d_max - p.delay_min) // p.delay_step < 1 << p.delay_bits)


def combine_stats(a: tuple, b: tuple) -> tuple:
    """The ``packing_stats_sql`` row of the union of two sets of rows, from theirs."""
    if not a[0]:
        return b
    if not b[0]:
        return a
    def pick(f, x, y):
        return y if x is None else x if y is None else f(x, y)
    return (a[0] + b[0], a[1] + b[1], pick(min, a[2], b[2]), pick(max, a[3], b[3]), pick(min, a[4], b[4]),
            pick(max, a[5], b[5]), *(bool(x) and bool(y) for x, y in zip(a[6:], b[6:])))


def packing_stats_arrow(table) -> tuple | None:
    """``packing_stats_sql``'s row for rows in memory (canonical history columns), computed in numpy: ingest checks
    every batch against its history's recorded packing with this, no engine needed. None when it cannot tell
    (times not in microseconds, null event times, or values so extreme that int64 arithmetic could overflow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ev, cr = table.column(EVENT_TS), table.column(CREATED_TS)
    if any(not pa.types.is_timestamp(c.type) or c.type.unit != "us" for c in (ev, cr)) or ev.null_count:
        return None
    e = pc.cast(ev, pa.int64()).to_numpy()
    c = pc.cast(cr, pa.int64())
    # Nulls filled before numpy sees them (an int column with nulls would come back as float, rounding times).
    d = pc.fill_null(c, 0).to_numpy()
    d = (d - e)[pc.is_valid(c).to_numpy(zero_copy_only=False)] if cr.null_count else d - e
    bound = 1 << 62  # both operands inside +-2**62: no difference above has wrapped around
    if len(e) and (int(e.min()) <= -bound or int(e.max()) >= bound):
        return None
    if len(d) and (pc.min(c).as_py() <= -bound or pc.max(c).as_py() >= bound):
        return None

    def divisible(x):  # coarsest first; a coarser step divides only if every finer one does too
        out, ok = [], False
        for g in _STEPS:
            ok = ok or not (x % g).any()
            out.append(ok)
        return out

    return (len(e), len(d), int(e.min()) if len(e) else None, int(e.max()) if len(e) else None,
            int(d.min()) if len(d) else None, int(d.max()) if len(d) else None, *divisible(e), *divisible(d))


def packing_stats_sql(history: str) -> str:
    """One scan of a history giving what ``packing`` needs: row counts, event and delay ranges, granularities."""
    ev, cr = f"epoch_us({_EVENT})", f"epoch_us({_CREATED})"
    divisible = [f"bool_and(__e % {g} = 0)" for g in _STEPS] + [f"bool_and(__d % {g} = 0)" for g in _STEPS]
    return (f"SELECT count(*), count(__d), min(__e), max(__e), min(__d), max(__d), {', '.join(divisible)} "
            f"FROM (SELECT {ev} AS __e, {cr} - {ev} AS __d FROM {history})")


def packed_key(p: KeyPacking, t: str) -> tuple[str, str]:
    """(history key, probe) for a KeyPacking. The probe for time t is the greatest key any row with event <= t can
    have: event step floor((t - event_min) / step), capped at the last step (so a far-future t cannot overflow),
    and the largest delay; before the first event it is -1, below every key."""
    ev = f"epoch_us({_EVENT})"
    key = (f"((({ev} - {p.event_min}) // {p.event_step}) << {p.delay_bits}) + "
           f"(epoch_us({_CREATED}) - {ev} - {p.delay_min}) // {p.delay_step}")
    tu = f"epoch_us({t})"
    probe = (f"(CASE WHEN {tu} < {p.event_min} THEN -1 ELSE (least(({tu} - {p.event_min}) // {p.event_step}, "
             f"{p.event_steps}) << {p.delay_bits}) + {(1 << p.delay_bits) - 1} END)")
    return key, probe

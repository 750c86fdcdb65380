"""The online tiles of an aggregated view: their levels and which tiles a window at ``now`` reads.

Level 0 is the hop's tile (``definition.tile_of``: tile ``i`` is ``(i*h, (i+1)*h]``). Level ``j`` groups ``FANOUT**j``
fine tiles, aligned to the epoch: its tile ``i`` is ``(i*s, (i+1)*s]`` with ``s = FANOUT**j * h``, the union of fine
tiles ``i*FANOUT**j .. (i+1)*FANOUT**j - 1``. A view keeps the levels whose tile fits in its longest window.

A window at ``now`` is fine tiles ``first .. last`` (``first = floor_h(now - w) / h``, ``last = tile_of(now)``).
Every tile but the last is covered greedily by the largest aligned tiles that fit: at most ``2 * (FANOUT - 1)`` tiles
per level plus the top level's, so a 365-day window at hop 1 h reads at most ~50 tiles where a 1-day one reads 24
(the level count grows with log(window / hop), FANOUT 4 keeps each level's edge short). The last fine tile is read
on its own: it may hold events after ``now``, which never count (see ``partials.cut``).
"""

from __future__ import annotations

from .definition import AggregatedView, tile_of, window_start_us

FANOUT = 4


def level_count(view: AggregatedView) -> int:
    """Levels 0 .. n-1: level ``j`` is kept while a tile of it fits in the longest window."""
    tiles = view.longest_window_us // view.hop_us
    n = 1
    while FANOUT ** n <= tiles:
        n += 1
    return n


def tile_range(level: int, tile: int, hop_us: int) -> tuple[int, int]:
    """The tile's interval ``(lo, hi]`` in microseconds."""
    size = FANOUT ** level * hop_us
    return tile * size, (tile + 1) * size


def ancestors(fine: int, levels: int) -> list[tuple[int, int]]:
    """``(level, tile)`` of every level holding fine tile ``fine`` (level 0 included)."""
    return [(j, fine // FANOUT ** j) for j in range(levels)]  # // floors: tiles before the epoch align too


def cover(first: int, last: int, levels: int) -> list[tuple[int, int]]:
    """The fewest aligned ``(level, tile)`` whose union is fine tiles ``first .. last`` (inclusive; empty if
    ``last < first``)."""
    out = []
    i = first
    while i <= last:
        j = levels - 1
        while j and (i % FANOUT ** j or i + FANOUT ** j - 1 > last):
            j -= 1
        out.append((j, i // FANOUT ** j))
        i += FANOUT ** j
    return out


class ReadPlan:
    """What reading windows ``windows`` (µs; default: every aggregation's) of a view at ``now`` needs: per window the
    whole tiles it covers (``covers``, in ``windows`` order) and the last fine tile (``cut``, shared by every window),
    and the union of all (``tiles``)."""

    __slots__ = ("now_us", "cut", "covers", "tiles")

    def __init__(self, view: AggregatedView, now_us: int, windows: list[int] | None = None):
        levels, hop = level_count(view), view.hop_us
        self.now_us = now_us
        self.cut = tile_of(now_us, hop)
        windows = [a.window_us for a in view.aggregations] if windows is None else windows
        self.covers = [cover(window_start_us(now_us, w, hop) // hop, self.cut - 1, levels) for w in windows]
        seen = {(0, self.cut): None}
        for c in self.covers:
            seen.update(dict.fromkeys(c))
        self.tiles = list(seen)

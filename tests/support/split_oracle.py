"""A plain-Python reference for training-set splits, written from docs/concepts/labels-and-splits.md (not from
skewless.splits): per row, one value at a time.

* time: train before the first cut-off, each cut-off the first instant of its split;
* entity: ``sha256(seed + "\\n" + text)`` where text joins, per key value, ``len(str(v)) + ":" + str(v)``
  (integers in decimal, strings as they are, null as ``~``); its first 8 bytes big-endian, divided by 2**64, are
  compared with the cumulative fractions (a bucket below the first is train, ...);
* both: the split the two agree on, else None.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from tests.support.oracle import to_utc


def key_text(values) -> str:
    out = ""
    for v in values:
        if v is None:
            out += "~"
            continue
        s = str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else \
            ("true" if v else "false") if isinstance(v, bool) else str(v)
        out += f"{len(s)}:{s}"
    return out


def entity_split(values, fractions: dict[str, float], seed: str = "") -> str:
    h = int.from_bytes(hashlib.sha256((seed + "\n" + key_text(values)).encode()).digest()[:8], "big")
    total = 0.0
    names = list(fractions)
    for name in names[:-1]:
        total += fractions[name]
        if h < int(total * 2 ** 64):
            return name
    return names[-1]


def time_split(t: datetime | None, cutoffs: dict[str, datetime]) -> str | None:
    if t is None:
        return None
    t = to_utc(t)
    name = "train"
    for n, c in cutoffs.items():  # in order: validation, test
        if t >= to_utc(c):
            name = n
    return name


def split(t, values, *, time: dict | None = None, entity: dict | None = None, seed: str = "") -> str | None:
    by_time = time_split(t, time) if time else None
    by_entity = entity_split(values, entity, seed) if entity else None
    if time and entity:
        return by_time if by_time == by_entity else None
    return by_time if time else by_entity

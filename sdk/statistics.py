"""Per-feature statistics computed from the rows being written, stored with the history version that commits them.

Each append carries, in its own Delta commit's metadata (``skewless.stats``), the statistics of *its* rows: per
stored feature the row count, nulls, min/max, mean and the (n, mean, M2) moments that merge exactly (Chan et al.),
and mergeable sketches: a KLL quantile sketch (numbers), an HLL distinct count and a frequent-items sketch (strings,
booleans). Every ``CUMULATIVE_EVERY`` versions an append also carries the merge of everything up to it
(``skewless.statsTotal``), so the statistics of version N are that record merged with at most that many deltas —
never a scan of the rows. They describe the rows as written into the history (every version up to N, re-sent rows
counted again), not the newest-wins value per entity: see docs/statistics.md.

Computed once per append from the Arrow table being written (``start`` runs it on a thread while the write path
checks ties and stages the online push); a crash before the commit leaves no statistics, as it leaves no rows.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import hll_batch
from .errors import NotFoundError, StatisticsUnavailable

FORMAT = 1
KLL_K = 200  # KLL's accuracy parameter: ~1.33% normalised rank error (99% confidence), whatever the row count
HLL_LG_K = 12  # 4096 registers: ~1.6% relative error on distinct counts
FREQ_LG_MAP = 7  # frequent items: a map of 128 (96 items tracked); error <= 3.5/128 of the rows
# The frequent-items sketch is fed each append's most frequent values (all of them up to this many distinct):
# the tail left out holds items of at most rows/FREQ_FEED occurrences each, well below the sketch's own error.
FREQ_FEED = 4096
_RUN = 256  # values sorted together before the KLL update (see _column)
_PROBE = 16_384  # rows whose distinct count picks how a string column is counted
# An append records the merged statistics of all versions so far when the newest such record is at least this many
# versions old, so reading any version merges at most this many per-append records.
CUMULATIVE_EVERY = 50


@dataclass
class FeatureStatistics:
    """One feature's statistics over the rows of a history (or a training set's snapshot of it).

    ``count``: rows (nulls included); ``nulls``: rows whose value is null (or NaN); ``min``/``max``/``mean``/
    ``stddev`` (sample, ddof=1) over the non-null values of numbers (``mean`` of a Bool is its share of True;
    min/max of a timestamp are datetimes, its mean/stddev None). Sketches (None where they do not apply):
    ``kll`` quantiles of numbers, ``hll`` distinct count of strings (and numbers stored as strings are strings),
    ``frequent`` the most frequent strings (Bool: "true"/"false")."""

    name: str
    dtype: str
    count: int
    nulls: int
    min: Any = None
    max: Any = None
    mean: float | None = None
    stddev: float | None = None
    kll: "ds.kll_doubles_sketch | None" = None
    hll: "ds.hll_sketch | None" = None
    frequent: "ds.frequent_strings_sketch | None" = None

    @property
    def null_rate(self) -> float | None:
        return self.nulls / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The value at rank ``q`` (0..1) from the KLL sketch (None without one, or without values)."""
        if self.kll is None or self.kll.is_empty():
            return None
        return float(self.kll.get_quantile(q))

    @property
    def distinct(self) -> float | None:
        """The HLL estimate of distinct non-null values (None without an HLL sketch)."""
        return None if self.hll is None else float(self.hll.get_estimate())

    def top(self, k: int = 10) -> list[tuple[str, int]]:
        """The ``k`` most frequent values with their estimated counts (frequent-items sketch; [] without one)."""
        if self.frequent is None or self.frequent.is_empty():
            return []
        items = self.frequent.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_POSITIVES)
        if not items:  # no item is certainly above the error: the best estimates still rank the values
            items = self.frequent.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        return [(i[0], int(i[1])) for i in items[:k]]

    def to_dict(self) -> dict:
        """Plain values (JSON-ready): the sketches as their summaries (p01..p99, distinct, top items)."""
        out = {"name": self.name, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
               "null_rate": self.null_rate, "min": _plain(self.min), "max": _plain(self.max), "mean": self.mean,
               "stddev": self.stddev}
        if self.kll is not None:
            out["quantiles"] = {f"p{int(q * 100):02d}": self.quantile(q) for q in (0.01, 0.05, 0.25, 0.5, 0.75,
                                                                                0.95, 0.99)}
        if self.hll is not None:
            out["distinct"] = round(self.distinct or 0.0)
        if self.frequent is not None:
            out["top"] = [{"value": v, "count": c} for v, c in self.top()]
        return out


@dataclass
class ViewStatistics:
    """A view's statistics at one history version: ``rows`` written in all versions up to ``version``."""

    view: str
    version: int
    rows: int
    features: dict[str, FeatureStatistics] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"view": self.view, "version": self.version, "rows": self.rows,
                "features": {n: f.to_dict() for n, f in self.features.items()}}


def _plain(v):
    return v.isoformat() if isinstance(v, datetime) else v


# -- one append's rows ----------------------------------------------------------------------------------------------
def _kind(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return "other"


def _column(name: str, dtype: str, col: pa.ChunkedArray) -> dict:
    """The mergeable state of one column: counts, moments and sketches (sketch objects, not bytes yet)."""
    rows, kind = len(col), _kind(col.type)
    st: dict = {"dtype": dtype, "kind": kind, "count": rows, "nulls": col.null_count}
    if kind == "number":
        if pa.types.is_floating(col.type):
            nan = pc.sum(pc.is_nan(col)).as_py() or 0
            if nan:  # NaN is missing data here, as pandas treats it
                col = pc.drop_null(pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col))
                st["nulls"] += nan
        values = rows - st["nulls"]
        st["n"] = values
        if values:
            mean = pc.mean(col).as_py()
            st["mean"], st["m2"] = mean, (pc.variance(col, ddof=0).as_py() or 0.0) * values
            kll = ds.kll_doubles_sketch(KLL_K)
            # One vectorised update (a writable float64 copy: the binding refuses Arrow's read-only buffers). KLL's
            # compactions sort its buffer: fed runs already sorted (numpy sorts 256-value blocks at ~2-3 ns a value)
            # it costs about half. Its error bound holds whatever the order of the input.
            vals = np.array((pc.drop_null(col) if st["nulls"] else col).to_numpy(), dtype=np.float64)
            runs = vals[:len(vals) // _RUN * _RUN].reshape(-1, _RUN)
            runs.sort(axis=1)
            kll.update(vals)
            st["kll"] = kll
            if pa.types.is_floating(col.type):  # the runs' ends and the rest hold the extremes
                ends = np.concatenate([runs[:, 0], runs[:, -1], vals[runs.size:]])
                st["min"], st["max"] = float(ends.min()), float(ends.max())
            else:  # integers stay exact (a double holds only 53 bits)
                mm = pc.min_max(col)
                st["min"], st["max"] = mm["min"].as_py(), mm["max"].as_py()
        else:
            st["kll"] = ds.kll_doubles_sketch(KLL_K)
    elif kind == "bool":
        true = pc.sum(col).as_py() or 0
        values = rows - st["nulls"]
        st["n"], st["true"] = values, true
        freq = ds.frequent_strings_sketch(FREQ_LG_MAP)
        if true:
            freq.update("true", int(true))
        if values - true:
            freq.update("false", int(values - true))
        st["freq"] = freq
    elif kind == "string":
        arr = pc.drop_null(col).combine_chunks()
        # Whether to count every value or only the frequent ones (below) is decided on the first rows; either way
        # the result is exact, only the cost differs.
        if pc.count_distinct(arr.slice(0, _PROBE)).as_py() <= _PROBE // 8:
            counts = pc.value_counts(arr)
            values = counts.field("values")
            st["freq"] = _frequent(values, counts.field("counts").to_numpy())
            st["hll"] = hll_batch.sketch(hll_batch.prepare(values), HLL_LG_K)
        else:
            st["freq"], st["hll"] = _many_distinct(arr)
    elif kind == "timestamp":
        if rows - st["nulls"]:
            mm = pc.min_max(col)
            st["min"], st["max"] = _us(mm["min"]), _us(mm["max"])
    return st


def _us(scalar) -> int | None:
    """A timestamp scalar as UTC microseconds (merged as integers, shown as datetimes)."""
    v = scalar.cast(pa.timestamp("us", tz="UTC")).value
    return None if v is None else int(v)


def _frequent(values: pa.Array, weights: np.ndarray) -> "ds.frequent_strings_sketch":
    freq = ds.frequent_strings_sketch(FREQ_LG_MAP)
    if len(weights) > FREQ_FEED:
        top = np.argpartition(weights, -FREQ_FEED)[-FREQ_FEED:]
        values, weights = values.take(pa.array(top)), weights[top]
    for v, w in zip(values.to_pylist(), weights.tolist()):
        freq.update(v, int(w))
    return freq


def _many_distinct(arr: pa.Array) -> tuple:
    """Frequent items and distinct count of a string column with many distinct values, from one vectorised hash of
    every value (hll_batch): only the rows whose hash bucket holds more than rows/FREQ_FEED rows are counted — every
    value occurring that often is among them, with its exact count — and the HLL keeps one value per register."""
    values = hll_batch.prepare(arr)
    hashes = hll_batch.murmur3(values)
    hll = hll_batch.sketch(values, HLL_LG_K, hashes)
    bucket = (hashes[0] >> np.uint64(48)).astype(np.intp)
    heavy = np.bincount(bucket, minlength=1 << 16) * FREQ_FEED > len(arr)
    counts = pc.value_counts(values.filter(pa.array(heavy[bucket])))
    vals, weights = counts.field("values"), counts.field("counts").to_numpy()
    empty = len(arr) - len(values)  # empty strings: no hash (HLL ignores them), still a value
    if empty * FREQ_FEED > len(arr):
        vals, weights = pa.concat_arrays([vals, pa.array([""], vals.type)]), np.append(weights, empty)
    return _frequent(vals, weights), hll


def compute(view, rows: pa.Table) -> dict:
    """The statistics of ``rows`` (canonical history columns about to be appended to ``view``), per stored
    feature, as a mergeable record."""
    feats = {}
    for f in view.stored_fields:
        if f.name in rows.column_names:
            feats[f.name] = _column(f.name, str(f.dtype), rows.column(f.name))
    return {"format": FORMAT, "rows": rows.num_rows, "features": feats}


def start(view, rows: pa.Table) -> Callable[[], str]:
    """Compute ``rows``' statistics on a thread (its Arrow and sketch work overlaps the write path's tie check and
    online staging, which release the GIL); the returned callable waits and returns the encoded record. An error
    there is raised by the callable, in the writer, before anything is committed."""
    box: dict = {}

    def run():
        try:
            box["record"] = encode(compute(view, rows))
        except BaseException as exc:  # handed to the writer
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"skewless-stats-{view.name}", daemon=True)
    thread.start()

    def result() -> str:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["record"]

    return result


# -- merging ----------------------------------------------------------------------------------------------------------
# Per sketch: a fresh merger, how a part goes in, and the merged sketch out.
_MERGERS = {
    "kll": (lambda: ds.kll_doubles_sketch(KLL_K), "merge", lambda m: m),
    "hll": (lambda: ds.hll_union(HLL_LG_K), "update", lambda m: m.get_result(ds.HLL_4)),
    "freq": (lambda: ds.frequent_strings_sketch(FREQ_LG_MAP), "merge", lambda m: m),
}


def _merge_feature(parts: list[tuple[dict | None, int]]) -> dict:
    """One feature's states (each with its record's row count) merged; a record without the feature (the column did
    not exist then: the history reads it as null) counts its rows as nulls."""
    known = [st for st, _ in parts if st is not None]
    out: dict = {"dtype": known[-1]["dtype"], "kind": known[-1]["kind"], "count": 0, "nulls": 0}
    mergers: dict = {}
    for st, rows in parts:
        if st is None:
            out["count"] += rows
            out["nulls"] += rows
            continue
        out["count"] += st["count"]
        out["nulls"] += st["nulls"]
        for k, pick in (("min", min), ("max", max)):
            if st.get(k) is not None:
                out[k] = st[k] if out.get(k) is None else pick(out[k], st[k])
        if "n" in st:
            na, nb = out.get("n", 0), st["n"]
            out["n"] = na + nb
            if "true" in st:
                out["true"] = out.get("true", 0) + st["true"]
            if nb and st.get("mean") is not None:
                if not na or out.get("mean") is None:
                    out["mean"], out["m2"] = st["mean"], st["m2"]
                else:  # Chan et al.: the exact merge of (n, mean, M2)
                    delta = st["mean"] - out["mean"]
                    out["mean"] += delta * nb / (na + nb)
                    out["m2"] += st["m2"] + delta * delta * na * nb / (na + nb)
        for k, (new, how, _) in _MERGERS.items():
            if st.get(k) is not None:
                if k not in mergers:
                    mergers[k] = new()
                getattr(mergers[k], how)(st[k])
    for k, m in mergers.items():
        out[k] = _MERGERS[k][2](m)
    return out


def merge(records: list[dict]) -> dict:
    """One record for the rows of all ``records`` (any order: every part merges commutatively)."""
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec["features"]))
    return {"format": FORMAT, "rows": sum(r["rows"] for r in records),
            "features": {n: _merge_feature([(r["features"].get(n), r["rows"]) for r in records]) for n in names}}


# -- encoding (the commit metadata is text) ----------------------------------------------------------------------------
_SKETCHES = {"kll": ds.kll_doubles_sketch, "hll": ds.hll_sketch, "freq": ds.frequent_strings_sketch}


def encode(record: dict) -> str:
    feats = {}
    for name, st in record["features"].items():
        d = {}
        for k, v in st.items():
            if k == "hll":
                v = base64.b64encode(v.serialize_compact()).decode()
            elif k in _SKETCHES:
                v = base64.b64encode(v.serialize()).decode()
            d[k] = v
        feats[name] = d
    text = json.dumps({"format": record["format"], "rows": record["rows"], "features": feats}, separators=(",", ":"))
    return "z1:" + base64.b64encode(zlib.compress(text.encode(), 6)).decode()


def decode(text: str) -> dict:
    if not text.startswith("z1:"):
        raise ValueError(f"unknown statistics encoding {text[:8]!r}")
    record = json.loads(zlib.decompress(base64.b64decode(text[3:])))
    for st in record["features"].values():
        for k, cls in _SKETCHES.items():
            if st.get(k) is not None:
                st[k] = cls.deserialize(base64.b64decode(st[k]))
    return record


def merge_encoded(texts: list[str]) -> str:
    return encode(merge([decode(t) for t in texts]))


# -- reading --------------------------------------------------------------------------------------------------------
def to_view_statistics(view: str, version: int, record: dict) -> ViewStatistics:
    feats = {}
    for name, st in record["features"].items():
        n = st.get("n", 0)
        kind = st["kind"]
        mean = stddev = None
        if kind == "number" and n and st.get("mean") is not None:
            mean = st["mean"]
            stddev = math.sqrt(max(st["m2"], 0.0) / (n - 1)) if n > 1 else None
        elif kind == "bool" and n:
            p = st["true"] / n
            mean = p
            stddev = math.sqrt(p * (1 - p) * n / (n - 1)) if n > 1 else None
        lo, hi = st.get("min"), st.get("max")
        if kind == "timestamp":
            lo, hi = (None if v is None else datetime.fromtimestamp(v / 1e6, tz=timezone.utc) for v in (lo, hi))
        elif kind == "bool" and n:
            lo, hi = st["true"] == n, st["true"] > 0  # min: False unless every value is True
        feats[name] = FeatureStatistics(name, st["dtype"], st["count"], st["nulls"], lo, hi, mean, stddev,
                                        st.get("kll"), st.get("hll"), st.get("freq"))
    return ViewStatistics(view, version, record["rows"], feats)


def append_options(store, view, rows: pa.Table) -> dict:
    """What an append of ``rows`` passes its offline store for statistics: ``{"statistics": ...}`` (computing on a
    thread from now), or nothing when they are off (``statistics: false``) or the store cannot record them."""
    if not getattr(store.config, "statistics", True) or not store.offline.supports_statistics:
        return {}
    return {"statistics": start(view, rows)}


def read(offline, view: str, version: int | None) -> ViewStatistics:
    """``view``'s statistics at history ``version`` (None: the newest) from ``offline``'s records."""
    if version is None:
        version = offline.version(view)
        if version is None:
            raise StatisticsUnavailable(f"view {view!r} has no history yet, so no statistics", view=view,
                                        version=None)
    return to_view_statistics(view, version, merge([decode(t) for t in offline.statistics_records(view, version)]))


def for_training_set(store, name: str, version: int | None, authorize: Callable | None = None
                     ) -> dict[str, FeatureStatistics]:
    """A registered training set's feature statistics, keyed by feature ref ``view:feature``: each view's at the
    history version the training set recorded. Refs that are not a view's stored feature (an on-demand
    transform's output) have none; a view with no history at the snapshot has zero rows. ``authorize(refs)``
    (the store's ``read_offline`` check) runs on its features before any statistics are read."""
    if version is None:
        ts = store.get_training_set(name)
    else:
        from .training_sets import TrainingSet

        found = [o for o in store.registry.history("training_set", name) if o.version == version]
        if not found:
            raise NotFoundError(f"training set {name!r} has no version {version}")
        ts = TrainingSet.from_dict(found[0].spec)
    if authorize is not None:
        authorize(list(ts.features))
    at = {**ts.snapshot, **(ts.statistics or {})}
    by_view: dict[str, ViewStatistics | None] = {}
    out: dict[str, FeatureStatistics] = {}
    for ref in ts.features:
        view, _, feature = ref.partition(":")
        if view not in at:
            continue
        if view not in by_view:
            by_view[view] = None if at[view] is None else read(store.offline, view, at[view])
        vs = by_view[view]
        if vs is None:
            out[ref] = FeatureStatistics(feature, "", 0, 0)
        elif feature in vs.features:
            out[ref] = vs.features[feature]
    return out

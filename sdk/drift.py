"""Training-serving skew and drift: served values of one feature against the write-time statistics of what the model
was trained on (a ``FeatureStatistics``: KLL quantile sketch for numbers, frequent-items sketch for the others).

The reference is never rescanned: its distribution is what its sketches say. Served values are the sample in hand
(numpy, exact). Formulas and their error are in docs/monitoring.md; in short:

* Bins. Numbers: the reference's deciles (``get_quantiles``) as edges, duplicates dropped, plus the two open ends:
  bins ``(-inf, e1], (e1, e2], ..., (ek, +inf)``; the reference's mass per bin from the sketch's CDF (``get_cdf``,
  inclusive), the served mass by counting. Categories: the reference's ``TOP_K`` most frequent items plus "other"
  (everything else, new categories included).
* PSI = sum over bins of (s - r) * ln(s / r), with each share below ``EPSILON`` replaced by ``EPSILON`` (an empty
  bin would make it infinite).
* Jensen-Shannon distance, base 2 (in [0, 1]): sqrt of the JS divergence of the same two binned distributions, as
  ``scipy.spatial.distance.jensenshannon(r, s, base=2)``; empty bins contribute 0, no epsilon needed.
* KS (numbers only) = sup over x of |F_ref(x) - F_served(x)|, F(x) = P(X <= x). F_ref is the sketch's CDF, a step
  function over its retained items; both are step functions, so the sup is reached at one of their jump points and
  is computed exactly over the union of retained items and served values. It differs from the KS statistic against
  the full reference sample by at most the sketch's normalized rank error (``ks_error``).
* Missing: the shares of served rows whose view read NOT_FOUND or EXPIRED, and of present rows whose value is null.
  Distribution metrics use only present, non-null (non-NaN) values, as the sketches hold only those.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DefinitionError

EPSILON = 1e-4  # PSI's floor for a bin's share: an empty bin adds at most ~ s * ln(s / 1e-4), not infinity
DECILES = tuple(i / 10 for i in range(1, 10))
TOP_K = 20  # categories kept by name; the rest is "other"
OTHER = "<other>"
PRESENT, NOT_FOUND, EXPIRED = "PRESENT", "NOT_FOUND", "EXPIRED"  # skewless.online.base's statuses
METRICS = ("psi", "ks", "js", "missing_share")


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's served values against its reference: the metrics (None where they do not apply: no values,
    KS of a category) and what they were computed on."""

    feature: str
    kind: str  # "numeric" | "categorical" | "none" (the reference has no sketch: missing shares only)
    rows: int  # served rows
    values: int  # present, non-null served values the distribution metrics use
    psi: float | None
    ks: float | None
    js: float | None
    missing_share: float | None  # NOT_FOUND + EXPIRED rows / rows
    not_found_share: float | None
    expired_share: float | None
    null_share: float | None  # null (or NaN) values among present rows
    reference_null_rate: float | None
    ks_error: float | None  # the reference sketch's normalized rank error (99% confidence)
    bins: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    served_shares: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def psi(reference: np.ndarray, served: np.ndarray, epsilon: float = EPSILON) -> float:
    r, s = np.maximum(reference, epsilon), np.maximum(served, epsilon)
    return float(np.sum((s - r) * np.log(s / r)))


def js_distance(reference: np.ndarray, served: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2: 0 for equal distributions, 1 for disjoint ones."""
    p, q = reference / reference.sum(), served / served.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def _sketch_cdf(kll) -> tuple[np.ndarray, np.ndarray]:
    """The KLL sketch's CDF as (sorted retained items, cumulative share at each): what ``get_cdf(x, inclusive=True)``
    answers, as arrays, so it is evaluated at thousands of points with one searchsorted."""
    pairs = sorted(kll)  # (item, weight)
    items = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))
    weights = np.fromiter((p[1] for p in pairs), dtype=np.float64, count=len(pairs))
    return items, np.cumsum(weights) / weights.sum()


def ks_statistic(kll, served_sorted: np.ndarray) -> float:
    """sup |F_ref - F_served| with F_ref the sketch's CDF, over the jump points of both (where the sup is)."""
    items, cum = _sketch_cdf(kll)
    points = np.union1d(items, served_sorted)
    i = np.searchsorted(items, points, side="right")
    ref = np.where(i > 0, cum[np.maximum(i - 1, 0)], 0.0)
    srv = np.searchsorted(served_sorted, points, side="right") / len(served_sorted)
    return float(np.max(np.abs(ref - srv)))


def numeric_bins(kll) -> tuple[np.ndarray, np.ndarray]:
    """(edges, reference shares of the len(edges) + 1 bins): the reference's deciles as edges."""
    edges = np.unique(np.asarray(kll.get_quantiles(list(DECILES), inclusive=True), dtype=np.float64))
    cdf = np.asarray(kll.get_cdf(edges.tolist(), inclusive=True), dtype=np.float64)  # inclusive: P(X <= e), then 1.0
    return edges, np.diff(np.concatenate([[0.0], cdf]))


def _served_bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(1, len(values))


def category_bins(frequent) -> tuple[list[str], np.ndarray]:
    """(the reference's TOP_K most frequent items, their shares + the other items' share last)."""
    from datasketches import frequent_items_error_type

    total = frequent.total_weight
    top = frequent.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)[:TOP_K]
    names = [str(t[0]) for t in top]
    shares = np.array([t[1] / total for t in top] if total else [], dtype=np.float64)
    return names, np.append(shares, max(0.0, 1.0 - float(shares.sum())))


def _as_array(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        return values
    return pa.array(values.tolist() if isinstance(values, np.ndarray) and values.dtype == object else values,
                    from_pandas=True)


def compare(feature: str, reference, values: Any, statuses: Any = None) -> FeatureDrift:
    """``values`` (one per served row: Arrow, numpy or a list) against ``reference`` (a ``FeatureStatistics``);
    ``statuses``: the row's view status (PRESENT, NOT_FOUND, EXPIRED), or None when all were PRESENT."""
    arr = _as_array(values)
    rows = len(arr)
    nf = ex = 0
    if statuses is not None:
        st = _as_array(statuses).cast(pa.string())
        nf, ex = (int(pc.sum(pc.equal(st, s)).as_py() or 0) for s in (NOT_FOUND, EXPIRED))
        arr = arr.filter(pc.fill_null(pc.equal(st, PRESENT), False))
    present = len(arr)
    nulls = arr.null_count
    if pa.types.is_floating(arr.type):  # NaN is missing data, as the write-time statistics count it
        nulls += int(pc.sum(pc.is_nan(arr)).as_py() or 0)
    kll, freq = getattr(reference, "kll", None), getattr(reference, "frequent", None)
    kind = "numeric" if kll is not None and not kll.is_empty() else \
        "categorical" if freq is not None and not freq.is_empty() else "none"
    out = dict(feature=feature, kind=kind, rows=rows, values=0, psi=None, ks=None, js=None,
               missing_share=(nf + ex) / rows if rows else None, not_found_share=nf / rows if rows else None,
               expired_share=ex / rows if rows else None, null_share=nulls / present if present else None,
               reference_null_rate=getattr(reference, "null_rate", None), ks_error=None)
    if kind == "numeric":
        x = _numbers(arr)
        out.update(values=len(x), ks_error=kll.normalized_rank_error(False))
        if len(x):
            edges, ref = numeric_bins(kll)
            srv = _served_bins(edges, x)
            out.update(psi=psi(ref, srv), js=js_distance(ref, srv), ks=ks_statistic(kll, np.sort(x)),
                       bins=_edge_labels(edges), reference_shares=ref.tolist(), served_shares=srv.tolist())
    elif kind == "categorical":
        names, ref = category_bins(freq)
        x = arr.drop_null().cast(pa.string()) if arr.type != pa.string() else arr.drop_null()
        out["values"] = len(x)
        if len(x):
            counts = {r["values"]: r["counts"] for r in pc.value_counts(x).to_pylist()}
            srv = np.array([counts.pop(n, 0) for n in names] + [sum(counts.values())], dtype=np.float64) / len(x)
            out.update(psi=psi(ref, srv), js=js_distance(ref, srv), bins=names + [OTHER],
                       reference_shares=ref.tolist(), served_shares=srv.tolist())
    return FeatureDrift(**out)


def _numbers(arr: pa.Array) -> np.ndarray:
    """Present values as float64 without nulls or NaN (what a KLL sketch holds: it ignores NaN). Booleans as 0/1;
    timestamps as microseconds since the epoch."""
    arr = arr.drop_null()
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp("us")).cast(pa.int64())
    elif pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int8())
    x = arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return x[~np.isnan(x)]


def _edge_labels(edges: np.ndarray) -> list[str]:
    e = [f"{v:.6g}" for v in edges]
    return [f"<= {e[0]}"] + [f"({a}, {b}]" for a, b in zip(e, e[1:])] + [f"> {e[-1]}"]


# -- thresholds ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """When a feature's drift is a breach: a metric strictly above its limit (None: that metric is not judged),
    judged only on ``min_rows`` served rows or more (fewer: sampling noise alone reaches the limits; KS's 95% noise
    level is about 1.36 / sqrt(rows), 0.06 at 500)."""

    psi: float | None = 0.2
    ks: float | None = 0.1
    js: float | None = 0.1
    missing_share: float | None = 0.05
    min_rows: int = 500

    def breaches(self, d: FeatureDrift) -> list[str]:
        if d.rows < self.min_rows:
            return []
        return [m for m in METRICS if (limit := getattr(self, m)) is not None
                and (v := getattr(d, m)) is not None and v > limit]


DEFAULT = Thresholds()
_KEYS = set(Thresholds.__dataclass_fields__)


def check_monitoring(spec: Mapping | None, what: str) -> dict | None:
    """A ``monitoring=`` declaration, checked and copied: ``{"psi": 0.2, "ks": 0.1, "js": 0.1, "missing_share":
    0.05, "min_rows": 500, "features": {"view:feature": {"psi": 0.3}, ...}}``, every key optional; a limit of None
    turns that metric's check off. A DefinitionError names what is wrong."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"{what}: monitoring must be a mapping of thresholds, got {type(spec).__name__}")
    out = _check_limits(spec, what, allow_features=True)
    feats = spec.get("features", {})
    if not isinstance(feats, Mapping):
        raise DefinitionError(f"{what}: monitoring 'features' must map 'view:feature' to thresholds")
    if feats:
        out["features"] = {}
        for ref, limits in feats.items():
            if not isinstance(ref, str) or ref.count(":") != 1 or not isinstance(limits, Mapping):
                raise DefinitionError(f"{what}: monitoring features: {ref!r} must be 'view:feature' with a mapping "
                                      "of thresholds")
            out["features"][ref] = _check_limits(limits, f"{what}: monitoring of {ref}", allow_features=False)
    return out


def _check_limits(spec: Mapping, what: str, *, allow_features: bool) -> dict:
    unknown = set(spec) - _KEYS - ({"features"} if allow_features else set())
    if unknown:
        raise DefinitionError(f"{what}: unknown monitoring keys {sorted(unknown)}; known: "
                              f"{', '.join(sorted(_KEYS))}" + (", features" if allow_features else ""))
    out: dict = {}
    for k in sorted(set(spec) & _KEYS):
        v = spec[k]
        if k == "min_rows":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DefinitionError(f"{what}: min_rows must be an integer >= 1, not {v!r}")
        elif v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                or v < 0):
            raise DefinitionError(f"{what}: threshold {k} must be a number >= 0 (or None: not checked), not {v!r}")
        out[k] = v
    return out


def thresholds(feature: str, *layers: Mapping | None) -> Thresholds:
    """The thresholds of ``feature`` ("view:feature") from ``DEFAULT`` and checked ``monitoring`` declarations,
    least specific first (the feature service's, then the model's): every layer's defaults, then every layer's
    entry for the feature. A per-feature limit beats any default; between two of a kind, the later layer wins."""
    t = DEFAULT
    for layer in layers:
        t = replace(t, **{k: v for k, v in (layer or {}).items() if k in _KEYS})
    for layer in layers:
        t = replace(t, **((layer or {}).get("features", {}).get(feature) or {}))
    return t

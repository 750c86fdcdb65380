"""Skew and drift metrics (skewless.drift) against scipy on known samples: a reference held in real DataSketches
sketches (KLL for numbers, frequent items for categories) vs a served sample. Where the sketch is exact (fewer
values than it retains) the metrics equal scipy's and the plain formulas to rounding; in estimation mode they stay
within the sketch's documented rank error of the exact values on the full reference sample."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from datasketches import frequent_strings_sketch, kll_doubles_sketch
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from skewless import drift
from skewless.errors import DefinitionError
from skewless.statistics import FeatureStatistics


def reference(values=None, categories=None, null_rate=0.0, k=200) -> FeatureStatistics:
    """A reference as write-time statistics give it: the sketches of the present values (and 1,000 rows with
    ``null_rate`` of them null)."""
    kll = freq = None
    if values is not None:
        kll = kll_doubles_sketch(k)
        kll.update(np.asarray(values, dtype=np.float64))
    if categories is not None:
        freq = frequent_strings_sketch(10)
        for c in categories:
            freq.update(c)
    return FeatureStatistics("x", "Float64" if values is not None else "String", count=1000,
                             nulls=round(1000 * null_rate), kll=kll, frequent=freq)


def exact_shares(edges: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """The shares of the bins (-inf, e1], (e1, e2], ..., (ek, inf) in a sample, counted."""
    return np.bincount(np.searchsorted(edges, sample, side="left"), minlength=len(edges) + 1) / len(sample)


def exact_psi(r: np.ndarray, s: np.ndarray) -> float:
    r, s = np.maximum(r, drift.EPSILON), np.maximum(s, drift.EPSILON)
    return float(np.sum((s - r) * np.log(s / r)))


def test_exact_sketch_equals_scipy_and_formulas():
    rng = np.random.default_rng(1)
    ref_sample = rng.normal(50, 10, 150).round(1)  # < k=200 retained: the sketch is the sample itself
    served = rng.normal(55, 12, 400).round(1)
    ref = reference(ref_sample)
    assert not ref.kll.is_estimation_mode()
    d = drift.compare("v:x", ref, served)
    assert d.kind == "numeric" and d.rows == d.values == 400
    assert d.ks == pytest.approx(ks_2samp(ref_sample, served).statistic, abs=1e-12)
    edges = np.unique(np.quantile(ref_sample, drift.DECILES, method="inverted_cdf"))
    r, s = exact_shares(edges, ref_sample), exact_shares(edges, served)
    assert d.reference_shares == pytest.approx(r.tolist(), abs=1e-12)
    assert d.served_shares == pytest.approx(s.tolist(), abs=1e-12)
    assert d.psi == pytest.approx(exact_psi(r, s), abs=1e-12)
    assert d.js == pytest.approx(jensenshannon(r, s, base=2), abs=1e-12)
    assert len(d.bins) == len(edges) + 1 and d.bins[0].startswith("<=") and d.bins[-1].startswith(">")


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_estimation_mode_within_the_sketch_rank_error(shift):
    rng = np.random.default_rng(2)
    ref_sample = rng.normal(0, 1, 200_000)
    served = rng.normal(shift, 1, 5_000)
    ref = reference(ref_sample)
    assert ref.kll.is_estimation_mode()
    d = drift.compare("v:x", ref, served)
    eps = ref.kll.normalized_rank_error(False)
    assert d.ks_error == eps
    assert abs(d.ks - ks_2samp(ref_sample, served).statistic) <= eps
    # The same edges on the full reference sample: each bin's share is a difference of two ranks, so within 2 eps.
    edges = np.unique(np.asarray(ref.kll.get_quantiles(list(drift.DECILES), inclusive=True)))
    r = exact_shares(edges, ref_sample)
    assert np.max(np.abs(np.array(d.reference_shares) - r)) <= 2 * eps
    s = np.array(d.served_shares)
    assert s == pytest.approx(exact_shares(edges, served))
    # PSI and JS move little with the reference's shares this close: within what a 2-eps change of every bin gives.
    assert abs(d.js - jensenshannon(r, s, base=2)) <= 0.02
    assert abs(d.psi - exact_psi(r, s)) <= 0.02 + 0.1 * exact_psi(r, s)
    if shift == 0.0:
        assert d.psi < 0.02 and d.ks < 0.05 and d.js < 0.05
    if shift == 1.0:  # one standard deviation: a large shift by every measure
        assert d.psi > 0.5 and d.ks > 0.3 and d.js > 0.3


def test_ks_is_the_sup_over_the_sketch_cdf_as_get_cdf_answers_it():
    rng = np.random.default_rng(3)
    ref = reference(rng.exponential(2.0, 50_000))
    served = np.sort(rng.exponential(2.5, 3_000))
    # The sketch's CDF read from its retained items is what get_cdf answers, at any point.
    points = np.union1d(np.asarray(ref.kll.get_quantiles(list(np.linspace(0, 1, 1001)), inclusive=True)), served)
    via_get_cdf = np.asarray(ref.kll.get_cdf(points.tolist(), inclusive=True)[:-1])
    items, cum = drift._sketch_cdf(ref.kll)
    i = np.searchsorted(items, points, side="right")
    assert np.where(i > 0, cum[np.maximum(i - 1, 0)], 0.0) == pytest.approx(via_get_cdf, abs=1e-12)
    # KS over every jump point is at least the max over a grid of 1,000 reference quantiles and the served values,
    # and more by no more than one grid step.
    ecdf = np.searchsorted(served, points, side="right") / len(served)
    on_grid = float(np.max(np.abs(via_get_cdf - ecdf)))
    assert on_grid <= drift.ks_statistic(ref.kll, served) <= on_grid + 1 / 1000


def test_categories_top_k_and_other_against_scipy():
    ref_cats = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    served = ["a"] * 200 + ["b"] * 300 + ["c"] * 100 + ["new"] * 400  # a category training never saw
    d = drift.compare("v:c", reference(categories=ref_cats), pa.array(served))
    assert d.kind == "categorical" and d.ks is None
    assert d.bins == ["a", "b", "c", drift.OTHER]
    r, s = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.2, 0.3, 0.1, 0.4])
    assert d.reference_shares == pytest.approx(r.tolist()) and d.served_shares == pytest.approx(s.tolist())
    assert d.js == pytest.approx(jensenshannon(r, s, base=2), abs=1e-12)
    assert d.psi == pytest.approx(exact_psi(r, s), abs=1e-12)
    assert d.psi > 3  # the empty reference bin, floored at EPSILON, dominates: ~0.4 * ln(0.4 / 1e-4)
    same = drift.compare("v:c", reference(categories=ref_cats), ref_cats)
    assert same.psi == pytest.approx(0.0, abs=1e-12) and same.js == pytest.approx(0.0, abs=1e-7)


def test_more_categories_than_top_k_go_to_other():
    cats = [f"c{i:02d}" for i in range(30) for _ in range(30 - i)]
    d = drift.compare("v:c", reference(categories=cats), cats)
    assert len(d.bins) == drift.TOP_K + 1 and d.bins[0] == "c00"
    assert d.reference_shares[-1] == pytest.approx(d.served_shares[-1])
    assert d.served_shares[-1] == pytest.approx(sum(range(1, 11)) / len(cats))  # c20..c29: 10 + 9 + ... + 1
    assert d.psi == pytest.approx(0.0, abs=1e-9)


def test_statuses_and_nulls_are_shares_and_stay_out_of_the_distribution():
    rng = np.random.default_rng(4)
    ref = reference(rng.normal(0, 1, 1000), null_rate=0.01)
    values = pa.array([0.1, None, 0.3, None, float("nan"), 0.5, None, 0.2], type=pa.float64())
    statuses = ["PRESENT", "PRESENT", "PRESENT", "NOT_FOUND", "PRESENT", "PRESENT", "EXPIRED", "PRESENT"]
    d = drift.compare("v:x", ref, values, statuses)
    assert d.rows == 8 and (d.not_found_share, d.expired_share, d.missing_share) == (1 / 8, 1 / 8, 2 / 8)
    assert d.null_share == pytest.approx(2 / 6)  # a null and a NaN among the six present rows (NaN is missing too)
    assert d.values == 4  # present, not null, not NaN
    assert d.reference_null_rate == 0.01
    nothing = drift.compare("v:x", ref, pa.array([None, None], type=pa.float64()), ["NOT_FOUND", "EXPIRED"])
    assert nothing.missing_share == 1.0 and nothing.values == 0
    assert nothing.psi is nothing.ks is nothing.js is None
    empty = drift.compare("v:x", ref, pa.array([], type=pa.float64()))
    assert empty.rows == 0 and empty.missing_share is None and empty.psi is None


def test_integers_with_few_values_and_booleans_and_no_sketch():
    ints = np.repeat([1, 2, 3], [70, 20, 10])  # fewer than k: exact
    d = drift.compare("v:i", reference(ints), pa.array(np.repeat([1, 2, 3], [100, 200, 700])))
    edges = np.unique(np.asarray(reference(ints).kll.get_quantiles(list(drift.DECILES), inclusive=True)))
    assert list(edges) == [1.0, 2.0]  # duplicate deciles collapse (the 9th decile is 2)
    assert d.reference_shares == pytest.approx([0.7, 0.2, 0.1])
    assert d.served_shares == pytest.approx([0.1, 0.2, 0.7])
    assert d.ks == pytest.approx(ks_2samp(ints, np.repeat([1, 2, 3], [100, 200, 700])).statistic)
    b = drift.compare("v:b", reference([0] * 90 + [1] * 10), pa.array([True] * 50 + [False] * 50))
    assert b.ks == pytest.approx(0.4)
    bare = drift.compare("v:s", FeatureStatistics("s", "UnixTimestamp", count=0, nulls=0), ["x", "y"])
    assert bare.kind == "none" and bare.psi is None and bare.missing_share == 0.0
    assert drift.compare("v:s", None, ["x"]).kind == "none"  # no statistics for the feature at all


def test_psi_and_js_limits():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.0, 0.0, 1.0])
    assert drift.js_distance(p, q) == pytest.approx(1.0)  # disjoint: the base-2 distance's maximum
    assert drift.js_distance(p, p) == 0.0 and drift.psi(p, p) == 0.0
    assert drift.psi(p, q) == pytest.approx(2 * (drift.EPSILON - 0.5) * math.log(drift.EPSILON / 0.5)
                                            + (1 - drift.EPSILON) * math.log(1 / drift.EPSILON))


def test_thresholds_layers_and_breaches():
    svc = drift.check_monitoring({"psi": 0.3, "features": {"v:x": {"ks": 0.05}}}, "feature service s")
    model = drift.check_monitoring({"ks": 0.2, "min_rows": 10, "features": {"v:y": {"js": None}}}, "model m")
    tx = drift.thresholds("v:x", svc, model)
    assert (tx.psi, tx.ks, tx.js, tx.missing_share, tx.min_rows) == (0.3, 0.05, 0.1, 0.05, 10)
    ty = drift.thresholds("v:y", svc, model)
    assert (ty.psi, ty.ks, ty.js) == (0.3, 0.2, None)
    assert drift.thresholds("v:z") == drift.DEFAULT
    d = drift.FeatureDrift("v:y", "numeric", 20, 20, psi=0.31, ks=0.2, js=0.9, missing_share=0.06,
                           not_found_share=0.06, expired_share=0.0, null_share=0.0, reference_null_rate=0.0,
                           ks_error=0.01)
    assert ty.breaches(d) == ["psi", "missing_share"]  # ks at its limit is not over it; js not judged
    assert drift.thresholds("v:y", model).breaches(d) == ["psi", "missing_share"]
    assert drift.Thresholds(min_rows=21).breaches(d) == []  # too few rows to judge


@pytest.mark.parametrize("spec, message", [
    ([0.2], "must be a mapping"),
    ({"psy": 0.2}, "unknown monitoring keys ['psy']"),
    ({"psi": -1}, "threshold psi must be a number >= 0"),
    ({"ks": "high"}, "threshold ks must be a number"),
    ({"js": float("nan")}, "threshold js must be a number"),
    ({"min_rows": 0}, "min_rows must be an integer >= 1"),
    ({"features": {"x": {"psi": 0.1}}}, "'x' must be 'view:feature'"),
    ({"features": {"v:x": {"features": {}}}}, "unknown monitoring keys ['features']"),
])
def test_bad_monitoring_declarations(spec, message):
    with pytest.raises(DefinitionError, match="^svc: .*" + __import__("re").escape(message)):
        drift.check_monitoring(spec, "svc")


def test_feature_service_monitoring_is_stored_only_when_declared(repo):
    import skewless as sk

    e = sk.Entity("driver", join_keys=["driver_id"])
    v = sk.FeatureView("stats", entities=[e], schema=[sk.Field("driver_id", sk.Int64), sk.Field("rate", sk.Float64)])
    plain = sk.FeatureService("svc", features=[v])
    assert "monitoring" not in plain.to_dict()  # a registry written before the field: its specs compare equal
    repo.apply([e, v, plain])
    assert repo.plan([e, v, sk.FeatureService("svc", features=[v])]).empty
    watched = sk.FeatureService("svc", features=[v], monitoring={"psi": 0.3, "features": {"stats:rate": {"ks": 0.2}}})
    (change,) = repo.plan([e, v, watched]).changes
    assert change.action == "update" and not change.breaking
    assert change.details == ["monitoring: None -> {'psi': 0.3, 'features': {'stats:rate': {'ks': 0.2}}}"]
    repo.apply([e, v, watched])
    got = repo.get_feature_service("svc")
    assert got.monitoring == {"psi": 0.3, "features": {"stats:rate": {"ks": 0.2}}} and got == watched
    assert repo.plan([e, v, watched]).empty
    with pytest.raises(DefinitionError, match=r"monitoring names features it does not list: \['stats:speed'\]"):
        sk.FeatureService("svc", features=[v], monitoring={"features": {"stats:speed": {"psi": 0.1}}})
    with pytest.raises(DefinitionError, match="feature service 'svc': unknown monitoring keys"):
        sk.FeatureService("svc", features=[v], monitoring={"kl": 0.1})


def test_booleans_against_a_true_false_frequent_sketch():
    """Booleans' write-time statistics are a frequent-items sketch of "true"/"false": served bools compare as such."""
    freq = frequent_strings_sketch(7)
    freq.update("true", 300)
    freq.update("false", 700)
    ref = FeatureStatistics("b", "Bool", count=1000, nulls=0, frequent=freq)
    same = drift.compare("v:b", ref, pa.array([True] * 30 + [False] * 70))
    assert same.kind == "categorical" and same.bins == ["false", "true", drift.OTHER]
    assert same.psi == pytest.approx(0.0, abs=1e-12)
    flipped = drift.compare("v:b", ref, pa.array([True] * 70 + [False] * 30))
    assert flipped.served_shares == pytest.approx([0.3, 0.7, 0.0])
    assert flipped.js == pytest.approx(jensenshannon([0.7, 0.3, 0], [0.3, 0.7, 0], base=2))

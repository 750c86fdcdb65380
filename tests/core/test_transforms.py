"""On-demand transforms (spec transformations.md section 2): definition, purity, registry versions, identical
outputs in historical and online retrieval, typed errors naming the transform and the row."""

from __future__ import annotations

import ast
import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skewless as sk
from skewless.definitions import FeatureViewProjection
from skewless.errors import DefinitionError, TransformError, ValidationError
from skewless.transforms.purity import ALLOWED_MODULES, SAFE_BUILTINS, normalise
from tests.support.odt_repo import T0, driver, make_repo, per_trip, ratios, stats

AT = T0 + timedelta(days=1)  # after every row of the history
REFS = ["stats:rate", "ratios:ratio", "ratios:big", "ratios:score", "per_trip:per_trip", "per_trip:hour"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = make_repo(tmp_path_factory.mktemp("odt") / "repo")
    s.materialize(T0, AT)
    return s


def entity(ids, amounts, at=AT):
    return pd.DataFrame({"driver_id": ids, "event_timestamp": [at] * len(ids), "amount": amounts})


# -- definition ---------------------------------------------------------------------------------------------------
def test_definition_holds_normalised_source_hash_and_a_sandboxed_function():
    assert ratios.name == "ratios" and ratios.output_names == ["ratio", "big", "score"]
    assert ratios.inputs == {"trips": "stats:trips", "rate": "stats:rate"}
    assert per_trip.inputs == {"n": "stats:trips", "rate": "stats:rate"} and per_trip.time == "at"
    assert ratios.source.startswith("def ratios(df):") and "on_demand" not in ratios.source
    assert len(ratios.hash) == 64 and ratios.hash != per_trip.hash
    # the function that runs is compiled from the stored source, in a namespace of the allowed libraries only
    assert set(ratios.function.__globals__) == {"__builtins__", "__name__", "ratios"} | set(ALLOWED_MODULES)
    assert set(ratios.function.__globals__["__builtins__"]) == set(SAFE_BUILTINS)
    # the hash is over the normalised source: comments and layout do not change it, code does
    a = normalise(ast.parse("def f(df):\n    # a comment\n    return   df\n").body[0])
    b = normalise(ast.parse("@deco(x=1)\ndef f(df: pd.DataFrame) -> pd.DataFrame:\n    return df\n").body[0])
    assert a == b == "def f(df):\n    return df"
    out = [sk.Field("y", sk.Float64)]
    t1 = sk.OnDemandTransform("t", source=a, inputs=["stats:rate"], outputs=out)
    t2 = sk.OnDemandTransform("t", source="def f(df):\n    return df * 1", inputs=["stats:rate"], outputs=out)
    t3 = sk.OnDemandTransform("t", source=a, inputs=["stats:rate"], outputs=[sk.Field("y", sk.Int64)])
    assert len({t1.hash, t2.hash, t3.hash}) == 3
    assert sk.OnDemandTransform.from_dict(json.loads(json.dumps(ratios.to_dict()))) == ratios


@pytest.mark.parametrize("make, match", [
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d", inputs=["v:a"], outputs=[]), "output"),
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d", outputs=[sk.Field("y", sk.Int64)],
                                  mode="polars"), "mode"),
    (lambda: sk.OnDemandTransform("t", source="def f(d, e):\n    return d", outputs=[sk.Field("y", sk.Int64)]),
     "exactly one parameter"),
    (lambda: sk.OnDemandTransform("t", source="def f(d=1):\n    return d", outputs=[sk.Field("y", sk.Int64)]),
     "exactly one parameter"),
    (lambda: sk.OnDemandTransform("t", source="x = 1", outputs=[sk.Field("y", sk.Int64)]), "exactly one `def`"),
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d", inputs=["rate"],
                                  outputs=[sk.Field("y", sk.Int64)]), "view:feature"),
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d", inputs=["a:x", "b:x"],
                                  outputs=[sk.Field("y", sk.Int64)]), "two inputs are named 'x'"),
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d", inputs=["a:x"],
                                  request=[sk.Field("x", sk.Int64)], outputs=[sk.Field("y", sk.Int64)]),
     "named twice"),
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d",
                                  outputs=[sk.Field("y", sk.Int64), sk.Field("y", sk.Float64)]), "duplicate outputs"),
    (lambda: sk.OnDemandTransform("t", source="def f(d):\n    return d", time="event_timestamp",
                                  outputs=[sk.Field("y", sk.Int64)]), "reserved"),
    (lambda: sk.on_demand(outputs=[sk.Field("y", sk.Int64)])(lambda d: d), "one plain `def`"),
])
def test_invalid_definitions_are_definition_errors(make, match):
    with pytest.raises(DefinitionError, match=match):
        make()


IMPURE = [
    ("import time\n    return time.time()", "imports"),
    ("return time.time()", "'time', which reads the clock"),
    ("return datetime.now()", "'datetime', which reads the clock"),
    ("return pd.Timestamp.now()", ".now"),
    ("return pd.Timestamp.utcnow()", ".utcnow"),
    ("return pd.Timestamp('now')", "'now'"),
    ("return np.datetime64('today')", "'today'"),
    ("return random.random()", "'random', which is not deterministic"),
    ("return np.random.rand(len(d))", ".random"),
    ("return os.environ['X']", "'os', which does I/O"),
    ("return sys.argv", "'sys', which does I/O"),
    ("return socket.gethostname()", "'socket'"),
    ("return open('/etc/passwd').read()", "'open', which does I/O"),
    ("return requests.get('http://x')", "'requests'"),
    ("return urllib.request.urlopen('http://x')", "'urllib'"),
    ("print(d)\n    return d", "'print'"),
    ("return pd.read_csv('x.csv')", ".read_csv"),
    ("d.to_csv('x.csv')\n    return d", ".to_csv"),
    ("return np.load('x.npy')", ".load"),
    ("pd.set_option('a', 1)\n    return d", ".set_option"),
    ("global COUNT\n    COUNT = 1\n    return d", "global statements"),
    ("x = 0\n    def g():\n        nonlocal x\n        x = 1\n    return d", "nonlocal"),
    ("return d * RATE", "'RATE', which is not defined in the function"),
    ("return helper(d)", "'helper'"),
    ("return d.__class__", ".__class__"),
    ("return eval('1')", "'eval', which escapes the sandbox"),
    ("return getattr(d, 'x')", "'getattr'"),
    ("np.pi = 3\n    return d", "assigns to an attribute of module 'np'"),
    ("def g(x=RATE):\n        return x\n    return d", "default arguments"),
    ("class A:\n        pass\n    return d", "class definitions"),
    ("yield d", "yield"),
]


@pytest.mark.parametrize("body, match", IMPURE)
def test_impure_code_is_refused_at_definition(body, match):
    with pytest.raises(DefinitionError, match="not pure") as info:
        sk.OnDemandTransform("t", source=f"def f(d):\n    {body}", outputs=[sk.Field("y", sk.Int64)])
    assert match in str(info.value)


def test_pure_code_with_locals_comprehensions_nested_functions_and_allowed_libraries_is_accepted():
    src = ("def f(d):\n    k = 2\n    def sq(x):\n        return x * x\n    ys = [sq(v) + k for v in range(3)]\n"
           "    return {'y': int(math.floor(np.sum(ys) + pd.isna(None)))}")
    t = sk.OnDemandTransform("t", source=src, outputs=[sk.Field("y", sk.Int64)], mode="row")
    assert t.function({}) == {"y": 12}


# -- registry -----------------------------------------------------------------------------------------------------
def test_registry_versions_code_changes_and_breaking_output_changes(tmp_path):
    s = make_repo(tmp_path / "r", service=False)
    assert s.get_transform("ratios") == ratios and s.list_transforms() == [per_trip, ratios]
    new_code = sk.OnDemandTransform("ratios", source=ratios.source.replace("> 100.0", "> 50.0"),
                                    inputs=ratios.inputs, request=ratios.request, outputs=ratios.outputs)
    p = s.plan([driver, stats, new_code, per_trip])
    [c] = p.changes
    assert (c.kind, c.name, c.action, c.breaking) == ("transform", "ratios", "update", [])
    assert "code changed" in str(p) and "hash" in str(p)
    s.apply([driver, stats, new_code, per_trip])
    hist = s.registry.history("transform", "ratios")
    assert [h.version for h in hist] == [1, 2] and hist[1].spec["hash"] == new_code.hash
    assert s.get_transform("ratios").hash == new_code.hash != ratios.hash
    added = sk.OnDemandTransform("ratios", source=new_code.source, inputs=ratios.inputs, request=ratios.request,
                                 outputs=ratios.outputs + [sk.Field("extra", sk.Int64)])
    assert not s.plan([driver, stats, added, per_trip]).breaking
    for outs, why in [(ratios.outputs[:2], "output score removed"),
                      (ratios.outputs[:2] + [sk.Field("score", sk.Float64)], "output score dtype Int64 -> Float64")]:
        changed = sk.OnDemandTransform("ratios", source=new_code.source, inputs=ratios.inputs,
                                       request=ratios.request, outputs=outs)
        p = s.plan([driver, stats, changed, per_trip])
        assert [b for c in p.breaking for b in c.breaking] == [why]
        with pytest.raises(DefinitionError, match="breaking"):
            s.apply([driver, stats, changed, per_trip])
    p = s.plan([driver, stats, new_code], prune=True)
    assert [(c.name, c.action, c.breaking) for c in p.changes] == [("per_trip", "delete", ["transform removed"])]


def test_registry_checks_inputs_names_and_service_references(tmp_path):
    s = sk.init_repo(tmp_path / "r")
    s.apply([driver, stats])
    bad_view = sk.OnDemandTransform("t", source="def f(d):\n    return d", inputs=["nope:x"],
                                    outputs=[sk.Field("y", sk.Int64)])
    with pytest.raises(DefinitionError, match="unknown feature view 'nope'"):
        s.apply(bad_view)
    bad_feat = sk.OnDemandTransform("t", source="def f(d):\n    return d", inputs=["stats:nope"],
                                    outputs=[sk.Field("y", sk.Int64)])
    with pytest.raises(DefinitionError, match="has no feature 'nope'"):
        s.apply(bad_feat)
    clash = sk.OnDemandTransform("stats", source="def f(d):\n    return d", outputs=[sk.Field("y", sk.Int64)])
    with pytest.raises(DefinitionError, match="has the name of a feature view"):
        s.apply(clash)
    s.apply(ratios)
    with pytest.raises(DefinitionError, match="unknown transform output 'ratios:nope'"):
        s.apply(sk.FeatureService("svc", [FeatureViewProjection("ratios", ["nope"])]))
    with pytest.raises(DefinitionError, match="has no outputs"):
        ratios[["nope"]]
    s.apply(sk.FeatureService("svc", [ratios[["ratio"]], stats[["rate"]]]))
    assert s.get_feature_service("svc").feature_refs == ["ratios:ratio", "stats:rate"]


def test_a_tampered_registry_copy_is_refused(tmp_path):
    s = make_repo(tmp_path / "r", service=False)
    doc = json.loads(s.registry.store.read(1))
    doc["objects"]["transform"]["ratios"]["spec"]["source"] += "\n    # edited"
    doc["objects"]["transform"]["ratios"]["spec"]["source"] = \
        doc["objects"]["transform"]["ratios"]["spec"]["source"].replace("100.0", "1.0")
    doc["version"] = 2
    s.registry.store.create(2, json.dumps(doc).encode())
    with pytest.raises(DefinitionError, match="does not match its source"):
        s.registry.state().get("transform", "ratios")


def test_aggregated_view_features_are_inputs_by_name(tmp_path):
    card = sk.Entity("card", join_keys=["card_id"], dtype=sk.Int64)
    agg = sk.AggregatedView("card_aggs", [card], [sk.Field("amount", sk.Float64)],
                            [sk.Aggregation("amount", "sum", timedelta(days=1))], hop=timedelta(hours=1))
    [out] = agg.feature_names
    t = sk.OnDemandTransform("share", source="def f(r):\n    return {'y': r['a']}", mode="row",
                             inputs={"a": f"card_aggs:{out}"}, outputs=[sk.Field("y", sk.Float64)])
    s = sk.init_repo(tmp_path / "r")
    s.apply([card, agg, t])
    assert s.get_transform("share").inputs == {"a": f"card_aggs:{out}"}
    stored = sk.OnDemandTransform("bad", source="def f(r):\n    return {'y': r['a']}", mode="row",
                                  inputs={"a": "card_aggs:amount"}, outputs=[sk.Field("y", sk.Float64)])
    with pytest.raises(DefinitionError, match="has no feature 'amount'"):  # an event column is not a feature
        s.apply(stored)


# -- retrieval ----------------------------------------------------------------------------------------------------
def test_historical_outputs_named_like_features_inputs_read_but_not_returned(store):
    df = store.get_historical_features(entity([1, 2, 99], [10.0, 200.0, 5.0]), REFS).to_pandas()
    assert list(df.columns) == ["driver_id", "event_timestamp", "amount", "rate", "ratio", "big", "score",
                                "per_trip", "hour"]  # trips is an input of both transforms, not requested
    hist = store.get_historical_features(entity([1, 2, 99], [10.0, 200.0, 5.0]), ["stats:trips", "stats:rate"])
    h = hist.to_pandas()
    trips, rate = h.trips.fillna(0).tolist(), h.rate.fillna(0.0).tolist()
    assert df.ratio.tolist() == [a / (n + 1) for a, n in zip([10.0, 200.0, 5.0], trips)]
    assert df.big.tolist() == [False, True, False]
    assert df.score.tolist() == [int(np.floor(r * 10)) for r in rate]
    assert df.hour.tolist() == [AT.hour] * 3
    full = store.get_historical_features(entity([1], [1.0]), "svc", full_feature_names=True).to_pandas()
    assert list(full.columns)[3:] == ["stats__trips", "stats__rate", "ratios__ratio", "ratios__big", "ratios__score",
                                      "per_trip__per_trip", "per_trip__hour"]


def test_streamed_results_equal_the_in_memory_one(store, tmp_path):
    ent = entity(list(range(25)), [float(i) for i in range(25)])
    job = store.get_historical_features(ent, REFS)
    whole = job.to_arrow()
    assert pa.Table.from_batches(list(job.to_reader(batch_rows=7))).equals(whole)
    path = job.to_parquet(tmp_path / "ts.parquet")
    assert pa.parquet.read_table(path).equals(whole)
    assert json.loads((tmp_path / "ts.parquet.snapshot.json").read_text()) == job.snapshot


def _online(store, ids, amounts, refs=REFS):
    rows = [{"driver_id": i, "amount": a} for i, a in zip(ids, amounts)]
    return store.get_online_features(refs, rows, now=AT)


def test_online_equals_historical_and_statuses_follow_the_inputs(store):
    ids, amounts = [1, 2, 99], [10.0, 200.0, 5.0]
    off = store.get_historical_features(entity(ids, amounts), REFS).to_pandas()
    on = _online(store, ids, amounts)
    for name in ["ratio", "big", "score", "per_trip", "hour"]:
        assert on.values[name] == off[name].tolist(), name
    assert on.statuses["ratio"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert on.event_timestamps["ratio"] == [None] * 3 and on.event_timestamps["rate"][0] is not None
    assert "trips" not in on.values


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.integers(0, 25), st.one_of(st.floats(0, 1e6, allow_nan=False),
                                                                  st.integers(0, 10**6), st.none())),
                     min_size=1, max_size=8))
def test_property_offline_and_online_give_identical_outputs(store, rows):
    ids = [i for i, _ in rows]
    amounts = [a for _, a in rows]
    ent = entity(ids, [np.nan if a is None else float(a) for a in amounts])
    try:
        off = store.get_historical_features(ent, REFS).to_pandas()
    except TransformError as exc:  # a null amount: per_trip raises, and must on both paths, on the same row
        with pytest.raises(TransformError) as on_err:
            _online(store, ids, amounts)
        assert (on_err.value.transform, on_err.value.row, str(on_err.value)) == (exc.transform, exc.row, str(exc))
        return
    on = _online(store, ids, amounts)
    for name in ["ratio", "big", "score", "per_trip", "hour"]:
        want = [None if v != v else v for v in off[name].astype(object).tolist()]
        got = [None if v is None or v != v else v for v in on.values[name]]
        assert got == want, name


@sk.on_demand(inputs=["stats:trips", "stats:city"], outputs=[sk.Field("dtype", sk.String)])
def dtypes_seen(df):
    return pd.DataFrame({"dtype": [str(df["trips"].dtype) + "/" + str(df["city"].dtype)] * len(df)})


def test_a_pandas_transform_sees_the_same_column_dtypes_whatever_else_is_in_its_batch(tmp_path):
    """An integer column holding a null is not float64 in one batch and int64 in another: its inputs are typed
    alike on every path, one row or many."""
    s = make_repo(tmp_path / "r", service=False)
    s.apply(dtypes_seen)
    s.materialize(T0, AT)
    with_null = s.get_historical_features(entity([1, 99], [0.0, 0.0]), ["dtypes_seen:dtype"]).to_pandas()
    alone = s.get_online_features(["dtypes_seen:dtype"], [{"driver_id": 1}], now=AT).values["dtype"]
    assert with_null.dtype.tolist() == alone * 2 and alone[0].startswith("Int64/")


@sk.on_demand(inputs=["stats:trips", "stats:rate"], request=[sk.Field("amount", sk.Float64)],
              outputs=[sk.Field("ratio", sk.Float64), sk.Field("big", sk.Bool), sk.Field("score", sk.Int64)],
              mode="arrow")
def ratios_arrow(batch):
    amount = batch.column("amount")
    if pc.any(pc.less(amount, 0)).as_py():
        raise ValueError("negative amount")
    trips = pc.fill_null(batch.column("trips"), 0)
    rate = pc.fill_null(batch.column("rate"), 0.0)
    return {"ratio": pc.divide(amount, pc.add(pc.cast(trips, pa.float64()), 1.0)),
            "big": pc.greater(amount, 100.0), "score": pc.cast(pc.floor(pc.multiply(rate, 10.0)), pa.int64())}


@sk.on_demand(inputs=["stats:rate"], outputs=[sk.Field("y", sk.Int64)], mode="arrow")
def arrow_bool_for_int(batch):
    return {"y": pc.greater(pc.fill_null(batch.column("rate"), 0.0), 0.5)}


def test_an_arrow_transform_equals_the_pandas_one_on_both_paths_and_names_bad_rows(tmp_path):
    s = make_repo(tmp_path / "r", service=False)
    s.apply([ratios_arrow, arrow_bool_for_int])
    s.materialize(T0, AT)
    ids, amounts = [1, 2, 99, 5], [10.0, 200.0, 5.0, 0.0]
    refs = [f"{t}:{o}" for t in ("ratios", "ratios_arrow") for o in ("ratio", "big", "score")]
    off = s.get_historical_features(entity(ids, amounts), refs, full_feature_names=True).to_pandas()
    on = s.get_online_features(refs, [{"driver_id": i, "amount": a} for i, a in zip(ids, amounts)], now=AT,
                               full_feature_names=True)
    for o in ("ratio", "big", "score"):
        want = [None if v is None or v != v else v for v in off[f"ratios__{o}"].astype(object)]
        assert [None if v is None or v != v else v for v in off[f"ratios_arrow__{o}"].astype(object)] == want
        assert [None if v is None or v != v else v for v in on.values[f"ratios_arrow__{o}"]] == want
    with pytest.raises(TransformError, match=r"transform 'ratios_arrow', row 2: raised ValueError"):
        _online(s, [1, 2, 3], [1.0, 1.0, -1.0], ["ratios_arrow:ratio"])
    with pytest.raises(TransformError, match=r"transform 'arrow_bool_for_int', row 0: output 'y'=(True|False) is "
                                             r"not a valid Int64 \(a boolean\)"):
        s.get_historical_features(entity([1, 2], [1.0, 1.0]), ["arrow_bool_for_int:y"]).to_arrow()


# -- typed errors -------------------------------------------------------------------------------------------------
@sk.on_demand(inputs=["stats:rate"], outputs=[sk.Field("y", sk.Float64)], mode="row")
def wrong_type(row):
    return {"y": "high" if (row["rate"] or 0) > 0.5 else 1.0}


@sk.on_demand(inputs=["stats:rate"], outputs=[sk.Field("y", sk.Int64)])
def fractional(df):
    out = pd.DataFrame()
    out["y"] = df["rate"].fillna(0.0) * 0 + np.where(df.index == 2, 0.5, 1.0)
    return out


@sk.on_demand(inputs=["stats:rate"], outputs=[sk.Field("y", sk.Float64)])
def too_short(df):
    return pd.DataFrame({"y": df["rate"].iloc[:1]})


@sk.on_demand(inputs=["stats:rate"], outputs=[sk.Field("y", sk.Float64)], mode="row")
def missing_output(row):
    return {"z": 1.0}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    s = make_repo(tmp_path_factory.mktemp("broken") / "repo", service=False)
    s.apply([wrong_type, fractional, too_short, missing_output])
    s.materialize(T0, AT)
    return s


def _both(s, refs, ids, amounts):
    """The error of the historical path and of the online path."""
    errs = []
    with pytest.raises(sk.SkewlessError) as off:
        s.get_historical_features(entity(ids, amounts), refs).to_arrow()
    errs.append(off.value)
    with pytest.raises(sk.SkewlessError) as on:
        _online(s, ids, amounts, refs)
    errs.append(on.value)
    return errs


def _rate_above_half(s, ids):
    rates = s.get_historical_features(entity(ids, [0.0] * len(ids)), ["stats:rate"]).to_pandas().rate
    return [i for i, r in enumerate(rates) if r > 0.5]


@pytest.mark.parametrize("ref, expect", [
    ("ratios:ratio", "raised ValueError: negative amount"),
    ("wrong_type:y", "output 'y'='high' is not a valid Float64"),
    ("missing_output:y", "returned no ['y']; undeclared ['z']"),
])
def test_failures_are_transform_errors_naming_the_transform_and_row_on_both_paths(broken, ref, expect):
    ids = [0, 1, 2, 3, 4, 5]
    amounts = [1.0, 2.0, 3.0, -4.0, 5.0, 6.0]
    row = 3 if ref == "ratios:ratio" else (_rate_above_half(broken, ids) or [0])[0]
    if ref == "missing_output:y":
        row = 0
    for err in _both(broken, [ref], ids, amounts):
        assert isinstance(err, TransformError), err
        assert err.transform == ref.split(":")[0] and err.row == row
        assert f"transform {ref.split(':')[0]!r}, row {row}" in str(err) and expect in str(err)


def test_wrong_shape_and_non_integral_outputs_name_the_transform(broken):
    errs = _both(broken, ["too_short:y"], [0, 1, 2], [1.0, 1.0, 1.0])
    assert all(isinstance(e, TransformError) and "returned 1 rows for 3" in str(e) for e in errs)
    errs = _both(broken, ["fractional:y"], [0, 1, 2, 3], [1.0] * 4)
    assert all(isinstance(e, TransformError) and e.row == 2 and "0.5 is not a valid Int64" in str(e) for e in errs)


def test_a_missing_or_invalid_request_field_is_a_validation_error_naming_transform_and_row(store):
    with pytest.raises(ValidationError, match=r"transform 'ratios', row 0: request field 'amount' is not a column"):
        store.get_historical_features(entity([1], [1.0]).drop(columns="amount"), ["ratios:ratio"]).to_arrow()
    with pytest.raises(ValidationError, match=r"transform 'ratios', row 1: request field 'amount' is missing"):
        store.get_online_features(["ratios:ratio"], [{"driver_id": 1, "amount": 1.0}, {"driver_id": 2}], now=AT)
    with pytest.raises(ValidationError, match=r"transform 'ratios', row 0: request field amount='x' is not a valid"):
        store.get_online_features(["ratios:ratio"], [{"driver_id": 1, "amount": "x"}], now=AT)
    with pytest.raises(ValidationError, match=r"transform 'ratios', row 0: request field amount='x'"):
        store.get_historical_features(entity([1, 2], ["x", "y"]), ["ratios:ratio"]).to_arrow()


def test_duplicate_output_names_need_full_feature_names(tmp_path):
    s = make_repo(tmp_path / "r", service=False)
    same = sk.OnDemandTransform("again", source="def f(r):\n    return {'ratio': 1.0}", mode="row",
                                outputs=[sk.Field("ratio", sk.Float64)])
    s.apply(same)
    with pytest.raises(ValidationError, match="appear twice"):
        s.get_online_features(["ratios:ratio", "again:ratio"], [{"driver_id": 1, "amount": 1.0}], now=AT)
    with pytest.raises(ValidationError, match="appear twice"):
        s.get_historical_features(entity([1], [1.0]), ["ratios:ratio", "again:ratio"])
    r = s.get_online_features(["ratios:ratio", "again:ratio"], [{"driver_id": 1, "amount": 1.0}], now=AT,
                              full_feature_names=True)
    assert r.values["again__ratio"] == [1.0]


# -- repo files and the CLI ---------------------------------------------------------------------------------------
REPO_FILE = '''
import skewless as sk

driver = sk.Entity("driver", join_keys=["driver_id"], dtype=sk.Int64)
stats = sk.FeatureView("stats", entities=[driver], schema=[sk.Field("rate", sk.Float64)])


@sk.on_demand(inputs=["stats:rate"], outputs=[sk.Field("pct", sk.Float64)], mode="row")
def pct(row):
    # a comment: not part of the stored source
    return {"pct": (row["rate"] or 0.0) * 100}
'''


def test_repo_files_declare_transforms_and_the_cli_plans_lists_and_describes_them(tmp_path):
    from typer.testing import CliRunner

    from skewless.cli.main import app

    def invoke(*args):
        return CliRunner(env={"COLUMNS": "250"}).invoke(app, [str(a) for a in args], catch_exceptions=False)
    repo = tmp_path / "repo"
    assert invoke("init", repo).exit_code == 0
    for p in repo.glob("*.py"):
        p.unlink()  # the scaffold's example definitions: this test's repo declares its own
    (repo / "defs.py").write_text(REPO_FILE)
    r = invoke("plan", "--repo", repo)
    assert r.exit_code == 0 and "+ transform pct" in r.stdout, r.stdout
    assert invoke("apply", "--repo", repo).exit_code == 0
    r = invoke("list", "transforms", "--repo", repo, "--json")
    assert json.loads(r.stdout) == [{"kind": "transform", "name": "pct", "owner": "", "tags": {}, "description": ""}]
    r = invoke("describe", "pct", "--repo", repo, "--json")
    spec = json.loads(r.stdout)["spec"]
    assert spec["source"] == "def pct(row):\n    return {'pct': (row['rate'] or 0.0) * 100}"
    (repo / "defs.py").write_text(REPO_FILE.replace("# a comment: not part of the stored source\n    ", ""))
    assert "No changes" in invoke("plan", "--repo", repo).stdout  # comments are not code
    (repo / "defs.py").write_text(REPO_FILE.replace("* 100", "* 100 + time.time() * 0"))
    r = invoke("plan", "--repo", repo)
    assert r.exit_code == 1 and "transform 'pct' is not pure" in r.output and "'time', which reads the clock" \
        in r.output

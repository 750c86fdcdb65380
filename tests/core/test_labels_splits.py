"""Label views and training-set splits (docs/concepts/labels-and-splits.md) on the embedded engine: declarations and
their typed errors, labels kept out of model inputs, labels beside transforms, the split's hash against an
independent oracle (with property tests of its stability and disjointness), and the registered training set
recording labels and split. The per-engine cases (labels point in time, splits equal on every engine) are in
``tests/support/conformance/offline_labels.py``."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.errors import DefinitionError, ValidationError
from skewless.lineage import graph
from tests.support import split_oracle
from tests.support.conformance.offline_labels import LABELS, define_labelled
from tests.support.odt_repo import make_repo

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
THIRDS = {"train": 0.6, "validation": 0.2, "test": 0.2}


def H(h: float) -> datetime:
    return T0 + timedelta(hours=h)


@pytest.fixture
def store(repo):
    define_labelled(repo)
    repo.ingest("v", pd.DataFrame({"k": range(1, 7), "event_timestamp": [H(0)] * 6, "x": [float(k) for k in
                                                                                          range(1, 7)]}))
    repo.ingest("outcome", pd.DataFrame(LABELS, columns=["k", "event_timestamp", "created_timestamp", "defaulted",
                                                         "loss"]))
    return repo


def _ents(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({"k": [i % 7 + 1 for i in range(n)], "event_timestamp": [H(i) for i in range(n)]})


# -- label views: declaration ---------------------------------------------------------------------------------------

def test_label_view_round_trips_through_the_registry_as_a_label_view(store):
    got = store.get_feature_view("outcome")
    assert isinstance(got, sk.LabelView) and got.is_label and got.label_names == ["defaulted", "loss"]
    assert not got.online  # labels are not served unless asked
    assert not store.get_feature_view("v").is_label
    assert sk.FeatureStore(store.config.repo_path).get_feature_view("outcome") == got  # a fresh process reads it


def test_a_label_views_source_must_name_when_labels_became_known():
    ent = sk.Entity("ent", join_keys=["k"])
    schema = [sk.Field("k", sk.Int64), sk.Field("y", sk.Int64)]
    with pytest.raises(DefinitionError, match="created_timestamp_column"):
        sk.LabelView("y", [ent], schema, source=sk.ParquetSource("labels.parquet"))
    ok = sk.LabelView("y", [ent], schema, source=sk.ParquetSource("labels.parquet", created_timestamp_column="known"))
    assert ok.source.created_timestamp_column == "known"


def test_labels_are_never_model_inputs(store):
    outcome = store.get_feature_view("outcome")
    ents = _ents(3)
    with pytest.raises(DefinitionError, match="label view"):
        store.get_historical_features(ents, ["v:x", "outcome:defaulted"])
    with pytest.raises(DefinitionError, match="label views"):
        store.get_historical_features(ents, ["v:x"], labels=["v:x"])
    with pytest.raises(DefinitionError, match="no labels"):
        store.get_historical_features(ents, ["v:x"], labels=["outcome:nope"])
    with pytest.raises(DefinitionError, match="label view"):
        store.get_online_features(["outcome:defaulted"], [{"k": 1}])
    with pytest.raises(DefinitionError, match="label view"):
        sk.FeatureService("svc", [outcome])
    with pytest.raises(DefinitionError, match="label view"):
        sk.FeatureService("svc", [outcome[["loss"]]])
    svc = sk.FeatureService.from_dict({"name": "svc", "features": ["outcome:loss"]})  # as a repo file's registry spec
    with pytest.raises(DefinitionError, match="label view 'outcome'"):
        store.apply([svc])

    @sk.on_demand(inputs=["outcome:loss"], outputs=[sk.Field("y", sk.Float64)])
    def leaky(df):
        return pd.DataFrame({"y": df["loss"]})
    with pytest.raises(DefinitionError, match="reads label view"):
        store.apply([leaky])


def test_labels_beside_transforms_come_last_under_their_names(tmp_path):
    store = make_repo(tmp_path / "repo")
    label = sk.LabelView("churn", entities=["driver"], schema=[sk.Field("churned", sk.Bool)])
    store.apply([label])
    start = pd.Timestamp(datetime(2026, 1, 1, tzinfo=UTC))
    store.ingest("churn", pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [start] * 2,
                                        "created_timestamp": [start + pd.Timedelta(days=3)] * 2,
                                        "churned": [True, False]}))
    ent = pd.DataFrame({"driver_id": [1, 2, 1], "amount": [5.0, 10.0, 1.0],
                        "event_timestamp": [start + pd.Timedelta(days=d) for d in (1, 1, 4)]})
    got = store.get_historical_features(ent, ["stats:trips", "ratios:ratio"], labels=["churn:churned"]).to_pandas()
    assert list(got.columns) == ["driver_id", "amount", "event_timestamp", "trips", "ratio", "churned"]
    assert got["churned"].tolist() == [True, False, True]
    avail = store.get_historical_features(ent, ["stats:trips", "ratios:ratio"], labels=["churn:churned"],
                                          point_in_time="available", full_feature_names=True).to_pandas()
    assert list(avail.columns)[-3:] == ["stats__trips", "ratios__ratio", "churn__churned"]
    assert [None if pd.isna(v) else v for v in avail["churn__churned"]] == [None, None, True]  # known on day 3
    clash = ent.assign(churned=0)
    with pytest.raises(ValidationError, match="churned"):
        store.get_historical_features(clash, ["ratios:ratio"], labels=["churn:churned"]).to_pandas()


# -- split declarations ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    ({"entity": {"train": 0.8, "test": 0.3}}, "sum to 1.1"),
    ({"entity": {"train": 0.5, "validation": 0.2, "test": 0.2}}, "sum to 0.9"),
    ({"entity": {"train": 1.0, "test": 0.0}}, "between 0 and 1"),
    ({"entity": {"train": 0.5, "holdout": 0.5}}, "unknown entity split names"),
    ({"entity": {"train": 1.0}}, "needs 'train' and at least one"),
    ({"entity": {"train": "0.5", "test": 0.5}}, "must be a number"),
    ({"time": {"validation": "2024-03-01", "test": "2024-02-01"}}, "must be before the test cut-off"),
    ({"time": {"validation": "2024-03-01", "test": "2024-03-01"}}, "overlap or be empty"),
    ({"time": {"validation": "2024-03-01"}}, "needs a 'test' cut-off"),
    ({"time": {"train": "2024-03-01", "test": "2024-04-01"}}, "unknown time split names"),
    ({"time": {"test": "not a time"}}, "cannot parse"),
    ({"time": {"test": "2024-04-01"}, "entity": {"train": 0.8, "validation": 0.1, "test": 0.1}}, "same splits"),
    ({"time": {"test": "2024-04-01"}, "keys": ["k"]}, "no entity fractions"),
    ({"entity": {"train": 0.5, "test": 0.5}, "keys": "k"}, "keys must be a non-empty list"),
    ({}, "declare time cut-offs"),
])
def test_bad_split_declarations_are_definition_errors(kw, match):
    with pytest.raises(DefinitionError, match=match):
        sk.Split(**kw)


def test_split_given_as_its_dict_form_and_bad_dicts(store):
    got = store.get_historical_features(_ents(), ["v:x"], split={"time": {"test": "2024-01-02"}}).to_pandas()
    assert set(got["split"]) == {"train", "test"}
    with pytest.raises(DefinitionError, match="unknown fields"):
        store.get_historical_features(_ents(), ["v:x"], split={"time": {"test": "2024-01-02"}, "tset": 1})
    with pytest.raises(DefinitionError, match="must be a skewless.Split"):
        store.get_historical_features(_ents(), ["v:x"], split=0.2)
    with pytest.raises(ValidationError, match="collides"):
        store.get_historical_features(_ents().assign(split=1), ["v:x"], split=sk.Split(time={"test": H(3)})).to_arrow()


# -- the split's hash: the documented rule, computed independently ---------------------------------------------------

def test_entity_hash_is_the_documented_sha256_of_the_canonical_key_text():
    split = sk.Split(entity={"train": 0.5, "test": 0.5}, keys=["a", "b"], seed="v1")
    table = pa.table({"a": pa.array([1, None, 12], pa.int64()), "b": pa.array(["x", "y:z", None])})
    texts = ["1:11:x", "~3:y:z", "2:12~"]  # length-prefixed values, null as ~
    want = [("train" if int.from_bytes(hashlib.sha256(b"v1\n" + t.encode()).digest()[:8], "big") < 2 ** 63
             else "test") for t in texts]
    assert split.assign(table).to_pylist() == want
    one = sk.Split(entity={"train": 0.5, "test": 0.5}, keys=["a"], seed="v1")
    ids = pa.array([1, None, 12, 1, None], pa.int64())
    want = [split_oracle.entity_split((v,), one.entity, "v1") for v in ids.to_pylist()]
    for arr in (ids, ids.dictionary_encode(), ids.dictionary_encode(null_encoding="encode")):
        assert one.assign(pa.table({"a": arr})).to_pylist() == want


keys_st = st.one_of(st.integers(-2 ** 62, 2 ** 62), st.text(max_size=6), st.none())


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2000), keys_st, st.integers(-5, 5)), min_size=1, max_size=60),
       cut=st.integers(0, 1000), seed=st.text(max_size=4), data=st.data())
def test_split_matches_the_oracle_and_is_stable_and_disjoint(rows, cut, seed, data):
    times = [H(t) for t, _, _ in rows]
    a = [k for _, k, _ in rows]
    b = [n for _, _, n in rows]
    table = pa.table({"event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")), "a": pa.array(
        [None if k is None else str(k) for k in a], pa.string()), "b": pa.array(b, pa.int64())})
    time = {"validation": H(cut), "test": H(cut + 500)}
    for kind in ("time", "entity", "both"):
        split = sk.Split(time=time if kind != "entity" else None, entity=THIRDS if kind != "time" else None,
                         keys=["a", "b"] if kind != "time" else None, seed=seed)
        got = split.assign(table).to_pylist()
        want = [split_oracle.split(t, (None if k is None else str(k), n), time=split.time, entity=split.entity,
                                   seed=seed) for t, k, n in zip(times, a, b)]
        assert got == want
        # each row in exactly one split (or none only when time and entity disagree)
        assert all(s in THIRDS or (s is None and kind == "both") for s in got)
        # stable: a row's split is its own, whatever other rows come with it and in what order
        pick = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=len(rows)))
        assert split.assign(table.take(pick)).to_pylist() == [got[i] for i in pick]
        if kind != "time":  # all rows of an entity share its entity split
            by_entity = sk.Split(entity=THIRDS, keys=["a", "b"], seed=seed).assign(table).to_pylist()
            seen: dict = {}
            assert all(seen.setdefault((k, n), s) == s for k, n, s in zip(a, b, by_entity))


def test_integer_ids_split_alike_whatever_their_arrow_type():
    split = sk.Split(entity=THIRDS, keys=["k"])
    ids = list(range(-50, 500))
    ref = split.assign(pa.table({"k": pa.array(ids, pa.int64())})).to_pylist()
    for arr in (pa.array(ids, pa.int32()), pa.array([float(i) for i in ids], pa.float64()),
                pa.array(ids, pa.int64()).dictionary_encode()):
        assert split.assign(pa.table({"k": arr}), {"k": pa.int64()}).to_pylist() == ref
    assert split.assign(pa.table({"k": pa.array([str(i) for i in ids])})).to_pylist() == ref  # same text


def test_entity_fractions_are_met_over_many_entities():
    n = 30_000
    got = pd.Series(sk.Split(entity=THIRDS, keys=["k"]).assign(pa.table({"k": np.arange(n)})).to_pylist())
    share = got.value_counts() / n
    for name, f in THIRDS.items():
        assert abs(share[name] - f) < 0.015, share.to_dict()


def test_time_cut_offs_are_the_first_instant_of_their_split():
    split = sk.Split(time={"validation": H(10), "test": H(20)})
    us = timedelta(microseconds=1)
    ts = [H(10) - us, H(10), H(20) - us, H(20), None]
    got = split.assign(pa.table({"event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC"))})).to_pylist()
    assert got == ["train", "validation", "validation", "test", None]
    naive = pa.array([t.replace(tzinfo=None) for t in ts[:4]], pa.timestamp("ns"))  # naive = UTC, ns floored
    assert split.assign(pa.table({"event_timestamp": naive})).to_pylist() == got[:4]


# -- the registered training set records labels and split -----------------------------------------------------------

def test_registered_training_set_records_labels_and_split(store, tmp_path):
    ents = _ents(40)
    split = sk.Split(time={"test": H(30)}, entity={"train": 0.5, "test": 0.5}, seed="a")
    job = store.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted"], split=split)
    result = job.to_pandas()
    ts = job.register("loans")
    got = store.get_training_set("loans")
    assert got == ts and got.labels == ["outcome:defaulted"] and got.features == ["v:x"]
    assert got.snapshot == {"v": store.offline.version("v"), "outcome": store.offline.version("outcome")}
    assert got.split == {"column": "split", "time": {"test": H(30).isoformat()}, "entity": {"train": 0.5, "test": 0.5},
                         "keys": ["k"], "seed": "a", "hash": "sha256-len-prefixed-v1",
                         "timestamp_column": "event_timestamp"}
    counts = result["split"].fillna("none").value_counts().to_dict()
    assert {k: v["rows"] for k, v in got.split_rows.items()} == counts and sum(counts.values()) == 40
    test_rows = result[result["split"] == "test"]
    assert got.split_rows["test"]["first"] == test_rows["event_timestamp"].min().isoformat()
    assert got.split_rows["test"]["last"] == test_rows["event_timestamp"].max().isoformat()
    # the recorded rule tells which split any rows fall in (what a leakage guard asks of a stage's fit rows)
    assert got.split_of(pa.Table.from_pandas(ents)).to_pylist() == [None if pd.isna(s) else s for s in result["split"]]
    # the same request again: the same record (no new version); another split: refused unless a new version
    version = store.registry.state().version
    store.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted"], split=split).register("loans")
    assert store.registry.state().version == version
    other = store.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted"],
                                          split=sk.Split(time={"test": H(31)}))
    with pytest.raises(DefinitionError, match="split"):
        other.register("loans")
    assert other.register("loans", new_version=True) and other.registered == ("loans", 2)
    # the same rows from a Parquet file: counted while streaming the file
    path = tmp_path / "ents.parquet"
    ents.to_parquet(path)
    from_file = store.get_historical_features(str(path), ["v:x"], split=split).register("from_file")
    assert from_file.split_rows == got.split_rows
    plain = store.get_historical_features(ents, ["v:x"]).register("plain")
    assert "split" not in plain.to_dict() and "labels" not in plain.to_dict()  # older records compare equal
    edges = {(e.source, e.target, e.relation) for e in graph(store).edges}
    assert ("feature/outcome:defaulted", "training_set/loans", "labels") in edges


def test_cli_shows_labels_and_split_and_builds_them(store, tmp_path):
    ents = _ents(20)
    store.get_historical_features(ents, ["v:x"], labels=["outcome:loss"],
                                  split=sk.Split(time={"test": H(10)})).register("loans")
    runner = CliRunner()
    repo = str(store.config.repo_path)
    out = runner.invoke(app, ["training-sets", "--repo", repo, "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert row["labels"] == ["outcome:loss"] and row["split"] == {"train": 10, "test": 10}
    out = runner.invoke(app, ["training-sets", "--repo", repo], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "train=10 test=10" in out.output and "outcome:loss" in out.output, out.output
    out = runner.invoke(app, ["training-sets", "loans", "--repo", repo, "--json"])
    assert json.loads(out.stdout)["split_rows"]["test"]["rows"] == 10
    ents.to_parquet(tmp_path / "e.parquet")
    out = runner.invoke(app, ["get-historical", "--entities", str(tmp_path / "e.parquet"), "--features", "v:x",
                              "--labels", "outcome:loss", "--split", '{"time": {"test": "2024-01-01T10:00:00"}}',
                              "--repo", repo, "--json"])
    assert out.exit_code == 0, out.output
    head = json.loads(out.stdout)["head"]
    assert [r["split"] for r in head] == ["train"] * 10 + ["test"] * 10 and "loss" in head[0]
    out = runner.invoke(app, ["get-historical", "--entities", str(tmp_path / "e.parquet"), "--features", "v:x",
                              "--split", '{"entity": {"train": 0.9}}', "--repo", repo])
    assert out.exit_code == 1 and "DefinitionError" in out.output


def test_labels_need_read_offline_on_their_label_view(store):
    """A label view is a history like any other: a principal allowed the features but not the labels is denied,
    before anything is read, and the denial is audited."""
    from skewless.errors import PermissionDenied

    store.apply([store.get_entity("ent"), store.get_feature_view("v"), store.get_feature_view("outcome"),
                 sk.Principal("trainer"), sk.Principal("admin"),
                 sk.Role("analyst", ["read_offline"]), sk.Role("owner", ["apply", "read_offline"]),
                 sk.Grant("features_only", role="analyst", principals=["trainer"], resources=["view:v"]),
                 sk.Grant("admins", role="owner", principals=["admin"])])
    as_trainer = sk.FeatureStore(store.repo_path, principal="trainer")
    assert len(as_trainer.get_historical_features(_ents(5), ["v:x"]).to_pandas()) == 5
    with pytest.raises(PermissionDenied, match="read_offline on view:outcome"):
        as_trainer.get_historical_features(_ents(5), ["v:x"], labels=["outcome:defaulted"])
    got = sk.FeatureStore(store.repo_path, principal="admin").get_historical_features(
        _ents(5), ["v:x"], labels=["outcome:defaulted"]).to_pandas()
    assert "defaulted" in got.columns
    denied = [r for r in store.audit_log.records(outcome="denied")]
    assert [(r.principal, r.resource) for r in denied] == [("trainer", "view:outcome")]

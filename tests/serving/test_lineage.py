"""Lineage end to end on real parts: the on-demand-transform repo plus an aggregated view read from a Parquet
source -> a registered training set -> a model version in the model registry -> a local endpoint (a real model
server process). Queried both ways, per feature, from the SDK and `skewless lineage`; a model packaged before
training sets were registered still reads; unknown and ambiguous names are typed errors."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import skewless as sk
from skewless import lineage
from skewless.cli.main import app
from skewless.errors import NotFoundError, ValidationError
from skewless.serving import ModelRegistry, package_model
from skewless.serving.deploy import get_target
from tests.support.odt_repo import T0, driver, make_repo

INPUTS = ["trips", "rate", "ratio", "per_trip"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("lineage")
    store = make_repo(root / "repo")
    sums = sk.AggregatedView("trip_sums", [driver], [sk.Field("trips", sk.Int64)],
                             [sk.Aggregation("trips", "sum", timedelta(days=1), "trips_1d")], hop=timedelta(hours=1),
                             source=sk.ParquetSource("data/trips.parquet", timestamp_field="event_timestamp"))
    store.apply([sums])
    rng = np.random.default_rng(1)
    ent = pd.DataFrame({"driver_id": np.arange(20).repeat(3), "amount": rng.uniform(0, 200, 60).round(2),
                        "event_timestamp": pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 48, 60), unit="h")})
    job = store.get_historical_features(ent, "svc")
    job.register("drivers_jan")
    train = job.to_pandas()
    model = LogisticRegression(max_iter=200).fit(train[INPUTS].astype(float).fillna(0.0), (train.amount > 100).astype(int))
    reg = ModelRegistry(store)
    v1 = reg.register(package_model(model, name="odt", store=store, feature_service="svc", training_set=job))
    # version 2: packaged from a bare snapshot (as every artifact before registered training sets was)
    v2 = reg.register(package_model(model, name="odt", store=store, feature_service="svc", snapshot=job.snapshot))
    target = get_target("local", store, state_dir=root / "deploy")
    target.deploy("odt", v1.version, "drivers")
    yield {"store": store, "target": target, "v1": v1, "v2": v2, "root": root}
    for ep in target.endpoints():
        target.delete(ep.name)


def _graph(chain) -> lineage.Graph:
    return lineage.graph(chain["store"], models=ModelRegistry(chain["store"]).records(),
                         endpoints=chain["target"].endpoints())


def test_model_version_points_at_the_registered_training_set(chain):
    assert chain["v1"].manifest.training["training_set"] == {"name": "drivers_jan", "version": 1}
    assert chain["v2"].manifest.training["training_set"] is None
    # a registered training set can be given by name; an unknown name is a typed error
    store = chain["store"]
    with pytest.raises(NotFoundError, match="training set 'nope'"):
        package_model(None, name="odt", store=store, feature_service="svc", training_set="nope", flavor="sklearn")


def test_downstream_of_a_view_reaches_the_endpoint_through_transform_service_training_set_and_model(chain):
    g = _graph(chain)
    paths = g.paths("feature_view/stats", "endpoint/drivers")
    assert ["feature_view/stats", "feature/stats:trips", "transform/ratios", "feature/ratios:ratio",
            "feature_service/svc", "training_set/drivers_jan", "model/odt@1", "endpoint/drivers"] in paths
    down = g.downstream("stats")
    assert {n.id for n in down.of_kind("endpoint")} == {"endpoint/drivers"}
    assert {n.id for n in down.of_kind("model")} == {"model/odt@1", "model/odt@2"}
    assert not down.of_kind("aggregated_view") and not down.of_kind("source")


def test_upstream_of_the_endpoint_reaches_views_and_not_unrelated_ones(chain):
    up = _graph(chain).upstream("endpoint/drivers")
    ids = set(up.nodes)
    assert {"model/odt@1", "training_set/drivers_jan", "feature_service/svc", "transform/per_trip",
            "feature/stats:rate", "feature_view/stats"} <= ids
    assert "model/odt@2" not in ids and "aggregated_view/trip_sums" not in ids  # v2 is not deployed


def test_feature_level_which_endpoints_serve_models_reading_a_feature(chain):
    g = _graph(chain)
    assert [n.id for n in g.downstream("stats:rate").of_kind("endpoint")] == ["endpoint/drivers"]
    # the transform output is read by both model versions; only v1 is behind an endpoint
    d = g.downstream("per_trip:per_trip")
    assert [n.id for n in d.of_kind("model")] == ["model/odt@1", "model/odt@2"]
    # the aggregated view's feature is in no service: nothing downstream of it but itself
    assert set(g.downstream("trip_sums:trips_1d").nodes) == {"feature/trip_sums:trips_1d"}
    assert set(g.upstream("trip_sums:trips_1d").nodes) == {"feature/trip_sums:trips_1d",
                                                          "aggregated_view/trip_sums", "source/data/trips.parquet"}


def test_unknown_and_ambiguous_names_are_typed_errors(chain):
    g = _graph(chain)
    with pytest.raises(NotFoundError, match="nope"):
        g.upstream("nope")
    g.add(lineage.Node("feature_service", "stats"))  # now two kinds are named "stats"
    with pytest.raises(ValidationError, match="several"):
        g.downstream("stats")


def test_graph_is_json_with_nodes_and_edges(chain):
    doc = json.loads(json.dumps(_graph(chain).to_dict()))
    ids = {n["id"] for n in doc["nodes"]}
    assert {"kind", "name", "version", "attrs"} <= set(doc["nodes"][0])
    assert all(e["source"] in ids and e["target"] in ids for e in doc["edges"])
    deployed = [e for e in doc["edges"] if e["relation"] == "deployed"]
    assert deployed == [{"source": "model/odt@1", "target": "endpoint/drivers", "relation": "deployed",
                         "attrs": {"variant": "v1", "weight": 1.0}}]


def test_cli_lineage(chain):
    runner = CliRunner()
    base = ["--repo", str(chain["store"].config.repo_path), "-o", f"state_dir={chain['root'] / 'deploy'}"]
    out = runner.invoke(app, ["lineage", "stats:rate", "--downstream", "--json", *base])
    assert out.exit_code == 0, out.output
    assert "endpoint/drivers" in {n["id"] for n in json.loads(out.stdout)["nodes"]}
    out = runner.invoke(app, ["lineage", "endpoint/drivers", "--upstream", *base])
    assert out.exit_code == 0 and "feature_view/stats" in out.stdout
    out = runner.invoke(app, ["lineage", "nope", *base])
    assert out.exit_code == 1 and "NotFoundError" in out.output

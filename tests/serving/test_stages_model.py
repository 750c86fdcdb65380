"""The issue's leakage example end to end, through the model registry and batch scoring: a segmentation model
(k-means on spend) packaged from a registered training set, a ``ModelStage`` whose runs score it with
``skewless.serving.batch_score.run_model_stage`` (the plugin table's ``stage`` role) into view ``segment``, and a
next-best-action training set with a time split reading the segment. Fit on every month -> the request fails naming
the stage, the split and the overlap; fit on the months before the test cut-off -> allowed. Also: a new model
version, or new feature rows, make the model stage stale and its rerun writes new predictions; the run records the
version and its training set; a model packaged without a registered training set cannot be checked."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.compute as pc
import pytest
from sklearn.cluster import KMeans
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.errors import LeakageError
from skewless.offline.scan import read_rows
from skewless.serving import ModelRegistry, package_model
from skewless.serving.batch_score import prediction_view
from skewless.stages import ModelStage, records, run
from tests.support.stages_repo import CUSTOMERS, MONTHS, TEST_FROM, activity_rows, entity_rows, make_repo

NBA = ["activity:spend", "segment:output__prediction"]  # the next-best-action model's features
SPLIT = sk.Split(time={"test": TEST_FROM})
ALL = CUSTOMERS * len(MONTHS)


@pytest.fixture
def store(tmp_path):
    store = make_repo(tmp_path / "repo")
    store.apply([sk.FeatureService("seg_inputs", [store.get_feature_view("activity")])])
    path = tmp_path / "score_rows.parquet"
    entity_rows().to_parquet(path)
    store.score_rows = str(path)
    return store


def segmentation(store, name: str, months, *, register: bool = True):
    """A k-means segmentation fit on the rows of ``months``, registered as a version of model ``segmentation``."""
    job = store.get_historical_features(entity_rows(months), "seg_inputs")
    if register:
        job.register(name)
    km = KMeans(2, n_init=3, random_state=0).fit(job.to_pandas()[["spend"]])
    lineage = {"training_set": job} if register else {"snapshot": job.snapshot}
    mv = ModelRegistry(store).register(package_model(km, name="segmentation", store=store,
                                                     feature_service="seg_inputs", **lineage))
    prediction_view(store, "segmentation", "segment")  # batch scoring's view of its predictions
    return mv


def declare(store, version: int | None = None) -> ModelStage:
    stage = ModelStage("segment", model="segmentation", version=version, inputs=["feature_service/seg_inputs"],
                       output="segment", entities=store.score_rows)
    store.apply([stage])
    return stage


def test_segmentation_fit_on_all_rows_is_flagged(store):
    segmentation(store, "seg_all_months", MONTHS)
    declare(store)
    (result,) = run(store, "segment")
    assert (result.status, result.rows, result.model_version) == ("ran", ALL, 1)
    with pytest.raises(LeakageError) as info:
        store.get_historical_features(entity_rows(), NBA, split=SPLIT)
    e = info.value
    assert (e.stage, e.split, e.rows) == ("segment", "test", CUSTOMERS * 3)
    assert e.first.startswith("2024-04-01") and e.last.startswith("2024-06-01")
    assert "training set 'seg_all_months' version 1" in str(e) and "output view 'segment'" in str(e)


def test_segmentation_fit_on_train_rows_only_is_allowed(store):
    segmentation(store, "seg_first_quarter", MONTHS[:3])
    declare(store)
    run(store, "segment")
    t = store.get_historical_features(entity_rows(), NBA, split=SPLIT).to_arrow()
    assert t.num_rows == ALL and t.column("output__prediction").null_count == 0
    assert pc.sum(pc.equal(t.column("split"), "test")).as_py() == CUSTOMERS * 3


def test_override_is_recorded_with_the_training_set(store):
    segmentation(store, "seg_all_months", MONTHS)
    declare(store)
    run(store, "segment")
    job = store.get_historical_features(entity_rows(), NBA, split=SPLIT, allow_leakage=["segment"])
    job.register("nba_accepting_leakage")
    (got,) = store.get_training_set("nba_accepting_leakage").allowed_leakage["segment"]
    assert got["rows"] == CUSTOMERS * 3 and "seg_all_months" in got["fit"]


def test_a_new_model_version_makes_the_stage_stale_and_is_recorded(store):
    segmentation(store, "seg_first_quarter", MONTHS[:3])
    declare(store)
    assert run(store, "segment")[0].status == "ran"
    assert run(store, "segment")[0].status == "fresh"
    segmentation(store, "seg_first_two_months", MONTHS[:2])
    (again,) = run(store, "segment")
    assert (again.status, again.model_version, again.rows) == ("ran", 2, ALL)
    runs = records.completed(store.registry.store, "segment")
    assert [(r["model"]["version"], r["fit"][0]["training_set"]) for r in runs] == [
        (1, "seg_first_quarter"), (2, "seg_first_two_months")]
    # pinned back to version 1: the view holds version 2's predictions, so it runs again (not "fresh")
    declare(store, version=1)
    out = CliRunner().invoke(app, ["run", "segment", "--repo", str(store.repo_path), "--json"])
    assert out.exit_code == 0, out.output
    assert [(r["status"], r["model_version"], r["rows"]) for r in json.loads(out.output)] == [("ran", 1, ALL)]
    newest = store.get_historical_features(entity_rows(MONTHS[:1]), ["segment:model_version"]).to_pandas()
    assert set(newest.model_version) == {1}


def test_new_feature_rows_make_the_stage_stale_and_it_writes_new_predictions(store):
    segmentation(store, "seg_first_quarter", MONTHS[:3])
    declare(store)
    run(store, "segment")
    store.ingest("activity", activity_rows(MONTHS[:1], spend_shift=1000.0))  # January's spend corrected
    (again,) = run(store, "segment")
    assert (again.status, again.rows) == ("ran", ALL)  # scored again: not the first run's job
    assert read_rows(store.offline.files("segment", store.offline.version("segment"))).num_rows == 2 * ALL


def test_a_model_without_a_registered_training_set_cannot_be_checked(store):
    segmentation(store, "unregistered", MONTHS[:3], register=False)
    declare(store)
    with pytest.raises(LeakageError, match="without a registered training set") as info:
        store.get_historical_features(entity_rows(), NBA, split=SPLIT)  # never run: the version it would use
    assert info.value.rows is None
    store.get_historical_features(entity_rows(), NBA, split=SPLIT, allow_leakage=["segment"])


def test_a_model_stage_without_a_model_version_cannot_be_checked(store):
    segment = sk.FeatureView("segment", entities=["customer"],
                             schema=[sk.Field("customer_id", sk.Int64), sk.Field("output__prediction", sk.Float64)])
    store.apply([segment])
    declare(store)  # no model named segmentation is registered, and the stage never ran
    with pytest.raises(LeakageError, match="model 'segmentation' is not registered, and the stage has no recorded run"):
        store.get_historical_features(entity_rows(), NBA, split=SPLIT)


def test_a_model_stage_without_entities_is_refused(store):
    segmentation(store, "seg_first_quarter", MONTHS[:3])
    store.apply([ModelStage("segment", model="segmentation", inputs=["feature_service/seg_inputs"],
                            output="segment")])
    with pytest.raises(sk.ValidationError, match="declare entities= on the stage or pass them"):
        run(store, "segment")
    rows = pd.read_parquet(store.score_rows)
    assert run(store, "segment", entities=rows)[0].status == "ran"
    assert run(store, "segment", entities=rows.copy())[0].status == "fresh"  # the same rows: the same run
    (other,) = run(store, "segment", entities=rows[rows.customer_id < 5])  # other rows: another run
    assert (other.status, other.rows) == ("ran", 5 * len(MONTHS))


def test_lineage_links_model_versions_to_their_stage(store):
    from skewless import lineage

    segmentation(store, "seg_first_quarter", MONTHS[:3])
    segmentation(store, "seg_first_two_months", MONTHS[:2])
    declare(store, version=2)
    g = lineage.graph(store, models=ModelRegistry(store).records())
    edges = {(e.source, e.target, e.relation) for e in g.edges}
    assert ("model/segmentation@2", "stage/segment", "scores") in edges
    assert ("model/segmentation@1", "stage/segment", "scores") not in edges  # pinned to version 2
    assert "training_set/seg_first_two_months" in g.upstream("feature_view/segment").nodes

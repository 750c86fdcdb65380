"""Model flavours beyond scikit-learn, each packaged and served for real: XGBoost (the scikit-learn wrapper with a
categorical feature, and a native multi-class Booster) and MLflow pyfunc (a model folder saved by mlflow.sklearn,
and a PythonModel instance). Models are trained on a tiny repo's training set; the server reads the features
online and its predictions equal the model's own in-process predictions on the historical features."""

from __future__ import annotations

import importlib
import io
import sys
import tarfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import skewless as sk
from skewless.serving import ModelArtifact, package_model
from skewless.serving.server import ServeConfig
from tests.serving.test_serving import running

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
FEATURES = ["income", "trips", "city"]
DOUBLER = '''
import mlflow.pyfunc
import pandas as pd


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"score": model_input["income"] * 2 + model_input["trips"]})
'''


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """40 drivers with a numeric, a count and a string feature; the training set at T0 + 1h with a label."""
    path = tmp_path_factory.mktemp("flavors") / "repo"
    store = sk.init_repo(path, project="flavors")
    driver = sk.Entity("driver", join_keys=["driver_id"])
    stats = sk.FeatureView("driver_stats", entities=[driver], schema=[
        sk.Field("driver_id", sk.Int64), sk.Field("income", sk.Float64), sk.Field("trips", sk.Int64),
        sk.Field("city", sk.String)])
    store.apply([driver, stats, sk.FeatureService("scoring", features=[stats])])
    rng = np.random.default_rng(0)
    n = 40
    rows = pd.DataFrame({"driver_id": np.arange(1, n + 1), "income": rng.normal(50, 15, n).round(2),
                         "trips": rng.integers(0, 20, n), "city": rng.choice(["ams", "ber", "cph"], n),
                         "event_timestamp": [T0] * n})
    store.ingest("driver_stats", rows)
    label = ((rows.income > 50) ^ (rows.city == "ber")).astype(int)
    job = store.get_historical_features(pd.DataFrame({"driver_id": rows.driver_id, "label": label,
                                                      "event_timestamp": T0 + timedelta(hours=1)}), "scoring")
    return {"path": path, "store": store, "job": job, "train": job.to_pandas(), "ids": rows.driver_id.tolist()}


def serve(repo, art, ids) -> list[dict]:
    with running(ServeConfig(repo=str(repo["path"]), model_dir=str(art.path))) as (client, model):
        r = client.post("/invocations", json={"instances": [{"driver_id": i} for i in ids]})
        assert r.status_code == 200, r.text
        assert model.manifest.flavor == art.manifest.flavor
        return r.json()["predictions"]


def package(repo, model, **kw):
    return package_model(model, name="m", store=repo["store"], feature_service="scoring", training_set=repo["job"],
                         **kw)


# -- XGBoost ------------------------------------------------------------------------------------------------------
def test_xgboost_classifier_with_a_categorical_feature(repo):
    import xgboost

    x = repo["train"][FEATURES].astype({"city": "category"})
    model = xgboost.XGBClassifier(n_estimators=8, max_depth=3, enable_categorical=True, tree_method="hist")
    model.fit(x, repo["train"]["label"])
    art = package(repo, model)
    m = art.manifest
    assert m.flavor == "xgboost" and (art.path / "model" / "model.ubj").exists()
    assert [i["name"] for i in m.inputs] == FEATURES and [o["name"] for o in m.outputs] == ["proba_0", "proba_1"]
    assert m.flavor_options["categorical"] == ["city"]
    assert "xgboost-cpu==3.2.0" in m.requirements and not any(r.startswith("mlflow") for r in m.requirements)

    served = serve(repo, art, repo["ids"])  # the server gets `city` as strings and gives XGBoost categories
    expected = model.predict_proba(x)  # the training frame is in driver order, as the request
    assert [p["proba_1"] for p in served] == expected[:, 1].tolist()
    assert [p["proba_0"] for p in served] == expected[:, 0].tolist()
    assert len({round(p["proba_1"], 6) for p in served}) > 2  # a model that learned something, not a constant


def test_xgboost_native_booster_multiclass(repo):
    import xgboost

    x = repo["train"][["income", "trips"]]
    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
                            xgboost.DMatrix(x, label=repo["train"]["trips"] % 3), num_boost_round=5)
    art = package(repo, booster)
    assert art.manifest.flavor == "xgboost" and art.manifest.flavor_options["class"] == "Booster"
    assert [i["name"] for i in art.manifest.inputs] == ["income", "trips"]  # the booster's own feature names
    served = serve(repo, art, repo["ids"][:10])
    expected = booster.inplace_predict(x.head(10))
    assert [[p[f"proba_{k}"] for k in range(3)] for p in served] == expected.tolist()


# -- MLflow pyfunc --------------------------------------------------------------------------------------------------
def test_mlflow_model_folder_saved_by_mlflow_sklearn(repo, tmp_path):
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x = repo["train"][["income", "city"]]
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"),
                         LogisticRegression(max_iter=500)).fit(x, repo["train"]["label"])
    folder = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(pipe, str(folder), signature=infer_signature(x, pipe.predict(x)),
                              serialization_format="cloudpickle")
    art = package(repo, str(folder))
    m = art.manifest
    assert m.flavor == "mlflow" and (art.path / "model" / "MLmodel").exists()
    assert [i["name"] for i in m.inputs] == ["income", "city"]  # from the MLflow signature, not the service
    assert m.outputs == [{"name": "prediction", "dtype": "Int64"}]
    # the MLflow model's own requirements, with mlflow itself as mlflow-skinny
    assert "mlflow-skinny==3.17.2" in m.requirements and any(r.startswith("scikit-learn==") for r in m.requirements)
    assert not any(r.startswith("mlflow==") for r in m.requirements)

    served = [p["prediction"] for p in serve(repo, art, repo["ids"])]
    assert served == mlflow.pyfunc.load_model(str(folder)).predict(x).tolist() == pipe.predict(x).tolist()

    # The same folder through the CLI: `skewless model package <folder>` registers an mlflow-flavour version.
    from typer.testing import CliRunner

    from skewless.cli.main import app as cli
    from skewless.serving.model_registry import ModelRegistry

    repo["job"].to_parquet(tmp_path / "train.parquet")
    r = CliRunner().invoke(cli, ["model", "package", str(folder), "--name", "m_cli", "--service", "scoring",
                                 "--training-set", str(tmp_path / "train.parquet"), "-r", str(repo["path"])])
    assert r.exit_code == 0, r.output
    registered = ModelRegistry(sk.FeatureStore(repo["path"])).download("m_cli", dest=str(tmp_path / "dl"))
    assert registered.manifest.flavor == "mlflow"
    assert set(served) == {0, 1}


def test_mlflow_python_model_instance(repo, tmp_path):
    (tmp_path / "doubler_mod.py").write_text(DOUBLER)
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("doubler_mod")
    finally:
        sys.path.remove(str(tmp_path))
    with pytest.raises(sk.DefinitionError, match="declare"):
        package(repo, mod.Doubler())  # no signature names the outputs
    art = package(repo, mod.Doubler(), outputs=[("score", sk.Float64)])
    assert art.manifest.flavor == "mlflow" and art.manifest.outputs == [{"name": "score", "dtype": "Float64"}]
    # The module travels in the artifact (code_paths): served where doubler_mod is not importable.
    assert list((art.path / "model" / "code").glob("doubler_mod.py"))
    del sys.modules["doubler_mod"]
    served = [p["score"] for p in serve(repo, art, repo["ids"])]
    train = repo["train"]
    assert served == (train.income * 2 + train.trips).tolist()


# -- artifact archives --------------------------------------------------------------------------------------------
def test_model_archive_with_a_link_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("model/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(sk.ValidationError, match="model/evil"):
        ModelArtifact.from_tar(buf.getvalue(), tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()


# -- scikit-learn's array fast path ----------------------------------------------------------------------------------
def _sklearn_loaded(model, method="predict_proba"):
    from skewless.serving.flavors import SklearnFlavor, _SklearnModel

    flavor = SklearnFlavor()
    return _SklearnModel(model, {"outputs": [n for n, _ in flavor.outputs(model, {"method": method})],
                                 "method": method, "takes_frame": True})


def _numeric_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"income": rng.normal(50, 10, n), "trips": rng.integers(0, 30, n)})
    return x, (x["income"] + x["trips"] > 65).astype(int)


def test_a_plain_estimator_gets_an_array_with_the_names_checked_here():
    import warnings

    from sklearn.linear_model import LogisticRegression

    x, y = _numeric_frame()
    model = LogisticRegression().fit(x, y)
    loaded = _sklearn_loaded(model)
    assert loaded._array_method is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" on the fast path
        got = loaded.predict(x.iloc[:5])
    np.testing.assert_array_equal(got["proba_1"], model.predict_proba(x.iloc[:5])[:, 1])
    # Another column order is not the fitted layout: the DataFrame goes to scikit-learn, whose check refuses it.
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(x[["trips", "income"]].iloc[:5])


def test_pipelines_and_non_numeric_columns_keep_the_dataframe():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _numeric_frame()
    pipe = make_pipeline(ColumnTransformer([("s", StandardScaler(), ["income"])], remainder="passthrough"),
                         LogisticRegression()).fit(x, y)
    loaded = _sklearn_loaded(pipe)
    assert loaded._array_method is None  # it selects columns by name
    np.testing.assert_array_equal(loaded.predict(x)["proba_1"], pipe.predict_proba(x)[:, 1])

    cats = x.assign(city=pd.Categorical(np.where(x["trips"] > 10, "a", "b")))
    hgb = HistGradientBoostingClassifier(max_iter=5).fit(cats, y)  # categories from the dtype
    loaded = _sklearn_loaded(hgb)
    assert loaded._array_method is not None  # a plain estimator, but this frame is not all numeric
    np.testing.assert_array_equal(loaded.predict(cats)["proba_1"], hgb.predict_proba(cats)[:, 1])


def test_served_logistic_regression_skips_the_dataframe_and_answers_what_sklearn_does(repo):
    from sklearn.linear_model import LogisticRegression

    x = repo["train"][["income", "trips"]]  # a float and an integer feature
    model = LogisticRegression().fit(x, repo["train"]["label"])
    art = package(repo, model)
    with running(ServeConfig(repo=str(repo["path"]), model_dir=str(art.path))) as (client, served):
        assert served._matrix is not None  # numeric inputs, a plain estimator: no DataFrame per batch
        one = [client.post("/invocations", json={"driver_id": i}).json()["predictions"][0] for i in repo["ids"][:3]]
        r = client.post("/invocations", json={"instances": [{"driver_id": i} for i in repo["ids"]]})
    expected = model.predict_proba(x)  # the training frame is in driver order, as the request
    assert [p["proba_1"] for p in r.json()["predictions"]] == expected[:, 1].tolist()  # exactly
    # One row per request is what scikit-learn answers for that one row: BLAS may round a 1-row product differently
    # from the same row inside a batch (last bit, CPU-dependent), so each is compared with its own 1-row predict.
    assert [p["proba_0"] for p in one] == [model.predict_proba(x.iloc[[k]])[0, 0] for k in range(3)]

"""The LogisticRegression fast path (serving/linear_fast.py) and the array path that skips the DataFrame
(``_SklearnModel.matrix_predict``): bit for bit what scikit-learn's ``predict_proba`` gives on the DataFrame, and
scikit-learn's own error wherever the fast path does not apply (NaN, a wrong width)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from skewless.serving.flavors import SklearnFlavor, _SklearnModel
from skewless.serving.linear_fast import proba_function


def _loaded(model) -> _SklearnModel:
    outputs = [n for n, _ in SklearnFlavor().outputs(model, {"method": "predict_proba"})]
    return _SklearnModel(model, {"outputs": outputs, "method": "predict_proba", "takes_frame": True})


def _data(n: int, classes: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"income": rng.normal(5e4, 2e4, n), "rate": rng.uniform(0, 30, n),
                      "trips": rng.integers(0, 10**6, n)})  # an integer column: the frame has two blocks
    y = (x["income"] / 2e4 + x["rate"] / 10 + rng.normal(0, 1, n)).astype(int) % classes
    return x, y.to_numpy()


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_fast_path_equals_predict_proba_on_the_dataframe(classes, rows):
    x, y = _data(400, classes)
    model = LogisticRegression(max_iter=2000).fit(x, y)
    loaded = _loaded(model)
    assert loaded._proba is not None
    probe, _ = _data(rows, classes, seed=rows)  # unseen values, including far outside the training range
    probe.loc[probe.index[0], "income"] = 1e9
    expected = model.predict_proba(probe)
    via_matrix = loaded.matrix_predict(list(x.columns), integers=True)(
        np.array([probe[c].tolist() for c in probe.columns], dtype=np.float64).T)
    via_frame = loaded.predict(probe)
    for i, name in enumerate(loaded.outputs):
        np.testing.assert_array_equal(via_matrix[name], expected[:, i])  # exact, not approximately
        np.testing.assert_array_equal(via_frame[name], expected[:, i])


def test_values_the_fast_path_does_not_take_get_scikit_learns_own_answer():
    x, y = _data(200, 2)
    model = LogisticRegression().fit(x, y)
    predict = _loaded(model).matrix_predict(list(x.columns), integers=True)
    nan = np.array([[np.nan, 1.0, 2.0]])
    with pytest.raises(ValueError, match="Input X contains NaN"):  # what predict_proba says, not a wrong number
        predict(nan)
    with pytest.raises(ValueError, match="features"):
        predict(np.ones((1, 2)))
    assert proba_function(model)(nan) is None and proba_function(model)(np.ones((1, 3), dtype=np.float32)) is None


def test_only_exactly_logistic_regression_takes_the_fast_path():
    class Tweaked(LogisticRegression):
        def predict_proba(self, X):
            return super().predict_proba(X) * 0 + 0.5

    x, y = _data(100, 2)
    assert proba_function(Tweaked().fit(x, y)) is None
    loaded = _loaded(Tweaked().fit(x, y))
    assert loaded.predict(x.iloc[:3])["proba_1"].tolist() == [0.5] * 3  # its own method still answers
    # Another column order than the fitted one: no array path (scikit-learn checks the names on the frame).
    assert _loaded(LogisticRegression().fit(x, y)).matrix_predict(["rate", "income", "trips"]) is None


def test_integer_columns_keep_the_dataframe_for_estimators_that_may_treat_them_differently():
    from sklearn.tree import DecisionTreeClassifier

    x, y = _data(100, 2)
    tree = _loaded(DecisionTreeClassifier().fit(x, y))
    assert tree.matrix_predict(list(x.columns), integers=True) is None
    assert tree.matrix_predict(list(x.columns), integers=False) is not None


def test_a_model_whose_predict_proba_differs_keeps_scikit_learns_path():
    """The probe decides: a LogisticRegression whose predict_proba is not the arithmetic above (as one-vs-rest is
    in scikit-learn 1.6-1.8) gets no fast path, so its answers stay scikit-learn's."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    model = LogisticRegression().fit(x, y)
    assert proba_function(model) is not None
    model.predict_proba = lambda data: (lambda p: p / p.sum(axis=1, keepdims=True))(  # one-vs-rest, instance-level
        1 / (1 + np.exp(-(np.asarray(data) @ model.coef_.T + model.intercept_))))
    assert proba_function(model) is None

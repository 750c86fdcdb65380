"""scikit-learn's LogisticRegression.predict_proba without its per-call input checks, same arithmetic.

On a request's few rows, ``predict_proba`` on an array spends ~90 us validating (``validate_data``: narwhals and
pandas type probes, ``check_array``, the finiteness scan, tags) around ~2 us of arithmetic
(bench/results/serving_i14_profile.md). This module does the arithmetic exactly as scikit-learn 1.x does it
(``LinearClassifierMixin.decision_function``: ``X @ coef_.T + intercept_``; binary: ``expit`` then
``[1 - p, p]``; multiclass: scikit-learn's own ``softmax``), so the result is bit for bit the same
(tests/serving/test_serving_linear_fast.py compares it to ``predict_proba`` on DataFrames). It applies only where
that holds: exactly ``LogisticRegression`` (a subclass may override anything), dense float64 coefficients, and an
input that is a float64 2-D array with the fitted number of columns and only finite values; anything else returns
None and the caller goes through scikit-learn, which raises its own error for NaN or a wrong shape.

Before it is used, the function is checked once against the model's own ``predict_proba`` on a fixed probe: the
installed scikit-learn decides the arithmetic (1.6-1.8 still honour ``multi_class="ovr"`` and liblinear's
one-vs-rest for several classes, where softmax would be wrong), so any disagreement keeps scikit-learn's path.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def proba_function(model: Any) -> Callable[[np.ndarray], np.ndarray | None] | None:
    """``X -> probabilities`` (rows x classes, as ``predict_proba``), or None (an X it does not take); None when
    ``model`` is not one this path reproduces exactly."""
    try:
        from scipy.special import expit
        from sklearn.linear_model import LogisticRegression
        from sklearn.utils.extmath import softmax
    except ImportError:  # pragma: no cover - scikit-learn models need scikit-learn and scipy
        return None
    if type(model) is not LogisticRegression:
        return None
    coef, intercept, classes = (getattr(model, a, None) for a in ("coef_", "intercept_", "classes_"))
    if not all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in (coef, intercept)) \
            or coef.ndim != 2 or classes is None or len(classes) < 2:
        return None
    coef_t, width, binary = coef.T, coef.shape[1], len(classes) <= 2

    def proba(x: np.ndarray) -> np.ndarray | None:
        if x.dtype != np.float64 or x.ndim != 2 or x.shape[1] != width or not np.isfinite(x).all():
            return None
        scores = x @ coef_t + intercept  # decision_function's safe_sparse_dot on dense arrays
        if binary:
            prob = scores.reshape(-1)
            expit(prob, out=prob)  # _predict_proba_lr
            return np.stack([1 - prob, prob], axis=1)
        return softmax(scores, copy=False)  # predict_proba's multinomial branch
    return proba if _agrees(model, proba, width) else None


def _agrees(model: Any, proba: Callable[[np.ndarray], np.ndarray | None], width: int) -> bool:
    """``proba`` equals the model's ``predict_proba`` bit for bit on a fixed probe (rows of mixed signs and
    scales), so a scikit-learn whose arithmetic differs from the one above never gets the fast path."""
    import warnings

    probe = np.sin(np.arange(1.0, 5 * width + 1.0)).reshape(5, width) * np.array([1.0, 10.0, 0.1, 100.0, 3.0])[:, None]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "X does not have valid feature names": the array is on purpose
            expected = model.predict_proba(probe)
    except Exception:  # noqa: BLE001 - whatever scikit-learn refuses, its own path will report per request
        return False
    got = proba(probe.copy())
    return got is not None and got.shape == expected.shape and np.array_equal(got, expected)

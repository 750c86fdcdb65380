"""Comparing a served prediction with the model's own answer on the same inputs.

The inputs are compared exactly by the tests (that is skewless's promise). The model's output on them is not
bit-reproducible across memory layouts: scikit-learn's ``predict_proba`` computes ``X @ coef.T`` through OpenBLAS,
whose kernel (and so its summation order) depends on whether ``X`` is row- or column-major and on the CPU's
instruction set. On this project's machines the same 6x5 batch gave a different last bit in C and Fortran order
in 1,363 of 2,000 random draws (scikit-learn against itself). The server builds its own array; a DataFrame gives
scikit-learn another layout. So predictions are compared within a few units in the last place: any wrong input
moves them by far more.
"""

from __future__ import annotations

import numpy as np

MAX_ULP = 16


def assert_same_predictions(served, expected) -> None:
    served, expected = np.asarray(served, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert served.shape == expected.shape, (served.shape, expected.shape)
    np.testing.assert_array_max_ulp(served, expected, maxulp=MAX_ULP)

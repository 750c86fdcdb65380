"""Model flavours: how a kind of model is saved into an artifact, loaded back, and asked for predictions.

A flavour is found by ``detect(model)`` at packaging time and by name at load time. Each flavour is one class
plus ``register``; libraries are imported inside the class only, so serving a scikit-learn model never imports
XGBoost or MLflow. ``detect`` asks the most recently registered flavour first: the specific ones (xgboost,
mlflow, a user's) before scikit-learn's duck-typed check, which an XGBClassifier would pass too.

Every loaded model answers ``predict(frame) -> {output name: column}``: one column per declared output, one value
per input row. Outputs are named columns (not a bare array) so the prediction log and the HTTP answer can carry
several of them (e.g. one probability per class) under stable names.
"""

from __future__ import annotations

import abc
import importlib.util
import inspect
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from skewless.errors import DefinitionError
from .errors import PredictionError

MODEL_DIR = "model"  # inside the artifact: the flavour's own files
CODE_DIR = "code"  # inside the artifact: Python source the model needs to load


class LoadedModel(abc.ABC):
    """A model ready to predict (KServe's lifecycle: the server calls ``load`` once, then ``predict`` per batch)."""

    @abc.abstractmethod
    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        """One column (sequence or 1-D array) per output, each as long as ``frame``."""


class Flavor(abc.ABC):
    name: str
    # Distributions whose installed versions become the artifact's pinned requirements.
    packages: tuple[str, ...] = ()

    @abc.abstractmethod
    def detect(self, model: Any) -> bool:
        """Whether this flavour packages ``model`` (checked without importing optional libraries)."""

    @abc.abstractmethod
    def save(self, model: Any, root: Path, options: dict) -> dict:
        """Write the model under ``root / MODEL_DIR`` (and code under ``root / CODE_DIR``); return the options
        ``load`` needs (JSON-able)."""

    @abc.abstractmethod
    def load(self, root: Path, options: dict) -> LoadedModel: ...

    def input_names(self, model: Any) -> list[str] | None:
        """The input columns the model was fitted on, in order, when it knows them."""
        return None

    @abc.abstractmethod
    def outputs(self, model: Any, options: dict) -> list[tuple[str, str]]:
        """[(output name, dtype name)] the model produces."""

    def requirements(self, root: Path, saved: dict) -> list[str]:
        """Requirements the saved model states itself (beyond ``packages``), e.g. an MLflow model's own list."""
        return []


_FLAVORS: dict[str, Flavor] = {}


def register(flavor: Flavor) -> None:
    _FLAVORS[flavor.name] = flavor


def get(name: str) -> Flavor:
    try:
        return _FLAVORS[name]
    except KeyError:
        raise DefinitionError(f"unknown model flavour {name!r}; known: {', '.join(sorted(_FLAVORS))}") from None


def detect(model: Any) -> Flavor:
    for flavor in reversed(list(_FLAVORS.values())):
        if flavor.detect(model):
            return flavor
    raise DefinitionError(f"no model flavour packages a {type(model).__module__}.{type(model).__name__}; known: "
                          f"{', '.join(sorted(_FLAVORS))} (a plain class with load()/predict() is the 'python' one)")


def _output_name(label: Any) -> str:
    """A class label as part of a column name (the prediction log's columns must be valid field names)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(label))


def _dtype_of(values: np.ndarray) -> str:
    kind = np.asarray(values).dtype.kind
    return {"i": "Int64", "u": "Int64", "f": "Float64", "b": "Bool"}.get(kind, "String")


def _columns(out: Any, outputs: list[str]) -> dict[str, Any]:
    """A model's array answer as named output columns: 1-D is the one output, 2-D one column per output."""
    out = np.asarray(out)
    if out.ndim == 1 and len(outputs) == 1:
        return {outputs[0]: out}
    if out.ndim == 2 and out.shape[1] == len(outputs):
        return {name: out[:, i] for i, name in enumerate(outputs)}
    raise PredictionError(f"the model answered an array of shape {out.shape}; its outputs are {outputs}")


# -- scikit-learn ------------------------------------------------------------------------------------------------
class SklearnFlavor(Flavor):
    """Any fitted scikit-learn estimator or pipeline, saved with joblib (a pickle: load only artifacts you trust,
    which the model registry's digests check were not altered since they were registered)."""

    name = "sklearn"
    packages = ("scikit-learn", "numpy", "scipy", "joblib", "pandas")

    def detect(self, model: Any) -> bool:
        return type(model).__module__.startswith("sklearn.") or (
            hasattr(model, "get_params") and hasattr(model, "predict"))

    def input_names(self, model: Any) -> list[str] | None:
        names = getattr(model, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    def _method(self, model: Any, options: dict) -> str:
        method = options.get("method") or ("predict_proba" if hasattr(model, "predict_proba") else "predict")
        if method not in ("predict", "predict_proba") or not hasattr(model, method):
            raise DefinitionError(f"scikit-learn model has no method {method!r} (use predict or predict_proba)")
        return method

    def outputs(self, model: Any, options: dict) -> list[tuple[str, str]]:
        if self._method(model, options) == "predict_proba":
            return [(f"proba_{_output_name(c)}", "Float64") for c in model.classes_]
        classes = getattr(model, "classes_", None)
        return [("prediction", _dtype_of(classes) if classes is not None else "Float64")]

    def save(self, model: Any, root: Path, options: dict) -> dict:
        import joblib

        (root / MODEL_DIR).mkdir(parents=True, exist_ok=True)
        joblib.dump(model, root / MODEL_DIR / "model.joblib")
        method = self._method(model, options)
        return {"method": method, "outputs": [n for n, _ in self.outputs(model, {"method": method})],
                "takes_frame": self.input_names(model) is not None}

    def load(self, root: Path, options: dict) -> LoadedModel:
        import joblib

        return _SklearnModel(joblib.load(root / MODEL_DIR / "model.joblib"), options)


def _checks_names_only(model: Any) -> bool:
    """A single scikit-learn estimator that uses a DataFrame's column names only to check them: no pipeline, column
    selector or meta-estimator (their nested parameters show as ``step__param``), which look columns up by name."""
    if not type(model).__module__.startswith("sklearn.") or type(model).__name__ == "FunctionTransformer":
        return False
    try:
        return not any("__" in k for k in model.get_params(deep=True))
    except Exception:  # noqa: BLE001 - an estimator we cannot inspect keeps the DataFrame path
        return False


class _SklearnModel(LoadedModel):
    def __init__(self, model, options: dict):
        self.model, self.outputs = model, options["outputs"]
        self.method = getattr(model, options["method"])
        # Fitted on a DataFrame: give it one (names are checked); fitted on arrays: give it an array (no warning).
        self.takes_frame = options.get("takes_frame", True)
        # The fast path. On a one-row DataFrame, scikit-learn's input check (pandas and narwhals dtype inspection)
        # is most of the call: LogisticRegression.predict_proba took about four times as long on a DataFrame as on
        # the same values as an array (bench/results/figures_in_code.md). For an estimator that only checks the names, the check is done here instead: when the
        # frame's columns are exactly the fitted names, in order, and all numeric, a copy of the estimator without
        # the recorded names gets the array (the number of columns is still checked by scikit-learn). Anything
        # else (pipelines, categorical or text columns, another order) keeps the DataFrame and the full check.
        names = getattr(model, "feature_names_in_", None)
        self._names, self._array_method = None, None
        if self.takes_frame and names is not None and _checks_names_only(model):
            import copy

            unnamed = copy.copy(model)  # shares the fitted arrays
            del unnamed.feature_names_in_
            self._names, self._array_method = [str(n) for n in names], getattr(unnamed, options["method"])

        self._proba = None  # LogisticRegression's arithmetic without scikit-learn's per-call checks (linear_fast)
        if options["method"] == "predict_proba" and (self._array_method is not None or not self.takes_frame):
            from .linear_fast import proba_function

            self._proba = proba_function(model)

    def matrix_predict(self, names: list[str], integers: bool = False) -> Callable[[np.ndarray], dict[str, Any]] | None:
        """For a caller whose inputs are all numeric: ``X -> outputs`` on the float64 array of its columns ``names``
        (rows x columns; nulls as NaN), skipping the DataFrame; None when this model needs the DataFrame (a
        pipeline, names in another order) or, with ``integers`` (some columns hold integers), when the estimator
        might treat an integer array differently from a float one. The answer is what ``predict`` gives for the
        same frame."""
        if self.takes_frame and (self._names is None or list(names) != self._names):
            return None
        if integers and self._proba is None:  # LogisticRegression converts integers to float64 itself; others may not
            return None
        method = self._array_method if self.takes_frame else self.method
        proba = self._proba

        def predict(x: np.ndarray) -> dict[str, Any]:
            out = proba(x) if proba is not None else None
            return _columns(method(x) if out is None else out, self.outputs)
        return predict

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        if not self.takes_frame:
            return _columns(self.method(frame.to_numpy()), self.outputs)
        if self._names is not None and frame.columns.tolist() == self._names:
            values = frame.to_numpy()
            if values.dtype.kind in "iuf":  # mixed, categorical or text columns give an object array
                out = self._proba(values) if self._proba is not None else None
                return _columns(self._array_method(values) if out is None else out, self.outputs)
        return _columns(self.method(frame), self.outputs)


# -- a plain Python class --------------------------------------------------------------------------------------
class PythonFlavor(Flavor):
    """A class with ``load(self, path)`` and ``predict(self, frame)``; ``predict`` returns a mapping of output
    columns, or one column when the model has one output. The class's module file is copied into the artifact
    (it must be self-contained, like MLflow's ``code_paths``); files given as ``artifacts`` are copied into the
    model folder that ``load`` receives. Outputs are declared: ``outputs=[("score", "Float64")]`` at packaging
    time or an ``outputs`` attribute on the class."""

    name = "python"

    def detect(self, model: Any) -> bool:
        cls = model if inspect.isclass(model) else type(model)
        return callable(getattr(cls, "load", None)) and callable(getattr(cls, "predict", None))

    def outputs(self, model: Any, options: dict) -> list[tuple[str, str]]:
        declared = options.get("outputs") or getattr(model, "outputs", None)
        if not declared:
            raise DefinitionError("a python-flavour model declares its outputs: outputs=[('score', 'Float64')]")
        return [(str(n), getattr(d, "name", d)) for n, d in declared]

    def save(self, model: Any, root: Path, options: dict) -> dict:
        cls = model if inspect.isclass(model) else type(model)
        if cls.__module__ == "__main__":
            raise DefinitionError(f"{cls.__name__} is defined in __main__: put it in a module file to package it")
        source = inspect.getsourcefile(cls)
        if source is None:
            raise DefinitionError(f"cannot find the source file of {cls.__module__}.{cls.__qualname__}")
        (root / CODE_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / CODE_DIR / Path(source).name)
        model_dir = root / MODEL_DIR
        model_dir.mkdir(parents=True, exist_ok=True)
        for name, path in (options.get("artifacts") or {}).items():
            target = model_dir / name
            (shutil.copytree if Path(path).is_dir() else shutil.copy2)(path, target)
        return {"module": cls.__module__, "file": Path(source).name, "class": cls.__qualname__,
                "outputs": [n for n, _ in self.outputs(model, options)]}

    def load(self, root: Path, options: dict) -> LoadedModel:
        # Imported from the artifact's copy, under its own name, so the artifact runs where its author's code is
        # not installed (the serving image) and never picks up a different installed version.
        name = f"skewless_model_code_{options['module'].replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(name, root / CODE_DIR / options["file"])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickles look their module up here
        spec.loader.exec_module(module)
        obj: Any = module
        for part in options["class"].split("."):
            obj = getattr(obj, part)
        instance = obj()
        instance.load(str(root / MODEL_DIR))
        return _PythonModel(instance, options["outputs"])


class _PythonModel(LoadedModel):
    def __init__(self, instance, outputs: list[str]):
        self.instance, self.outputs = instance, outputs

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        out = self.instance.predict(frame)
        if isinstance(out, Mapping):
            missing = [n for n in self.outputs if n not in out]
            if missing:
                raise PredictionError(f"predict() returned no outputs {missing} (declared: {self.outputs})")
            return {n: out[n] for n in self.outputs}
        if len(self.outputs) != 1:
            raise PredictionError(f"predict() returned one column but the model declares outputs {self.outputs}")
        return {self.outputs[0]: out}


# -- XGBoost ----------------------------------------------------------------------------------------------------
class XGBoostFlavor(SklearnFlavor):
    """XGBoost's scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``, ...) or a native ``Booster``, saved in
    XGBoost's own format (``model.ubj``: loadable by later XGBoost versions, unlike a pickle). Features trained as
    categorical (``enable_categorical``; feature type ``c``) reach the model as pandas categories: XGBoost (>= 3.1)
    re-codes them to the training categories itself. A Booster's outputs: ``proba_<i>`` per class for
    ``multi:softprob``, else one ``prediction`` (or declared with ``outputs=``)."""

    name = "xgboost"
    # xgboost-cpu is the `xgboost` module without the CUDA libraries; whichever is installed gets pinned.
    packages = ("xgboost-cpu", "xgboost", "numpy", "scipy", "pandas")
    FILE = "model.ubj"

    def detect(self, model: Any) -> bool:
        return type(model).__module__.split(".")[0] == "xgboost"

    @staticmethod
    def _booster(model: Any):
        return model if type(model).__name__ == "Booster" else model.get_booster()

    def input_names(self, model: Any) -> list[str] | None:
        names = self._booster(model).feature_names
        return [str(n) for n in names] if names else None

    def outputs(self, model: Any, options: dict) -> list[tuple[str, str]]:
        if type(model).__name__ != "Booster":
            return super().outputs(model, options)
        if options.get("outputs"):
            return [(str(n), getattr(d, "name", d)) for n, d in options["outputs"]]
        import json

        learner = json.loads(model.save_config())["learner"]
        classes = int(learner["learner_model_param"].get("num_class") or 0)
        if learner["objective"]["name"] == "multi:softprob" and classes > 1:
            return [(f"proba_{i}", "Float64") for i in range(classes)]
        return [("prediction", "Float64")]

    def save(self, model: Any, root: Path, options: dict) -> dict:
        (root / MODEL_DIR).mkdir(parents=True, exist_ok=True)
        model.save_model(root / MODEL_DIR / self.FILE)
        booster = self._booster(model)
        method = None if type(model).__name__ == "Booster" else self._method(model, options)
        return {"class": type(model).__name__, "method": method,
                "outputs": [n for n, _ in self.outputs(model, {**options, "method": method})],
                "categorical": [n for n, t in zip(booster.feature_names or [], booster.feature_types or [])
                                if t == "c"]}

    def load(self, root: Path, options: dict) -> LoadedModel:
        import xgboost

        path = str(root / MODEL_DIR / self.FILE)
        if options["class"] == "Booster":
            return _XGBoostModel(xgboost.Booster(model_file=path).inplace_predict, options)
        model = getattr(xgboost, options["class"])()
        model.load_model(path)
        return _XGBoostModel(getattr(model, options["method"]), options)


class _XGBoostModel(LoadedModel):
    def __init__(self, method, options: dict):
        self.method, self.outputs, self.categorical = method, options["outputs"], options["categorical"]

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        if self.categorical:
            frame = frame.astype({c: "category" for c in self.categorical})
        return _columns(self.method(frame), self.outputs)


# -- MLflow pyfunc -----------------------------------------------------------------------------------------------
_MLFLOW_DTYPES = {"double": "Float64", "float": "Float64", "long": "Int64", "integer": "Int64", "boolean": "Bool",
                  "string": "String"}


class MlflowFlavor(Flavor):
    """An MLflow model served through its ``python_function`` (pyfunc) form: a saved MLflow model folder (its
    ``MLmodel`` file; any MLflow flavour with a pyfunc form, e.g. ``mlflow.sklearn``), or an
    ``mlflow.pyfunc.PythonModel`` instance, saved here with ``mlflow.pyfunc.save_model`` and its module file as
    ``code_paths`` (self-contained, like the python flavour). Input columns and outputs come from the model's
    signature where it names them, else outputs are declared (``outputs=[("score", "Float64")]``). The model's own
    ``requirements.txt`` joins the artifact's, with ``mlflow`` replaced by ``mlflow-skinny`` (the pyfunc runtime
    without the tracking server and UI)."""

    name = "mlflow"
    packages = ("mlflow-skinny", "cloudpickle", "numpy", "pandas")

    def detect(self, model: Any) -> bool:
        if isinstance(model, (str, os.PathLike)):
            return (Path(model) / "MLmodel").is_file()
        return any(c.__name__ == "PythonModel" and c.__module__.startswith("mlflow.pyfunc")
                   for c in type(model).__mro__)

    @staticmethod
    def _signature(model: Any):
        if not isinstance(model, (str, os.PathLike)):
            return None
        from mlflow.models import Model

        return Model.load(str(model)).signature

    def input_names(self, model: Any) -> list[str] | None:
        sig = self._signature(model)
        return list(sig.inputs.input_names()) if sig is not None and sig.inputs.has_input_names() else None

    def outputs(self, model: Any, options: dict) -> list[tuple[str, str]]:
        if options.get("outputs"):
            return [(str(n), getattr(d, "name", d)) for n, d in options["outputs"]]
        sig = self._signature(model)
        if sig is None or sig.outputs is None:
            raise DefinitionError("this MLflow model has no output signature: declare its outputs, e.g. "
                                  "outputs=[('score', 'Float64')]")
        specs = sig.outputs.inputs
        if sig.outputs.has_input_names():
            return [(s.name, _MLFLOW_DTYPES.get(s.type.name, "String")) for s in specs]
        if sig.outputs.is_tensor_spec():
            dtype, shape = _dtype_of(np.empty(0, specs[0].type)), specs[0].shape
            if len(specs) == 1 and len(shape) == 2 and shape[1] > 0:
                return [(f"prediction_{i}", dtype) for i in range(shape[1])]
            if len(specs) == 1 and len(shape) == 1:
                return [("prediction", dtype)]
        elif len(specs) == 1:
            return [("prediction", _MLFLOW_DTYPES.get(specs[0].type.name, "String"))]
        raise DefinitionError(f"cannot name the outputs of MLflow signature {sig.outputs}: declare them, e.g. "
                              f"outputs=[('score', 'Float64')]")

    def save(self, model: Any, root: Path, options: dict) -> dict:
        target = root / MODEL_DIR
        if isinstance(model, (str, os.PathLike)):
            shutil.copytree(model, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            import mlflow.pyfunc

            source = inspect.getsourcefile(type(model))
            if type(model).__module__ == "__main__" or source is None:
                raise DefinitionError(f"{type(model).__name__} must be defined in a module file to be packaged")
            mlflow.pyfunc.save_model(str(target), python_model=model, code_paths=[source])
        return {"outputs": [n for n, _ in self.outputs(model, options)]}

    def requirements(self, root: Path, saved: dict) -> list[str]:
        path = root / MODEL_DIR / "requirements.txt"
        if not path.exists():
            return []
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
        return [ln for ln in lines if ln and not ln.startswith("-") and not re.match(r"mlflow\b(?!-)", ln)]

    def load(self, root: Path, options: dict) -> LoadedModel:
        import mlflow.pyfunc

        return _MlflowModel(mlflow.pyfunc.load_model(str(root / MODEL_DIR)), options["outputs"])


class _MlflowModel(LoadedModel):
    def __init__(self, model, outputs: list[str]):
        self.model, self.outputs = model, outputs

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        out = self.model.predict(frame)
        if isinstance(out, pd.DataFrame):
            if set(self.outputs) <= set(out.columns):
                return {n: out[n].to_numpy() for n in self.outputs}
            out = out.to_numpy()
        elif isinstance(out, Mapping):
            missing = [n for n in self.outputs if n not in out]
            if missing:
                raise PredictionError(f"the MLflow model returned no outputs {missing} (declared: {self.outputs})")
            return {n: out[n] for n in self.outputs}
        return _columns(out, self.outputs)


register(PythonFlavor())
register(SklearnFlavor())  # after python's: detect asks it first
register(XGBoostFlavor())  # before scikit-learn's duck typing, which XGBoost's wrappers pass
register(MlflowFlavor())

"""Model flavours: how a kind of model is saved into an artifact, loaded back, and asked for predictions.

A flavour is found by ``detect(model)`` at packaging time and by name at load time. New flavours (XGBoost,
LightGBM, MLflow pyfunc) are one class each plus ``register``; their libraries are imported inside the class
only, so serving a scikit-learn model never imports them.

Every loaded model answers ``predict(frame) -> {output name: column}``: one column per declared output, one value
per input row. Outputs are named columns (not a bare array) so the prediction log and the HTTP answer can carry
several of them (e.g. one probability per class) under stable names.
"""

from __future__ import annotations

import abc
import importlib.util
import inspect
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

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


_FLAVORS: dict[str, Flavor] = {}


def register(flavor: Flavor) -> None:
    _FLAVORS[flavor.name] = flavor


def get(name: str) -> Flavor:
    try:
        return _FLAVORS[name]
    except KeyError:
        raise DefinitionError(f"unknown model flavour {name!r}; known: {', '.join(sorted(_FLAVORS))}") from None


def detect(model: Any) -> Flavor:
    for flavor in _FLAVORS.values():
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


# -- scikit-learn ------------------------------------------------------------------------------------------------
class SklearnFlavor(Flavor):
    """Any fitted scikit-learn estimator or pipeline, saved with joblib (a pickle: load only artifacts you trust,
    which the registry's digests check were not altered since they were registered)."""

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


class _SklearnModel(LoadedModel):
    def __init__(self, model, options: dict):
        self.model, self.outputs = model, options["outputs"]
        self.method = getattr(model, options["method"])
        # Fitted on a DataFrame: give it one (names are checked); fitted on arrays: give it an array (no warning).
        self.takes_frame = options.get("takes_frame", True)

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        out = np.asarray(self.method(frame if self.takes_frame else frame.to_numpy()))
        if out.ndim == 1:
            return {self.outputs[0]: out}
        return {name: out[:, i] for i, name in enumerate(self.outputs)}


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


register(SklearnFlavor())
register(PythonFlavor())

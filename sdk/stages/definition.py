"""Stages: declared steps of a pipeline (docs/concepts/stages.md).

A ``Stage`` is a featurization step: a batch transform (a Python function) whose inputs are feature views, feature
services and registered training sets and whose output is one feature view. A ``ModelStage`` is a model version
whose predictions are written to a view: predictions become features, with the model version as their lineage.
Both are registry objects of kind ``stage``, declared in a repo like views and shown by ``plan`` / ``apply``.

Inputs are named ``kind/name`` (the lineage graph's node ids): ``feature_view/NAME`` (or a bare view name, or the
``FeatureView`` object), ``feature_service/NAME`` (or the ``FeatureService``), ``training_set/NAME`` (or the
``TrainingSet``). The DAG is not declared: it is what the stages' inputs and outputs say (``skewless.stages.dag``).

A featurization stage's function is not stored in the registry (it is a batch job, not a pure row function):
its name and a hash of its normalised source are, so a changed function is a changed definition (``plan`` shows
it, and the stage is stale), and ``run`` calls the repo's function only when its hash is the registry's.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from ..definitions import FeatureService, FeatureView, _tags, check_name
from ..errors import DefinitionError
from ..splits import NAMES as SPLIT_NAMES
from ..training_sets import TrainingSet
from ..transforms.purity import source_of

KIND = "stage"
INPUT_KINDS = ("feature_view", "feature_service", "training_set")


def _input(item: Any, stage: str) -> str:
    if isinstance(item, FeatureView):
        if getattr(item, "is_label", False):
            raise DefinitionError(f"stage {stage!r}: label view {item.name!r} cannot be an input (labels are not "
                                  "features; a stage fit on labels takes the training set holding them)")
        return f"feature_view/{item.name}"
    if isinstance(item, FeatureService):
        return f"feature_service/{item.name}"
    if isinstance(item, TrainingSet):
        return f"training_set/{item.name}"
    if isinstance(item, str) and item:
        kind, sep, name = item.rpartition("/")
        kind = kind if sep else "feature_view"
        if kind not in INPUT_KINDS:
            raise DefinitionError(f"stage {stage!r}: input {item!r}: inputs are {', '.join(k + '/NAME' for k in INPUT_KINDS)}")
        check_name(f"stage {stage!r} input", name)
        return f"{kind}/{name}"
    raise DefinitionError(f"stage {stage!r}: an input must be a FeatureView, FeatureService, TrainingSet or "
                          f"'kind/name', not {type(item).__name__}")


def _output(output: Any, stage: str) -> str:
    if isinstance(output, FeatureView):
        if getattr(output, "is_label", False):
            raise DefinitionError(f"stage {stage!r}: its output {output.name!r} is a label view; a stage writes "
                                  "features")
        return output.name
    if isinstance(output, str):
        return check_name(f"stage {stage!r} output", output.removeprefix("feature_view/"))
    raise DefinitionError(f"stage {stage!r}: output must be a FeatureView (or its name), not {type(output).__name__}")


class StageBase:
    kind = KIND
    type = ""

    def __init__(self, name: str, *, inputs: Sequence[Any], output: Any, entities: str | None = None,
                 fit_split: str | None = None, owner: str = "", tags: dict[str, str] | None = None,
                 description: str = ""):
        self.name = check_name("stage", name)
        if isinstance(inputs, (str, FeatureView, FeatureService, TrainingSet)):
            inputs = [inputs]
        self.inputs = [_input(i, name) for i in inputs or ()]
        if not self.inputs:
            raise DefinitionError(f"stage {name!r}: declare its inputs (views, services or training sets): the DAG "
                                  "is inferred from them")
        if len(set(self.inputs)) != len(self.inputs):
            raise DefinitionError(f"stage {name!r}: an input is listed twice")
        self.output = _output(output, name)
        if f"feature_view/{self.output}" in self.inputs:
            raise DefinitionError(f"stage {name!r} reads its own output view {self.output!r} (a cycle)")
        if entities is not None and (not isinstance(entities, str) or not entities.strip()):
            raise DefinitionError(f"stage {name!r}: entities must be a Parquet path or glob, or a SQL query")
        if fit_split is not None and fit_split not in SPLIT_NAMES:
            raise DefinitionError(f"stage {name!r}: fit_split must be one of {list(SPLIT_NAMES)}, not {fit_split!r}")
        self.entities, self.fit_split = entities, fit_split
        self.owner, self.description = owner, description
        self.tags = _tags(tags, f"stage {name!r}")

    def input_names(self, kind: str) -> list[str]:
        return [i.split("/", 1)[1] for i in self.inputs if i.startswith(kind + "/")]

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type, "inputs": self.inputs, "output": self.output,
             "owner": self.owner, "tags": self.tags, "description": self.description}
        if self.entities is not None:
            d["entities"] = self.entities
        if self.fit_split is not None:
            d["fit_split"] = self.fit_split
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StageBase":
        """Either type, by its spec (the registry's reader of kind ``stage``)."""
        return (ModelStage if d.get("type") == "model" else Stage).from_dict(d)

    def _common(self, d: dict) -> None:
        self.name, self.inputs, self.output = d["name"], list(d["inputs"]), d["output"]
        self.entities, self.fit_split = d.get("entities"), d.get("fit_split")
        self.owner, self.tags, self.description = d.get("owner", ""), d.get("tags", {}), d.get("description", "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StageBase) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((KIND, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, inputs={self.inputs}, output={self.output!r})"


class Stage(StageBase):
    """A featurization stage: ``transform(inputs)`` gets a dict input name -> data (a view: its history rows at
    the version the run reads, as a pyarrow Table; a feature service: its training set over the stage's
    ``entities``; a training set: the registered ``TrainingSet``) and returns the output view's rows (pandas or
    Arrow, as ``ingest`` takes them). ``fit_split``: when the stage learns from a training set input that was
    registered with a split, the split it was fit on (default: all its rows), for the leakage guard."""

    type = "featurization"

    def __init__(self, name: str, *, inputs: Sequence[Any], output: Any, transform: Callable[[dict], Any],
                 entities: str | None = None, fit_split: str | None = None, owner: str = "",
                 tags: dict[str, str] | None = None, description: str = ""):
        super().__init__(name, inputs=inputs, output=output, entities=entities, fit_split=fit_split, owner=owner,
                         tags=tags, description=description)
        if not callable(transform):
            raise DefinitionError(f"stage {name!r}: transform must be a function")
        self.transform = transform
        self.function = getattr(transform, "__qualname__", getattr(transform, "__name__", "")) or name
        self.hash = code_hash(transform, name)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "function": self.function, "hash": self.hash}

    @classmethod
    def from_dict(cls, d: dict) -> "Stage":
        """From a registry entry: the function is not stored (``transform`` is None; ``run`` finds it in the repo)."""
        s = cls.__new__(cls)
        s._common(d)
        s.transform, s.function, s.hash = None, d["function"], d["hash"]
        return s


class ModelStage(StageBase):
    """A model stage: version ``version`` of registered model ``model`` (None: the newest at each run) scores the
    stage's ``entities`` and its predictions are written to ``output`` (the scoring runs through the plugin table's
    ``stage`` role, ``skewless.serving.batch_score``). ``inputs``: what the model reads (its feature service or
    views), the DAG's edges. Its fit is the registered training set its model version's manifest names;
    ``fit_split``: the split of that training set the model was fit on (default: all its rows).

    The scorer, ``run_model_stage(store, stage, entities) -> rows written``, gets this object with ``version`` set to
    the version the run scores with and ``batch_id`` to the run's identity: it ingests the predictions under that
    batch id, so a run resumed after a kill writes no row twice."""

    type = "model"
    batch_id: str | None = None  # set by ``run`` for the scorer

    def __init__(self, name: str, *, model: str, inputs: Sequence[Any], output: Any, version: int | None = None,
                 entities: str | None = None, fit_split: str | None = None, owner: str = "",
                 tags: dict[str, str] | None = None, description: str = ""):
        super().__init__(name, inputs=inputs, output=output, entities=entities, fit_split=fit_split, owner=owner,
                         tags=tags, description=description)
        if not isinstance(model, str) or not model:
            raise DefinitionError(f"stage {name!r}: model must be a registered model's name")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise DefinitionError(f"stage {name!r}: version must be a model version number (1, 2, ...) or None")
        self.model, self.version = model, version

    def to_dict(self) -> dict:
        return {**super().to_dict(), "model": self.model, "version": self.version}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelStage":
        s = cls.__new__(cls)
        s._common(d)
        s.model, s.version = d["model"], d.get("version")
        return s


def code_hash(fn: Callable, name: str) -> str:
    """sha256 of the function's normalised source (formatting and comments do not count)."""
    try:
        source = source_of(fn, name)
    except DefinitionError as exc:
        raise DefinitionError(str(exc).replace("transform ", "stage ", 1)) from None
    return hashlib.sha256(source.encode()).hexdigest()

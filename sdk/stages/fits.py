"""What a stage was fit on: registered training sets (name, version) and the split of each it learned from.

A featurization stage is fit on its training-set inputs. A model stage is fit on the training set its model
version was trained on: the model version's manifest names it (``training["training_set"]``). Model versions live
in the model registry, which the serving layer owns; the core reads its records (``ModelRegistry.records()``:
plain mappings) through the plugin table's ``stage`` role, never importing serving."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import plugins
from ..errors import NotFoundError


@dataclass(frozen=True)
class Fit:
    training_set: str | None  # None: the fit is not known (``why`` says why)
    version: int | None
    split: str | None = None  # the training set's split it was fit on; None: all its rows
    why: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Fit":
        return cls(d.get("training_set"), d.get("version"), d.get("split"), d.get("why", ""))

    def __str__(self) -> str:
        if self.training_set is None:
            return self.why
        return f"training set {self.training_set!r} version {self.version}" + (
            f" (its {self.split!r} split)" if self.split else "")


def model_records(store) -> list[dict]:
    """Every model version's record (name, version, manifest as a mapping), from the model registry."""
    return plugins.load("stage", "model-registry")(store).records()


def model_version(records: list[dict], spec: dict) -> dict:
    """The record of the version a model stage uses: its pinned one, else the newest."""
    mine = [r for r in records if r["name"] == spec["model"]]
    if spec.get("version") is not None:
        mine = [r for r in mine if r["version"] == spec["version"]]
    if not mine:
        what = f"version {spec['version']} of model" if spec.get("version") is not None else "model"
        raise NotFoundError(f"stage {spec['name']!r}: {what} {spec['model']!r} is not registered")
    return max(mine, key=lambda r: r["version"])


def current(state, spec: dict, model: dict | None) -> list[Fit]:
    """The fits a run of ``spec`` makes now (``model``: the model version record, for a model stage)."""
    split = spec.get("fit_split")
    out = [Fit(ts, state.object_version("training_set", ts), split)
           for ts in (i.split("/", 1)[1] for i in spec["inputs"] if i.startswith("training_set/"))]
    if model is not None:
        ts = ((model.get("manifest") or {}).get("training") or {}).get("training_set")
        if ts and ts.get("name") and ts.get("version") is not None:
            out.append(Fit(ts["name"], ts["version"], split))
        else:
            out.append(Fit(None, None, split, f"model {model['name']!r} version {model['version']} was packaged "
                                              "without a registered training set (package_model(training_set=job) "
                                              "after job.register(name)): what it was fit on is not known"))
    return out


def of_stage(store, state, spec: dict, runs: list[dict]) -> list[Fit]:
    """Every fit whose outputs the stage's view may hold: those its recorded runs made, or (never run through
    ``skewless run``) what a run would fit now."""
    recorded = [Fit.from_dict(f) for r in runs for f in r.get("fit", [])]
    if recorded:
        return list(dict.fromkeys(recorded))
    model = None
    if spec.get("type") == "model":
        try:
            model = model_version(model_records(store), spec)
        except NotFoundError as exc:  # never run, and no version to run with: nothing says what it was fit on
            return [Fit(None, None, spec.get("fit_split"), f"{exc}, and the stage has no recorded run")]
    return current(state, spec, model)

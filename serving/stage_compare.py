"""The A/B comparison of two versions of a stage (``skewless stage compare``; docs/concepts/stages.md): their
outputs on the same entity rows (``skewless.stages.compare``) and, given a downstream model, that model batch-scored
(``batch_score.score``) on the same rows once with each version's outputs in place of the version it was packaged
on: how often its predictions agree, and with labels, its metric under each version."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skewless.errors import ValidationError
from skewless.stages.compare import agreement, compare_outputs
from skewless.stages.aliases import versions_of
from skewless.stages.runner import entity_table
from skewless.stages.versions import physical

from .batch_score import EVENT_TS, _as_table, score
from .model_registry import ModelRegistry

METRICS = ("accuracy", "auc", "mae", "rmse")


def metric(name: str, predicted: np.ndarray, labels: np.ndarray) -> float:
    """``accuracy`` (share equal), ``auc`` (ROC AUC of a score against 0/1 labels, ties counted half: the
    Mann-Whitney U over positives x negatives), ``mae``, ``rmse``."""
    if name == "accuracy":
        return float(np.mean(predicted == labels))
    if name == "auc":
        pos, neg = predicted[labels == 1].astype(float), predicted[labels == 0].astype(float)
        if not len(pos) or not len(neg):
            raise ValidationError("auc needs labels of both classes (0 and 1)")
        order = np.sort(neg)
        wins = np.searchsorted(order, pos, side="left") + 0.5 * (
            np.searchsorted(order, pos, side="right") - np.searchsorted(order, pos, side="left"))
        return float(wins.sum() / (len(pos) * len(neg)))
    err = predicted.astype(float) - labels.astype(float)
    if name == "mae":
        return float(np.mean(np.abs(err)))
    if name == "rmse":
        return float(np.sqrt(np.mean(err ** 2)))
    raise ValidationError(f"metric must be one of {', '.join(METRICS)}, not {name!r}")


def compare_stage_versions(store, stage: str, a: int | str, b: int | str, entities: Any, *,
                           model: str | None = None, model_version: int | None = None, output: str | None = None,
                           labels: str | None = None, metric_name: str = "accuracy",
                           timestamp_column: str = EVENT_TS, point_in_time: str = "event") -> dict[str, Any]:
    """Versions ``a`` and ``b`` of ``stage`` on ``entities`` (a table, a Parquet path or glob, or a query): the
    outputs' ``agreement`` per feature, and with ``model`` (a registered model reading one version of the stage's
    output view), under ``model``: its ``output`` scored with each version's outputs, their
    agreement, and with ``labels`` (a column of the entity rows) ``metric_name`` under each version. ``output``
    defaults to ``prediction`` (a classifier's class), else the model's first output."""
    if metric_name not in METRICS:
        raise ValidationError(f"metric must be one of {', '.join(METRICS)}, not {metric_name!r}")
    if labels is not None and model is None:
        raise ValidationError("labels score a downstream model: give model= too")
    rows = _as_table(entity_table(store, entities))  # one Arrow table: both reads and the labels see the same rows
    if labels is not None and labels not in rows.column_names:
        raise ValidationError(f"labels: the entity rows have no column {labels!r}")
    report = compare_outputs(store, stage, a, b, rows, timestamp_column=timestamp_column, point_in_time=point_in_time)
    if model is None:
        return report
    mv = ModelRegistry(store).get(model, model_version)
    m = mv.manifest
    versions, view = versions_of(store._registry_state(), stage)
    mine = sorted(set(m.feature_views) & {physical(view, v) for v in versions})
    if not mine:
        raise ValidationError(f"model {model!r} version {mv.version} reads no version of stage {stage!r}'s view "
                              f"{view!r} (it reads {sorted(m.feature_views)}): nothing to compare downstream")
    names = [o["name"] for o in m.outputs]
    output = output or ("prediction" if "prediction" in names else names[0])
    if output not in names:
        raise ValidationError(f"model {model!r} has no output {output!r}; it has {names}")
    predicted = {}
    for side in ("a", "b"):
        target = report[side]["view"]
        result = score(store, model, rows, version=mv.version, timestamp_column=timestamp_column,
                       point_in_time=point_in_time, read_views={v: target for v in mine if v != target})
        predicted[side] = result.table.column(f"output__{output}")
    down: dict[str, Any] = {"model": model, "version": mv.version, "reads": mine, "output": output,
                            "agreement": agreement(predicted["a"], predicted["b"])}
    if labels is not None:
        truth = rows.column(labels).to_numpy()
        down["metric"] = metric_name
        for side in ("a", "b"):
            got = pc.fill_null(predicted[side], np.nan) if pa.types.is_floating(predicted[side].type) \
                else predicted[side]
            down[side] = metric(metric_name, np.asarray(got.to_numpy(zero_copy_only=False)), truth)
    report["model"] = down
    return report

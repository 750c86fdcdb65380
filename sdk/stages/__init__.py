"""Pipelines of stages (docs/concepts/stages.md): ``Stage`` (a batch transform writing a view) and ``ModelStage``
(a model version whose predictions are written to a view), the DAG their inputs and outputs make (``dag``),
``run`` (a stage and whatever upstream is stale, resumable and idempotent: ``runner``, ``records``) and the
leakage guard of split training sets (``leakage``)."""

from .definition import ModelStage, Stage
from .runner import StageRun, run

__all__ = ["ModelStage", "Stage", "StageRun", "run"]

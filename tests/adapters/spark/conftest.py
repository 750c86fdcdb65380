"""The Spark engine's tests share one SparkSession per test session (a JVM; local[2], 2 shuffle partitions, no UI):
``spark_repo`` writes a repo whose offline engine is ``spark`` with those options."""

from pathlib import Path

import yaml

import skewless as sk

# Test data is tiny: Spark's time goes to planning and compiling, not to rows. Whole-stage code generation and
# adaptive execution (a re-plan per stage) are turned off here for that reason only; they change no result.
SPARK_OPTIONS = {"master": "local[2]", "shuffle_partitions": 2,
                 "conf": {"spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false"}}


def spark_config(path: Path, offline: dict | None = None) -> None:
    """Point the repo at ``path`` at the Spark engine (its offline store kept, or ``offline`` given)."""
    cfg = path / "skewless.yaml"
    doc = yaml.safe_load(cfg.read_text())
    doc["offline"] = {**doc["offline"], **(offline or {}), "engine": "spark", "options": SPARK_OPTIONS}
    cfg.write_text(yaml.safe_dump(doc))


def spark_repo(path) -> sk.FeatureStore:
    path = Path(path)
    sk.init_repo(path)
    spark_config(path)
    return sk.FeatureStore(path)

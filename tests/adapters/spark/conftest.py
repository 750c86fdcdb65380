"""The Spark engine's tests share one SparkSession per test session (a JVM; local[2], 2 shuffle partitions, no UI):
``spark_repo`` writes a repo whose offline engine is ``spark`` with those options."""

from pathlib import Path

import yaml

import skewless as sk

SPARK_OPTIONS = {"master": "local[2]", "shuffle_partitions": 2}


def spark_config(path: Path, offline: dict | None = None) -> None:
    """Point the repo at ``path`` at the Spark engine (its offline store kept, or ``offline`` given)."""
    cfg = path / "skewless.yaml"
    doc = yaml.safe_load(cfg.read_text())
    doc["offline"] = {**doc["offline"], **(offline or {}), "engine": "spark", "options": dict(SPARK_OPTIONS)}
    cfg.write_text(yaml.safe_dump(doc))


def spark_repo(path) -> sk.FeatureStore:
    path = Path(path)
    sk.init_repo(path)
    spark_config(path)
    return sk.FeatureStore(path)

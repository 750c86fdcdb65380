"""The options of the driver JVM skewless starts (adapters/spark/session.py): C1-only JIT in local mode unless
``jit: full``, the user's own Java options after ours (a later flag wins), the launcher's options only during the
launch, and the option checked."""

from __future__ import annotations

import os

import pytest

from skewless.adapters.spark import session as spark_session
from skewless.adapters.spark.session import QUICK_JIT, SparkSettings
from skewless.errors import ConfigError

from .test_spark_cds import _run


def test_a_local_driver_jvm_compiles_with_c1_only_unless_jit_full(tmp_path):
    quick = _run(tmp_path, {"class_data_sharing": False})
    assert all(o in quick["args"] for o in QUICK_JIT)
    full = _run(tmp_path, {"class_data_sharing": False, "jit": "full",
                           "conf": {"spark.driver.extraJavaOptions": "-Dskewless.test=1"}})
    assert not [a for a in full["args"] if a.startswith("-XX:TieredStopAtLevel")]
    assert "-Dskewless.test=1" in full["args"] and full["rows"] == quick["rows"]
    # the user's own flag comes after ours, so it is the one the JVM keeps
    mine = _run(tmp_path, {"class_data_sharing": False,
                           "conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=4"}})
    levels = [a for a in mine["args"] if a.startswith("-XX:TieredStopAtLevel")]
    assert levels[-1] == "-XX:TieredStopAtLevel=4" and mine["rows"] == quick["rows"]


def test_quick_jit_by_default_only_where_the_driver_jvm_is_spark():
    for master in ("local", "local[2]", "local[*]", "local[4,2]"):
        assert SparkSettings.from_options({"master": master}).quick_jit()
    for master in ("spark://host:7077", "yarn", "k8s://https://host:443", "local-cluster[2,1,1024]"):
        assert not SparkSettings.from_options({"master": master}).quick_jit()
    assert SparkSettings.from_options({"master": "yarn", "jit": "quick"}).quick_jit()
    assert not SparkSettings.from_options({"jit": "full"}).quick_jit()
    with pytest.raises(ConfigError, match="jit must be quick or full"):
        SparkSettings.from_options({"jit": "c1"})


def test_launcher_options_are_set_for_the_launch_only_and_a_users_are_kept(monkeypatch):
    monkeypatch.delenv("SPARK_LAUNCHER_OPTS", raising=False)
    with spark_session._launcher_options():
        assert os.environ["SPARK_LAUNCHER_OPTS"] == spark_session.LAUNCHER_OPTS
    assert "SPARK_LAUNCHER_OPTS" not in os.environ
    monkeypatch.setenv("SPARK_LAUNCHER_OPTS", "-Xmx64m")
    with spark_session._launcher_options():
        assert os.environ["SPARK_LAUNCHER_OPTS"] == "-Xmx64m"
    assert os.environ["SPARK_LAUNCHER_OPTS"] == "-Xmx64m"

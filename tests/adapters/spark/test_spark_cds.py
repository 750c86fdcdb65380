"""Class-data sharing for the driver JVM (adapters/spark/cds.py): the first process that starts Spark writes the
class archive at exit, the next one starts with it and gets the same answers; a truncated archive (a JVM killed
while dumping) costs the speed-up, not the start; while one process writes an archive others start without one;
the option turns it off and takes only booleans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skewless.errors import ConfigError
from skewless.adapters.spark import cds
from skewless.adapters.spark.session import SparkSettings, _java

CHILD = """
import json, sys
from skewless.adapters.spark.session import SparkSettings, session
s = session(SparkSettings.from_options(json.loads(sys.argv[1])))
args = list(s._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
rows = s.range(1000).selectExpr("id % 7 AS k").groupBy("k").count().orderBy("k").collect()
print(json.dumps({"args": args, "rows": [[r[0], r[1]] for r in rows]}))
"""


def _run(cache: Path, options: dict | None = None) -> dict:
    env = {**os.environ, "SKEWLESS_CACHE": str(cache)}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"master": "local[1]", **(options or {})})],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wait_written(base: Path, timeout: float = 120) -> None:
    """Until every JVM that was writing an archive has exited (the dump runs at JVM exit, after Python's)."""
    deadline = time.monotonic() + timeout
    while any(cds._writer_alive(t) for t in cds._pending(base, cds.key(_java()))):
        assert time.monotonic() < deadline, "the JVM writing the archive did not exit"
        time.sleep(0.5)


def test_the_archive_is_written_adopted_only_whole_and_mapped_by_the_next_process(tmp_path):
    """Three fresh processes (each a JVM start): the first asks for the archive; its archive is then cut short (a
    JVM killed while dumping: a JVM that maps one dies of SIGBUS), so the second must not adopt it but start
    without and write a new one; the third maps that one. All three answer the same."""
    expected = [[k, len(range(k, 1000, 7))] for k in range(7)]
    base = tmp_path / "spark-cds"
    first = _run(tmp_path)
    assert any(a.startswith("-XX:ArchiveClassesAtExit=") for a in first["args"]) and first["rows"] == expected
    _wait_written(base)
    (tmp,) = base.glob("*.jsa.tmp")
    assert tmp.stat().st_size > 10 << 20  # Spark's classes: tens of MB at least
    data = tmp.read_bytes()
    tmp.chmod(0o644)
    tmp.write_bytes(data[: len(data) * 9 // 10])

    second = _run(tmp_path)
    assert not [a for a in second["args"] if "SharedArchiveFile" in a]
    assert any(a.startswith("-XX:ArchiveClassesAtExit=") for a in second["args"]) and second["rows"] == expected
    assert not list(base.glob("*.jsa"))
    _wait_written(base)

    # a copy whose header is not written yet (a dump in progress) maps "cleanly" by exit code alone: refused
    (new,) = base.glob("*.jsa.tmp")
    headless = tmp_path / "headless.jsa"
    headless.write_bytes(b"\0" * 4096 + new.read_bytes()[4096:])
    assert cds._maps_cleanly(_java(), new) and not cds._maps_cleanly(_java(), headless)
    headless.unlink()

    third = _run(tmp_path)
    (final,) = base.glob("*.jsa")
    assert not list(base.glob("*.jsa.tmp")) and final.stat().st_size > 10 << 20
    assert f"-XX:SharedArchiveFile={final}" in third["args"] and third["rows"] == expected


def test_off_by_option_and_only_booleans(tmp_path):
    off = _run(tmp_path, {"class_data_sharing": False})
    assert not [a for a in off["args"] if "SharedArchive" in a or "ArchiveClassesAtExit" in a]
    assert not (tmp_path / "spark-cds").exists()
    with pytest.raises(ConfigError, match="class_data_sharing"):
        SparkSettings.from_options({"class_data_sharing": "yes"})


def test_while_one_process_writes_an_archive_others_start_without_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SKEWLESS_CACHE", str(tmp_path))
    java = _java()
    writing = cds.plan(java)
    assert writing.writing is not None and any("ArchiveClassesAtExit" in o for o in writing.options)
    writing.started(os.getpid())  # a live JVM pid: still writing
    assert cds.plan(java).options == []
    assert not list(cds.folder().glob("*.jsa"))
    # its JVM has exited: the next start adopts the archive it wrote
    dead = subprocess.Popen(["true"])
    dead.wait()
    writing.started(dead.pid)
    # what it left is no archive (a dump whose header is not written yet): a JVM ignores it and exits 0, but it
    # must not be adopted; it is deleted and this start writes a new one
    writing.writing.write_bytes(b"\0" * 4096)
    again = cds.plan(java)
    assert any("ArchiveClassesAtExit" in o for o in again.options)
    assert not list(cds.folder().glob("*.jsa")) and not writing.writing.exists()
    assert cds.adopt(java) is None  # nothing finished to adopt (the new writer is this live process)

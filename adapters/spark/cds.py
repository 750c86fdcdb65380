"""Class-data sharing (AppCDS) for the driver JVM that the Spark engine starts.

Why: a fresh process's first Spark call spends most of its time starting the JVM and loading Spark's classes (tens
of thousands, parsed and verified from ~250 jars) before any data is read; that is the whole difference between a
scheduled job's first call and a warm one (docs/engines/spark.md, "first call"). Java 13+ can dump the classes a
run loaded into an archive at exit (``-XX:ArchiveClassesAtExit``) and map it at the next start
(``-XX:SharedArchiveFile``), so later processes skip the parsing and verification.

How: the first process that starts Spark on a machine (per Java, pyspark and classpath: ``key``) asks its JVM to
write ``<key>.<pid>.jsa.tmp`` in ``cache_dir()/spark-cds`` at exit and records the JVM's pid beside it. A later
process adopts a temporary archive whose JVM has exited (renamed to ``<key>.jsa``, atomically) and starts with it.
A JVM killed while dumping leaves a truncated file, and a JVM that maps a truncated archive dies (SIGBUS), whatever
``-Xshare:auto`` says: so a temporary archive is adopted only after ``java -XX:SharedArchiveFile=it -version`` exits
cleanly, every region mapped and relocated (once per machine, ~0.2 s), and deleted otherwise
(tests/adapters/spark/test_spark_cds.py truncates one, and one whose header is not written yet).
While one process is writing an archive, others start without one.

Only when skewless starts the JVM itself (not under ``spark-submit``, e.g. on EMR, where the JVM already runs).
Off with the engine option ``class_data_sharing: false``. The archive takes ~160 MB of disk per key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from skewless.process import cache_dir, pid_alive

QUIET = ["-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]  # signed jars are skipped with a warning each


def folder() -> Path:
    return cache_dir() / "spark-cds"


def key(java: str) -> str:
    """What an archive is valid for: the Java binary, pyspark's version and its jars (the JVM's classpath)."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    h = hashlib.sha256()
    real = os.path.realpath(java)
    h.update(f"{real}:{os.stat(real).st_mtime_ns}:{pyspark.__version__}:{sys.version_info[:2]}".encode())
    for jar in sorted(jars.glob("*.jar")) if jars.is_dir() else ():
        h.update(jar.name.encode())
    return h.hexdigest()[:16]


class Plan:
    """The JVM options for this start, and what to record once the JVM runs (``started``)."""

    def __init__(self, options: list[str], writing: Path | None = None):
        self.options, self.writing = options, writing

    def started(self, jvm_pid: int) -> None:
        """The JVM that will write ``writing`` at exit is ``jvm_pid``: others adopt the file once it has exited."""
        if self.writing is not None:
            self.writing.with_suffix(".pid").write_text(str(jvm_pid))


def plan(java: str) -> Plan:
    """The options for a JVM about to start: use the archive, or write one at exit, or neither (another process
    is writing it). Any file-system trouble means no archive, never a failed start."""
    try:
        return _plan(java)
    except OSError:
        return Plan([])


@contextlib.contextmanager
def _locked(java: str):
    """(folder, key, archive path) under the key's lock, a finished temporary archive adopted first."""
    base = folder()
    base.mkdir(parents=True, exist_ok=True)
    k = key(java)
    final = base / f"{k}.jsa"
    with open(base / f"{k}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not final.exists():
            _adopt(java, base, k, final)
        yield base, k, final


def _plan(java: str) -> Plan:
    with _locked(java) as (base, k, final):
        if final.exists():
            return Plan([f"-XX:SharedArchiveFile={final}", *QUIET])
        if any(_writer_alive(t) for t in _pending(base, k)):
            return Plan([])
        tmp = base / f"{k}.{os.getpid()}.jsa.tmp"
        tmp.with_suffix(".pid").write_text(str(os.getpid()))  # this process until its JVM runs (started)
        return Plan([f"-XX:ArchiveClassesAtExit={tmp}", *QUIET], writing=tmp)


def adopt(java: str) -> Path | None:
    """Adopt a finished temporary archive now, without starting a JVM (what the next start would do first); the
    archive, or None when there is none yet."""
    with _locked(java) as (_, _, final):
        return final if final.exists() else None


def _pending(base: Path, k: str) -> list[Path]:
    """The temporary archives asked for (a pid file: the JVM has not written it yet) or written."""
    names = {p.name[: -len(".pid")] + ".tmp" for p in base.glob(f"{k}.*.jsa.pid")}
    names |= {t.name for t in base.glob(f"{k}.*.jsa.tmp")}
    return [base / n for n in sorted(names)]


def _writer_alive(tmp: Path) -> bool:
    """Whether the process writing ``tmp`` may still run: the recorded pid (the JVM's once it started, the Python
    process's before) is alive; with no pid file, the Python process named in the file name."""
    pid_file = tmp.with_suffix(".pid")
    try:
        return pid_alive(int(pid_file.read_text()))
    except (FileNotFoundError, ValueError):
        return pid_alive(int(tmp.name.split(".")[1]))


def _adopt(java: str, base: Path, k: str, final: Path) -> None:
    """Make the newest finished temporary archive that a JVM maps cleanly the archive; drop the others."""
    done = [t for t in _pending(base, k) if not _writer_alive(t)]
    done.sort(key=lambda t: t.stat().st_mtime if t.exists() else 0, reverse=True)
    for t in done:
        if not final.exists() and t.exists() and _maps_cleanly(java, t):
            os.replace(t, final)
        else:
            t.unlink(missing_ok=True)
        t.with_suffix(".pid").unlink(missing_ok=True)


def _maps_cleanly(java: str, archive: Path) -> bool:
    """Whether a JVM maps every region of ``archive``, relocated (so every page is read): exit 0 is not enough,
    because a JVM ignores an archive whose header is not written yet (a dump in progress writes it last) and exits
    0 without it; so the log must also say the top archive's last region (its bitmap) was mapped."""
    import tempfile

    cmd = [java, "-XX:-CreateCoredumpOnCrash", "-XX:+UnlockDiagnosticVMOptions", "-XX:ArchiveRelocationMode=1",
           f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds=info", "-version"]
    try:
        with tempfile.TemporaryDirectory(prefix="skewless-cds-") as scratch:  # a crash's hs_err log lands there
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=scratch)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0 and "Mapped dynamic region #2" in run.stdout + run.stderr

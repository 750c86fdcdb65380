"""The one SparkSession of a process, its settings, and Spark's errors as skewless errors.

A SparkSession is a JVM: it is started once per process (``session``), on the first use of the engine, and shared
by every ``SparkEngine`` of the process (Spark allows one active SparkContext per JVM). Settings that only take
effect at start (master, driver memory) come from the first engine's options. Each ``connect()`` is a ``Session``:
a job group of its own, so ``interrupt()`` from another thread cancels exactly its running query.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skewless.aggregation.sql import OVERFLOW
from skewless.errors import ConfigError, EngineError, ValidationError

_LOCK = threading.Lock()
_SESSION = None
_GROUPS = itertools.count(1)


@dataclass(frozen=True)
class SparkSettings:
    """``offline.options`` of ``engine: spark`` (docs/engines/spark.md)."""

    master: str = "local[2]"
    shuffle_partitions: int = 4
    driver_memory: str | None = None
    conf: dict = field(default_factory=dict)  # any further Spark setting, as given
    class_data_sharing: bool = True  # the driver JVM's class archive (cds.py)
    jit: str | None = None  # the driver JVM's JIT: "quick" (C1 only) | "full" (tiered); None: quick in local mode
    materialize_writes: str | None = None  # "workers" | "driver"; None: workers when the online store accepts it
    materialize_partitions: int | None = None  # parts of a materialize job written by workers (None: 2 x cores)

    KNOWN = ("master", "shuffle_partitions", "driver_memory", "conf", "memory_limit", "threads", "class_data_sharing",
             "jit", "materialize_writes", "materialize_partitions")

    @classmethod
    def from_options(cls, options: dict) -> "SparkSettings":
        unknown = set(options) - set(cls.KNOWN)
        if unknown:
            raise ConfigError(f"unknown spark engine options {sorted(unknown)} (known: {', '.join(cls.KNOWN)})")
        conf = options.get("conf") or {}
        if not isinstance(conf, dict):
            raise ConfigError("spark engine option conf must be a mapping of Spark settings")
        partitions = _count(options, "shuffle_partitions", cls.shuffle_partitions)
        cds = options.get("class_data_sharing", True)
        if not isinstance(cds, bool):
            raise ConfigError("spark engine option class_data_sharing must be true or false")
        jit = options.get("jit")
        if jit not in (None, "quick", "full"):
            raise ConfigError(f"spark engine option jit must be quick or full, not {jit!r}")
        writes = options.get("materialize_writes")
        if writes not in (None, "workers", "driver"):
            raise ConfigError(f"spark engine option materialize_writes must be workers or driver, not {writes!r}")
        return cls(str(options.get("master", cls.master)), partitions, options.get("driver_memory"),
                   {str(k): str(v) for k, v in conf.items()}, cds, jit, writes,
                   _count(options, "materialize_partitions", None))

    def quick_jit(self) -> bool:
        """Whether the driver JVM skewless starts compiles with C1 only (see ``QUICK_JIT``)."""
        return self.jit == "quick" if self.jit is not None else _local(self.master)


def _count(options: dict, name: str, default: int | None) -> int | None:
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) < 1:
        raise ConfigError(f"spark engine option {name} must be an integer >= 1, not {value!r}")
    return int(value)


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def _local(master: str) -> bool:
    """Whether ``master`` runs Spark inside the driver JVM: ``local``, ``local[N]``, ``local[*]``, ``local[N,F]``."""
    return master == "local" or master.startswith("local[")


# The driver JVM's JIT in local mode, where that JVM is the whole of Spark and lives as long as one Python process:
# C1 only. Java's default (tiered: C1, then C2 for hot code) spends more CPU compiling in a fresh process's first
# minute than Spark spends on the rows of a training set of 100k entity rows (bench/spark_bench.py: the C2 compiler
# thread alone took ~7 s of ~22 s of JVM CPU on 2 cores; first call, median 13.0 s against 9.3 s with C1); C1's code
# was as fast on this engine's queries up to 10M entity rows (docs/engines/spark.md, "A process's first call").
# ``jit: full`` restores Java's default, e.g. for a long-lived local session; under spark-submit or on a cluster's
# executors nothing changes.
QUICK_JIT = ["-XX:TieredStopAtLevel=1"]
# spark-submit first runs a small Java program (org.apache.spark.launcher.Main) that only prints the driver's command
# line: a JVM that needs neither C2 nor a parallel collector (~0.1-0.2 s less). An existing setting is kept.
LAUNCHER_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@contextlib.contextmanager
def _launcher_options():
    """``SPARK_LAUNCHER_OPTS`` (read by pyspark's bin/spark-class) for the launch only, unless the user set it."""
    if "SPARK_LAUNCHER_OPTS" in os.environ:
        yield
        return
    os.environ["SPARK_LAUNCHER_OPTS"] = LAUNCHER_OPTS
    try:
        yield
    finally:
        os.environ.pop("SPARK_LAUNCHER_OPTS", None)


def session(settings: SparkSettings):
    """The process's SparkSession, started on first use with ``settings``."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            return _SESSION
        if _java() is None:
            raise ConfigError("the spark engine needs Java 17 or later (java on PATH or JAVA_HOME); on Debian: "
                              "apt-get install openjdk-17-jre-headless")
        from pyspark.sql import SparkSession

        # Python workers (materialize's writes from executors) run this interpreter, so they import the same
        # skewless and its dependencies; a cluster's own setting is kept.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

        local_dir = tempfile.mkdtemp(prefix="skewless-spark-")
        conf = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.log.level": "ERROR",
            "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
            # Instants are compared and returned in UTC, as every engine does; written as Parquet TIMESTAMP_MICROS
            # (UTC-adjusted), which pyarrow reads back as timestamp[us, tz=UTC].
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.local.dir": local_dir,
            **({"spark.driver.memory": settings.driver_memory} if settings.driver_memory else {}),
            **settings.conf,
        }
        cds_plan, options = None, []
        starts_jvm = not os.environ.get("PYSPARK_GATEWAY_PORT")  # not under spark-submit: we start the JVM
        if starts_jvm and settings.class_data_sharing:
            from . import cds

            cds_plan = cds.plan(_java())
            options += cds_plan.options
        if starts_jvm and settings.quick_jit():
            options += QUICK_JIT
        if options:  # the user's own options last: for the JVM, a later flag wins
            conf["spark.driver.extraJavaOptions"] = " ".join(
                [*options, conf.get("spark.driver.extraJavaOptions", "")]).strip()
        builder = SparkSession.builder.master(settings.master).appName("skewless")
        for k, v in conf.items():
            builder = builder.config(k, v)
        try:
            with _launcher_options():
                _SESSION = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - the JVM did not start: say why, typed
            raise EngineError(f"the spark engine could not start Spark ({str(exc).splitlines()[0][:300]})") from exc
        if cds_plan is not None and cds_plan.writing is not None:
            cds_plan.started(int(_SESSION._jvm.java.lang.ProcessHandle.current().pid()))
        return _SESSION


def unique_name(prefix: str) -> str:
    """A name for a temporary view of the shared session, unique in it."""
    return f"__skewless_{prefix}_{os.getpid()}_{next(_GROUPS)}"


def stream_parts(parts: list[str], schema: pa.Schema, batch_rows: int, folder: str | None = None
                 ) -> Iterator[pa.RecordBatch]:
    """The rows of Spark's part files, in file order, as batches of ``schema`` (names as Spark wrote them are
    matched by position); ``folder`` is removed once read (or abandoned)."""
    try:
        for path in parts:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                yield pa.RecordBatch.from_arrays([c.cast(f.type) for c, f in zip(batch.columns, schema)],
                                                 schema=schema)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class Session:
    """What ``SparkEngine.connect`` hands out: a job group of its own, so another thread can cancel its query."""

    def __init__(self, spark):
        self.spark = spark
        self.group = f"skewless-{os.getpid()}-{next(_GROUPS)}"

    def bind(self) -> None:
        """Run this thread's next Spark jobs in this session's group (pyspark pins Python threads to JVM threads)."""
        self.spark.sparkContext.setJobGroup(self.group, "skewless", interruptOnCancel=True)

    def interrupt(self) -> None:
        self.spark.sparkContext.cancelJobGroup(self.group)

    def close(self) -> None:
        pass


def run_spark(fn, what: str):
    """``fn()``, with Spark's errors as skewless errors: the aggregation overflow the query raises by name is a
    ValidationError (as on every engine), anything else an EngineError naming ``what``."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        return fn()
    except PySparkException as exc:
        message = str(exc)
        if OVERFLOW in message:
            raise ValidationError(message.split(OVERFLOW, 1)[1].splitlines()[0].split(" SQLSTATE")[0]) from exc
        raise EngineError(f"{what}: Spark failed: {(message.splitlines() or [type(exc).__name__])[0][:500]}") from exc
    except Py4JError as exc:
        raise EngineError(f"{what}: Spark is not answering ({str(exc).splitlines()[0][:300]})") from exc

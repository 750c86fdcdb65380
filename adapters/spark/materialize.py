"""Materialize written from Spark's executors (``SparkEngine.write_latest``; the job's bookkeeping is the core's
``materialize_parts``).

The winners query (``latest_per_entity`` without its global sort) gets a part column, ``pmod(hash(join keys), N)``,
and is repartitioned into N by the join keys: Spark's hash partitioning is that same expression (Murmur3, seed 42),
so partition ``p`` holds exactly the rows of part ``p`` (each task checks it, and fails rather than mislabel a part).
Parts a previous run finished are filtered out before the shuffle, so a rerun neither shuffles nor writes them.
``mapInArrow`` runs ``_PartWriter`` per partition on an executor: it opens the online store from its configuration
(``OnlineOpener``), writes the partition's Arrow batches as they arrive with the store's ``write`` (the driver
path's call: same encoding, newest wins on the server), records the part done in the store's meta once all its rows
are written, and yields one row (part, rows). Memory is bounded by Spark's Arrow batches
(``spark.sql.execution.arrow.maxRecordsPerBatch``) on each executor; the driver collects N small rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from skewless.errors import EngineError
from skewless.faults import kill_point
from .session import Session, run_spark

PART = "__skewless_part"
RESULT = pa.schema([("part", pa.int32()), ("rows", pa.int64())])


class _PartWriter:
    """The function ``mapInArrow`` runs per partition (pickled to the executors: everything it needs is here)."""

    def __init__(self, view, schema: pa.Schema, online, skip: set[int], part_meta: str):
        self.view, self.schema, self.online, self.skip, self.part_meta = view, schema, online, skip, part_meta

    def __call__(self, batches):
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        if part in self.skip:  # finished by an earlier run: filtered out before the shuffle, nothing to do
            for _ in batches:
                pass
            return
        store, rows = self.online.open(), 0
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if not pc.all(pc.equal(batch.column(PART), part)).as_py():
                    raise EngineError(f"materialize {self.view.name!r}: Spark partition {part} holds rows of "
                                      f"another part (its hash partitioning is not pmod(hash(keys), N))")
                cols = [c.cast(f.type) for c, f in zip(batch.columns, self.schema)]  # by position, as Spark named
                rows += store.write(self.view, pa.Table.from_arrays(cols, schema=self.schema))
                kill_point(f"materialize.worker_part.{part}")
            store.set_meta(f"{self.part_meta}{part}", str(rows))
        finally:
            store.close()
        yield pa.RecordBatch.from_arrays([pa.array([part], pa.int32()), pa.array([rows], pa.int64())],
                                         schema=RESULT)


def write_parts(engine, view, sql: str, schema: pa.Schema, online, parts: int, skip: set[int], part_meta: str
                ) -> dict[int, int]:
    """Run ``sql`` (the winners, Spark SQL) and write its rows from the executors in ``parts`` parts, leaving out
    ``skip``; the rows written per part."""
    from pyspark.sql import functions as F

    spark = engine.spark
    keys = ["`" + k.replace("`", "``") + "`" for k in view.join_keys]  # Spark's quoting, in expressions and col()
    frame = spark.sql(sql).withColumn(PART, F.expr(f"pmod(hash({', '.join(keys)}), {int(parts)})"))
    if skip:
        frame = frame.where(~F.col(PART).isin(sorted(skip)))
    writer = _PartWriter(view, schema, online, set(skip), part_meta)
    out = frame.repartition(int(parts), *(F.col(k) for k in keys)).mapInArrow(writer, "part INT, rows BIGINT")
    con = Session(spark)

    def run():
        con.bind()
        return out.collect()
    try:
        got = run_spark(run, f"materialize {view.name!r} from the executors")
    except KeyboardInterrupt:  # stop the executors' writes too, not only this thread's wait
        con.interrupt()
        raise
    return {int(r["part"]): int(r["rows"]) for r in got}

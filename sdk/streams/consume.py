"""Consuming a stream into a feature view, exactly once across crashes.

Each micro-batch (at most ``max_records`` records, or what arrived within ``max_seconds`` of its first record: the
latency bound) goes through ingest's write path:

1. validation as ``ingest`` (``ingest.prepare``); a record that fails it, or could not be decoded, goes to the
   dead-letter location with its error (``deadletter.py``) and the rest of the batch goes on;
2. the online "pending" marker (ingest's), then ONE offline append whose commit also records, per shard, the
   position of the last record read (``StreamProgress``: a Delta app transaction + commit metadata), conditional
   on the consumer's previous micro-batch being the newest it committed;
3. the online push (newest-wins upserts, or an aggregated view's tiles: ``materialize.push_batch``, as ingest), then
   the marker is cleared.

On start the consumer resumes from the positions of its last committed micro-batch and first re-pushes online
what a crash left pending (``materialize.repair_pending``). A crash before the commit re-reads the same records
(nothing of them was committed); after it, they are not read again and the push is repaired; a replayed online
push writes the same values (idempotent). So the offline history and the online store hold every event once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from .. import ingest as ingest_mod
from .. import materialize as mat
from .. import statistics as stats_mod
from ..aggregation import AggregatedView
from ..aggregation.maintain import check_store
from ..errors import StoreUnavailable, ValidationError
from ..faults import kill_point
from ..offline.base import NO_TIES, StreamProgress
from ..timeutil import new_batch_id, now as utc_now
from .deadletter import DeadLetter
from .source import StreamRecord, StreamSource


@dataclass
class StreamStats:
    """What ``consume`` did: micro-batches committed, rows appended, records dead-lettered, last version."""

    batches: int = 0
    rows: int = 0
    dead_lettered: int = 0
    version: int | None = None
    compactions: int = 0
    positions: dict[str, str] = field(default_factory=dict)


class _Pending:
    """Records read since the last commit: good ones (with their shard and position) and the newest positions."""

    def __init__(self, positions: dict[str, str]):
        self.values: list[dict] = []
        self.tables: list[pa.Table] = []
        self.table_shards: list[str] = []
        self.where: list[tuple[str, str]] = []  # (shard, position) of each value, for the dead-letter
        self.bad: list[tuple[str, StreamRecord]] = []
        self.positions = dict(positions)
        self.first_at: float | None = None

    def __len__(self) -> int:
        return len(self.values) + sum(t.num_rows for t in self.tables) + len(self.bad)


def consume(ctx, view_name: str, source: StreamSource, *, consumer: str, dead_letter: DeadLetter,
            max_records: int = 10_000, max_seconds: float = 1.0, poll_seconds: float = 0.2,
            until_caught_up: bool = False, max_batches: int | None = None, stop=None,
            compact_every: int | None = 500) -> StreamStats:
    """Consume ``source`` into ``view_name`` (see the module docstring). Runs until ``stop()`` is true, ``max_batches``
    micro-batches are committed, or, with ``until_caught_up``, every shard returns nothing new. Every
    ``compact_every`` micro-batches (None: never) the history is compacted (``OfflineStore.compact``)."""
    view = ctx._registry_state(fresh=True).get("feature_view", view_name)
    if view.online and isinstance(view, AggregatedView):
        check_store(ctx, view)
    if view.online:
        mat.repair_pending(ctx, [view])
    done = ctx.offline.stream_progress(view.name, consumer)
    seq = done.seq if done else 0
    stats = StreamStats(positions=dict(done.positions) if done else {})
    pending = _Pending(stats.positions)
    per_read = max(1, min(max_records, 10_000))
    pusher = _Pusher()
    try:
        _loop(ctx, view, source, consumer, dead_letter, stats, pending, seq, pusher, max_records=max_records,
              max_seconds=max_seconds, poll_seconds=poll_seconds, until_caught_up=until_caught_up,
              max_batches=max_batches, stop=stop, compact_every=compact_every, per_read=per_read)
    except BaseException:
        pusher.wait(raise_error=False)  # the error that stopped the loop is the one reported
        raise
    pusher.wait()  # the last micro-batch's push finishes (or raises) before consume returns
    return stats


def _loop(ctx, view, source, consumer, dead_letter, stats, pending, seq, pusher, *, max_records, max_seconds,
          poll_seconds, until_caught_up, max_batches, stop, compact_every, per_read) -> None:
    while True:
        shards = source.shards()
        got_any = False
        for shard in shards:
            room = max_records - len(pending)
            if room <= 0:
                break
            batch = _read(source, shard, pending.positions.get(shard), min(room, per_read))
            if len(batch.records):
                got_any = True
                pending.first_at = pending.first_at or time.monotonic()
                _take(pending, shard, batch.records)
            if batch.next_position is not None:
                pending.positions[shard] = batch.next_position
        full = len(pending) >= max_records
        late = pending.first_at is not None and time.monotonic() - pending.first_at >= max_seconds
        idle = not got_any
        if len(pending) and (full or late or idle):
            before = stats.batches
            pusher.wait()  # the previous micro-batch is online (its marker cleared) before the next one commits
            seq = _commit(ctx, view, pending, seq, consumer, dead_letter, stats, pusher)
            pending = _Pending(pending.positions)
            if compact_every and stats.batches > before and stats.batches % compact_every == 0:
                pusher.wait()
                ctx.offline.compact(view.name)  # small files from micro-batches: one rewrite, old versions kept
                stats.compactions += 1
        if (max_batches is not None and stats.batches >= max_batches) or (stop is not None and stop()):
            break
        if idle and not len(pending):
            if until_caught_up:
                break
            time.sleep(poll_seconds)
    stats.positions = dict(pending.positions)


class _Pusher:
    """A micro-batch's online push, run in a thread while the consumer reads and validates the next micro-batch
    (the push waits on the online store's socket, the reading on the stream and Python: the two overlap). At most
    one push runs; ``wait`` is called before the next commit and before ``consume`` returns, so micro-batches still
    reach the online store in commit order and a push's error surfaces at the latest there. A crash while a push
    runs leaves its pending marker set: the restart re-pushes it, as after a crash of an inline push."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, push) -> None:
        def run():
            try:
                push()
            except BaseException as exc:  # re-raised in the consumer's thread by wait()
                self._error = exc

        self._thread = threading.Thread(target=run, name="skewless-stream-push", daemon=True)
        self._thread.start()

    def wait(self, raise_error: bool = True) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error


def _read(source: StreamSource, shard: str, after: str | None, n: int, attempts: int = 8):
    """One read, retried with backoff while the stream service is unreachable (then the error stands)."""
    for attempt in range(attempts):
        try:
            return source.read(shard, after, n)
        except StoreUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * 2 ** attempt, 2.0))
    raise AssertionError("unreachable")


def _take(pending: _Pending, shard: str, records) -> None:
    if isinstance(records, pa.Table):
        pending.tables.append(records)
        pending.table_shards.append(shard)
        return
    values = [r.value for r in records]
    if None not in values:  # the usual case, without a per-record branch (records/s is the consumer's bound)
        pending.values += values
        pending.where += [(shard, r.position) for r in records]
        return
    for r in records:
        if r.value is None:
            pending.bad.append((shard, r))
        else:
            pending.values.append(r.value)
            pending.where.append((shard, r.position))


def _frame(pending: _Pending) -> pa.Table | pd.DataFrame | None:
    parts: list = list(pending.tables)
    if pending.values:
        parts.append(pd.DataFrame.from_records(pending.values))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return pd.concat([p.to_pandas() if isinstance(p, pa.Table) else p for p in parts], ignore_index=True)


def _validate(view, pending: _Pending, batch: int, write_time) -> pa.Table | None:
    """The canonical rows of the good records; each record ``prepare`` rejects moves to ``pending.bad`` with its
    error (one at a time: prepare names the first bad row), so one bad record never blocks the others."""
    while True:
        data = _frame(pending)
        if data is None:
            return None
        try:
            return ingest_mod.prepare(view, data, batch=batch, write_time=write_time)
        except ValidationError as exc:
            row = exc.row if exc.row is not None and 0 <= exc.row < len(data) else None
            n_table = sum(t.num_rows for t in pending.tables)
            if row is None or row < n_table:
                # No single row to blame (or a bulk-decoded table's row): validate record by record instead.
                return _validate_each(view, pending, batch, write_time)
            i = row - n_table
            shard, position = pending.where.pop(i)
            value = pending.values.pop(i)
            pending.bad.append((shard, StreamRecord(position, value, error=f"ValidationError: {exc}")))


def _validate_each(view, pending: _Pending, batch: int, write_time) -> pa.Table | None:
    """Record by record (a bulk table's rows too: they carry no position of their own, named "bulk")."""
    values = [v for t in pending.tables for v in t.to_pylist()] + pending.values
    where = [(shard, "bulk") for shard, t in zip(pending.table_shards, pending.tables) for _ in range(t.num_rows)]
    where += pending.where
    pending.values, pending.where, pending.tables, pending.table_shards = [], [], [], []
    for value, (shard, position) in zip(values, where):
        try:
            ingest_mod.prepare(view, pd.DataFrame.from_records([value]), batch=batch, write_time=write_time)
        except ValidationError as exc:
            pending.bad.append((shard, StreamRecord(position, value, error=f"ValidationError: {exc}")))
            continue
        pending.values.append(value)
        pending.where.append((shard, position))
    if not pending.values:
        return None
    return ingest_mod.prepare(view, pd.DataFrame.from_records(pending.values), batch=batch, write_time=write_time)


def _commit(ctx, view, pending: _Pending, seq: int, consumer: str, dead_letter: DeadLetter,
            stats: StreamStats, pusher: _Pusher) -> int:
    batch, write_time = new_batch_id(), utc_now()
    rows = _validate(view, pending, batch, write_time)
    if pending.bad:  # before the commit: a crash after it must not lose them (the files are keyed: replay-safe)
        dead_letter.write(view.name, pending.bad)
        stats.dead_lettered += len(pending.bad)
    if rows is None:
        # Only bad records: nothing to append; their positions ride with the next commit (a replay after a crash
        # rewrites the same dead-letter files).
        return seq
    if view.online:
        ingest_mod.mark_pending(ctx.online, view.name, batch)
    kill_point("stream.before_offline_commit")
    progress = StreamProgress(consumer, seq + 1, dict(pending.positions))
    version = ctx.offline.append(
        view.name, rows, batch=batch, progress=progress, **stats_mod.append_options(ctx, view, rows),
        tie_check=lambda new, prior: NO_TIES if new.num_rows == 0 else ctx.engine.tie_level(view, new, prior),
        history_stats=lambda prior: ctx.engine.packing_stats(view, prior))
    kill_point("stream.after_offline_commit")
    if view.online:
        def push():
            mat.push_batch(ctx, view, rows, batch, version, point="stream.online_chunk")
            ctx.online.set_meta(ingest_mod.pending_key(view.name, batch), None)
        pusher.start(push)
    stats.batches += 1
    stats.rows += rows.num_rows
    stats.version = version
    return seq + 1

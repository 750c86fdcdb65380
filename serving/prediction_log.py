"""The prediction log (evaluation store): every prediction, appended in batches to the offline store as the
history of a feature view, so training-set retrieval joins it like any other view (audit, replay, retraining).

One row per predicted entity row:

    <request keys>                the view's join keys (the entities every request names)
    event_timestamp               the time the features were read at (the `now` of the online read)
    request_id, request_row, model_name, model_version
    <derived keys>                join keys read from a key lookup (e.g. zipcode), as plain columns
    <view>__event_timestamp, <view>__status     per feature view read
    <view>__<feature>             each feature value the model got
    request__<field>              each request-time value
    output__<name>                each model output

Because ``event_timestamp`` is the read time, replaying a logged row through ``get_historical_features`` at that
time must give the logged feature values (the spec's invariant), which is what the replay check does.

Writes are asynchronous (a writer thread, so the request path only appends Python lists) and batched (one Delta
commit per flush), through a journal on local disk so each row is committed exactly once (see
``PredictionLogWriter``). A row that cannot be written goes to a dead-letter file and never blocks the others.
``close`` commits everything or leaves it journaled for the next start: losing rows on shutdown is a bug.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pyarrow as pa

from skewless import dtypes
from skewless.definitions import EVENT_TS, FeatureView
from skewless.errors import ConfigError, DefinitionError
from skewless.ingest import prepare
from skewless.offline.scan import plain_types
from skewless.timeutil import new_batch_id

from . import journal
from .artifact import ModelManifest

log = logging.getLogger("skewless.serving")


def view_name(model: str) -> str:
    return f"predictions_{model}"


def _log_keys(m: ModelManifest) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(entities, join keys -> dtype, other key columns -> dtype) of the log view. Its entities are those of the
    views read with request keys alone; keys that come from lookups (or belong to other entities) are columns."""
    entities: list[str] = []
    join: dict[str, str] = {}
    for spec in m.feature_views.values():
        if set(spec["join_keys"]) <= set(m.request_keys):
            entities += [e for e in spec["entities"] if e not in entities]
            join.update(spec["join_keys"])
    if not join:
        raise DefinitionError(f"model {m.name!r}: no feature view is keyed by the request's keys alone, so its "
                              "prediction log has no entity to join on")
    keys = dict(m.request_keys)
    for spec in m.feature_views.values():
        keys.update(spec["join_keys"])
    return entities, join, {k: d for k, d in keys.items() if k not in join}


def pii_refs(m: ModelManifest, views: dict[str, FeatureView] | None = None) -> frozenset[str]:
    """The ``view:feature`` refs the log stores redacted or hashed: PII features (``Field(pii=True)``), unless the
    manifest's ``log_pii`` is ``keep``. Join keys are the log's identity (what replay joins on, what ``forget``
    finds a person by), so they are kept as they are even when their entity is PII."""
    if getattr(m, "log_pii", "redact") == "keep":
        return frozenset()
    views = views if views is not None else m.views()
    return frozenset(f"{v.name}:{f.name}" for v in views.values() for f in v.features if f.pii)


def columns(m: ModelManifest) -> dict[str, tuple[str, str, str]]:
    """The log's columns besides join keys and event time: name -> (dtype name, kind, what), in order. Kinds:
    meta, key, view_ts, view_status (what = view), feature (what = "view:feature"), feature_pii (a PII feature,
    stored as ``log_pii`` says: ``skewless.pii.log_value``), request, output."""
    _, _, other = _log_keys(m)
    cols = {"request_id": ("String", "meta", ""), "request_row": ("Int64", "meta", ""),
            "model_name": ("String", "meta", ""), "model_version": ("Int64", "meta", "")}
    cols.update({k: (d, "key", k) for k, d in other.items()})
    for stage in m.read_stages():
        for v, _ in stage:
            cols[f"{v.name}__event_timestamp"] = ("UnixTimestamp", "view_ts", v.name)
            cols[f"{v.name}__status"] = ("String", "view_status", v.name)
    views = m.views()
    pii = pii_refs(m, views)

    def feature(ref: str, dtype: str) -> tuple[str, str, str]:
        # a PII feature the log redacts or hashes is stored as text (<redacted> / hmac-sha256:...), of its own kind:
        # the skew monitor and a replay skip it rather than compare a stand-in with the value
        return ("String", "feature_pii", ref) if ref in pii else (dtype, "feature", ref)

    for i in m.inputs:
        src = i["source"]
        if src.startswith("request:"):
            cols[f"request__{src[8:]}"] = (i["dtype"], "request", src[8:])
        else:
            cols[src.replace(":", "__")] = feature(src, i["dtype"])
    # What the transforms read, logged even when the model does not take it: replaying a row through training-set
    # retrieval must be able to run them on the same inputs (their outputs the model takes are logged above).
    for spec in m.transforms.values():
        for ref in spec["inputs"].values():
            v, f = ref.split(":")
            dt = next(x.dtype.name for x in views[v].features if x.name == f)
            cols.setdefault(ref.replace(":", "__"), feature(ref, dt))
        for f in spec.get("request", []):
            cols.setdefault(f"request__{f['name']}", (f["dtype"], "request", f["name"]))
    for o in m.outputs:
        cols[f"output__{o['name']}"] = (o["dtype"], "output", o["name"])
    return cols


def log_view(m: ModelManifest) -> FeatureView:
    """The feature view whose history is the model's prediction log (offline only: never materialized)."""
    entities, join, _ = _log_keys(m)
    schema = [{"name": k, "dtype": d, "description": "", "tags": {}} for k, d in join.items()]
    schema += [{"name": n, "dtype": d, "description": "", "tags": {}} for n, (d, _, _) in columns(m).items()]
    return FeatureView.from_dict({
        "name": view_name(m.name), "entities": entities, "join_keys": join, "schema": schema, "source": None,
        "ttl_seconds": None, "owner": "", "online": False, "tags": {"skewless.kind": "prediction_log",
                                                                     "skewless.model": m.name},
        "description": f"Predictions of model {m.name!r}: inputs as read at serving time, outputs, request ids"})


class PredictionLogWriter:
    """Appends predictions to the log view's history from a background thread, in batches.

    Each flush goes through a journal on local disk (``spill_dir``), so a row that reached a flush is committed
    exactly once, whatever stops the process:

    1. The queued rows become a table (a row that cannot, e.g. an Int64 beyond 64 bits, goes to
       ``dead-letter.jsonl`` with its error; bisection finds it, the others go on).
    2. The table is written to ``<batch>.arrow`` (temporary name, fsync, rename): from here a restart replays it.
    3. It is appended to the history as one commit tagged with its batch id, then the journal is deleted.

    A failed append keeps the journal and retries with back-off (the delay holds at any backlog, and new rows go
    to journals meanwhile, so memory stays bounded). A journal whose append may have landed (a failed attempt, or
    one found at start) is first looked up in the history by its batch id, so a retry never commits it twice.
    ``close`` commits what it can and leaves the rest journaled (spilled): nothing is lost. Rows still in memory
    at a kill -9 (at most one flush interval) are the only ones a crash can lose.
    """

    def __init__(self, store, manifest: ModelManifest, *, flush_rows: int = 5000, flush_seconds: float = 1.0,
                 max_pending_rows: int = 500_000, max_retry_seconds: float = 5.0,
                 spill_dir: str | Path | None = None, on_event: Callable[[str, int], None] | None = None):
        self.store, self.view = store, log_view(manifest)
        self.flush_rows, self.flush_seconds, self.max_pending_rows = flush_rows, flush_seconds, max_pending_rows
        self.max_retry_seconds = max_retry_seconds
        self._types = {f.name: f.dtype.arrow for f in self.view.schema}
        self._types[EVENT_TS] = dtypes.UnixTimestamp.arrow
        self._on_event = on_event or (lambda kind, n: None)
        self._cols = self._empty()  # the queued rows, column by column (see add)
        self._pending = 0
        self._cond = threading.Condition()
        self._stop = False
        self._writing = 0  # rows taken by the writer and not yet journaled
        self._write_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.dead_lettered = 0
        self.last_error: str | None = None
        self._spool = _spool(store, spill_dir, self.view.name)
        self._base: int | None = None  # a history version at or before the next commit (None: unknown)
        self._thread = threading.Thread(target=self._run, name="skewless-prediction-log", daemon=True)
        self._thread.start()

    @property
    def spill_dir(self) -> Path:
        return self._spool.dir

    @property
    def pending(self) -> int:
        """Rows not committed yet: queued in memory, being journaled, or journaled (spilled) on disk."""
        return self._pending + self._writing + self._spool.rows

    @property
    def spilled(self) -> int:
        return self._spool.rows

    def _empty(self) -> dict[str, list]:
        return {name: [] for name in self._types}

    def add(self, chunk: dict[str, list]) -> None:
        """Queue rows given as columns (every column of the view, equal lengths). Never blocks on the store."""
        n = len(chunk[EVENT_TS])
        with self._cond:
            # Appended to the queue's columns here, a few us on the request path, rather than flattened from
            # per-request chunks by the writer: that per-value Python loop held the GIL for milliseconds each flush,
            # and every time the event loop wanted it back it waited up to a switch interval (2-9 ms responses at one
            # connection during flushes: bench/results/serving_i14_profile.md, "p99").
            for name, col in self._cols.items():
                col.extend(chunk[name])
            self._pending += n
            # Past the bound (only when even the local disk cannot take the rows: journals absorb a store outage),
            # the oldest rows go; never those just added.
            k = min(self._pending - self.max_pending_rows, self._pending - n)
            if k > 0:
                for col in self._cols.values():
                    del col[:k]
                self._pending -= k
                self.dropped += k
                self._on_event("dropped", k)
                log.error("prediction log over its bound: dropped rows", extra={"rows": k, "view": self.view.name})
            if self._pending >= self.flush_rows:
                self._cond.notify()

    def _flush_once(self) -> bool | None:
        """Journal what is queued now, then commit every journal in order: True on success, False on failure (the
        rows kept, in memory or on disk), None when there was nothing to do."""
        with self._write_lock:  # one writer at a time (the thread, or flush() at shutdown)
            with self._cond:
                cols, self._cols = self._cols, self._empty()
                self._writing, self._pending = self._pending, 0
            queued = self._writing
            try:
                if queued:
                    self._journal(cols)
            except Exception as exc:  # e.g. the local disk failed: back in front, in order
                self._failed(exc, queued, "journal")
                with self._cond:
                    for name, col in self._cols.items():  # rows added meanwhile go after them
                        cols[name].extend(col)
                    self._cols = cols
                    self._pending += queued
                return False
            finally:
                with self._cond:
                    self._writing = 0
                    self._cond.notify_all()
            if not self._spool.entries:
                return True if queued else None
            for entry in list(self._spool.entries):
                if not self._commit(entry):
                    return False
            return True

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._cond:
                if not self._stop:
                    if delay:  # backing off: only stop cuts it short, however many rows are waiting
                        self._cond.wait_for(lambda: self._stop, timeout=delay)
                    else:
                        self._cond.wait_for(lambda: self._stop or self._pending >= self.flush_rows,
                                            timeout=self.flush_seconds)
                if self._stop:
                    return  # close() writes the rest
            try:
                ok = self._flush_once()
            except Exception:  # a bug must not end the writer thread (the rows stay queued or journaled)
                log.exception("prediction log writer failed; will retry")
                ok = False
            delay = 0.0 if ok is not False else min(max(delay * 2, 0.2), self.max_retry_seconds)

    def _table(self, cols: dict[str, list], batch: int) -> pa.Table:
        table = pa.table({name: pa.array(cols[name], type=t) for name, t in self._types.items()})
        # No tie check: the table then records "ties possible", which makes retrieval take the exact path, and
        # a flush costs one commit instead of a DuckDB query plus a commit.
        return prepare(self.view, table, batch=batch, write_time=datetime.now(timezone.utc))

    def _journal(self, cols: dict[str, list]) -> None:
        batch = new_batch_id()
        try:
            rows = self._table(cols, batch)
        except Exception:  # some row cannot be a log row: find it (them), dead-letter it, keep the others
            bad: list[tuple[dict, str]] = []
            good = self._isolate(cols, list(range(len(cols[EVENT_TS]))), bad)
            self._spool.dead_letter(bad)
            self.dead_lettered += len(bad)
            self._on_event("dead_letter", len(bad))
            log.error("prediction log: rows it cannot hold moved to the dead-letter file",
                      extra={"view": self.view.name, "rows": len(bad), "error": bad[0][1],
                             "path": str(self._spool.dead_letter_path)})
            if not good:
                return
            rows = self._table({k: [v[i] for i in good] for k, v in cols.items()}, batch)
        self._spool.add(batch, rows, self._base)

    def _isolate(self, cols: dict[str, list], idx: list[int], bad: list[tuple[dict, str]]) -> list[int]:
        """The rows of ``idx`` that make a valid table; the others (row, error) appended to ``bad``. Bisection: a
        few bad rows among thousands cost a few dozen conversions, not one per row."""
        try:
            self._table({k: [v[i] for i in idx] for k, v in cols.items()}, 0)
            return idx
        except Exception as exc:
            if len(idx) > 1:
                half = len(idx) // 2
                return self._isolate(cols, idx[:half], bad) + self._isolate(cols, idx[half:], bad)
            bad.append(({k: v[idx[0]] for k, v in cols.items()}, f"{type(exc).__name__}: {exc}"))
            return []

    def _commit(self, entry: journal.Entry) -> bool:
        offline = self.store.offline
        try:
            rows = self._spool.read(entry)
            if entry.uncertain and journal.committed(offline, self.view.name, entry.batch, entry.base):
                log.info("prediction log: journal already committed", extra={"batch": entry.batch})
            else:
                entry.uncertain = True  # from here an error may come after the commit landed
                version = offline.append(self.view.name, rows, batch=entry.batch)
                self._base = version - 1  # <= the version of this commit: what the next journal may start after
        except Exception as exc:  # any failure: the journal stays, retried later (a bug here must not lose the log)
            self._failed(exc, entry.rows, "append")
            return False
        self._spool.remove(entry)
        self.written += entry.rows
        self.last_error = None
        self._on_event("written", entry.rows)
        return True

    def _failed(self, exc: BaseException, rows: int, step: str) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._on_event("failed", rows)
        log.error("prediction log flush failed; will retry", extra={"rows": rows, "step": step,
                                                                    "error": self.last_error})

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far (retrying until ``timeout``); True when it is committed."""
        deadline = time.monotonic() + timeout
        while True:
            ok = self._flush_once()
            if ok is not False and not self.pending:
                return True
            if time.monotonic() >= deadline:
                return not self.pending
            if ok is False:
                time.sleep(0.2)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the writer and commit every queued row (retrying until ``timeout``); what cannot be committed by
        then stays journaled on disk and is committed at the next start. True when nothing is lost."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        delay = 0.2
        for _ in range(4):  # a few tries, not the whole timeout: once journaled the rows are safe on disk
            if self._flush_once() is not False and not self.pending or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay *= 2
        lost = self._pending + self._writing  # rows neither committed nor on disk
        if self._spool.rows:
            log.warning("prediction log: rows spilled to disk, committed at the next start",
                        extra={"rows": self._spool.rows, "path": str(self._spool.dir), "error": self.last_error})
        if lost:
            log.error("prediction log: rows lost at shutdown", extra={"rows": lost, "error": self.last_error})
        self._spool.close()
        return not lost


def _spool(store, spill_dir: str | Path | None, view: str) -> journal.Spool:
    """The journals' folder: the option, else SKEWLESS_PREDICTION_LOG_DIR, else the repo's
    ``.skewless/prediction-log``, else (a read-only repo, e.g. a model mounted in a container) the temp folder."""
    given = spill_dir or os.environ.get("SKEWLESS_PREDICTION_LOG_DIR")
    if given:
        try:
            return journal.Spool(Path(given) / view)
        except OSError as exc:
            raise ConfigError(f"prediction log folder {given} is not writable: {exc.strerror or exc} "
                              "(SKEWLESS_PREDICTION_LOG_DIR)") from exc
    try:
        return journal.Spool(Path(store.config.repo_path) / ".skewless" / "prediction-log" / view)
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / "skewless-prediction-log" / view
        log.warning("prediction log: the repo is not writable; journals go to the temp folder",
                    extra={"path": str(fallback), "error": exc.strerror or str(exc)})
        return journal.Spool(fallback)


def read_log(store, model: str) -> pa.Table:
    """The model's whole prediction log (every committed flush), for audit and replay."""
    import pyarrow.parquet as pq

    name = view_name(model)
    files = store.offline.files(name, store.offline.version(name))
    tables = []
    for uri in files.uris:
        path = uri.removeprefix("file://") if files.filesystem is None else uri.split("://", 1)[-1]
        tables.append(plain_types(pq.read_table(path, filesystem=files.filesystem)))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")

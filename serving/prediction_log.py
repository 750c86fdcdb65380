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
commit per flush). A failed flush keeps its rows and retries with backoff; rows are dropped, and counted, only
beyond ``max_pending_rows``. ``close`` flushes everything: losing rows on a clean shutdown is a bug.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import pyarrow as pa

from skewless import dtypes
from skewless.definitions import EVENT_TS, FeatureView
from skewless.errors import DefinitionError
from skewless.ingest import prepare
from skewless.timeutil import new_batch_id

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


def columns(m: ModelManifest) -> dict[str, tuple[str, str, str]]:
    """The log's columns besides join keys and event time: name -> (dtype name, kind, what), in order. Kinds:
    meta, key, view_ts, view_status (what = view), feature (what = "view:feature"), request, output."""
    _, _, other = _log_keys(m)
    cols = {"request_id": ("String", "meta", ""), "request_row": ("Int64", "meta", ""),
            "model_name": ("String", "meta", ""), "model_version": ("Int64", "meta", "")}
    cols.update({k: (d, "key", k) for k, d in other.items()})
    for stage in m.read_stages():
        for v, _ in stage:
            cols[f"{v.name}__event_timestamp"] = ("UnixTimestamp", "view_ts", v.name)
            cols[f"{v.name}__status"] = ("String", "view_status", v.name)
    for i in m.inputs:
        src = i["source"]
        if src.startswith("request:"):
            cols[f"request__{src[8:]}"] = (i["dtype"], "request", src[8:])
        else:
            cols[src.replace(":", "__")] = (i["dtype"], "feature", src)
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
    """Appends predictions to the log view's history from a background thread, in batches."""

    def __init__(self, store, manifest: ModelManifest, *, flush_rows: int = 5000, flush_seconds: float = 1.0,
                 max_pending_rows: int = 500_000, on_event: Callable[[str, int], None] | None = None):
        self.store, self.view = store, log_view(manifest)
        self.flush_rows, self.flush_seconds, self.max_pending_rows = flush_rows, flush_seconds, max_pending_rows
        self._types = {f.name: f.dtype.arrow for f in self.view.schema}
        self._types[EVENT_TS] = dtypes.UnixTimestamp.arrow
        self._on_event = on_event or (lambda kind, n: None)
        self._chunks: collections.deque[dict[str, list]] = collections.deque()  # O(1) at both ends
        self._pending = 0
        self._cond = threading.Condition()
        self._stop = False
        self._writing = 0  # rows taken by the writer and not yet committed
        self._write_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="skewless-prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending + self._writing

    def add(self, chunk: dict[str, list]) -> None:
        """Queue rows given as columns (every column of the view, equal lengths). Never blocks on the store."""
        n = len(chunk[EVENT_TS])
        with self._cond:
            self._chunks.append(chunk)
            self._pending += n
            while self._pending > self.max_pending_rows and len(self._chunks) > 1:
                old = self._chunks.popleft()  # the store has been down too long: keep the newest rows
                k = len(old[EVENT_TS])
                self._pending -= k
                self.dropped += k
                self._on_event("dropped", k)
                log.error("prediction log over its bound: dropped rows", extra={"rows": k, "view": self.view.name})
            if self._pending >= self.flush_rows:
                self._cond.notify()

    def _flush_once(self) -> bool | None:
        """Commit what is queued now: True on success, False on failure (rows kept), None when nothing was."""
        with self._write_lock:  # one writer at a time (the thread, or flush() at shutdown)
            with self._cond:
                if not self._chunks:
                    return None
                chunks, self._chunks = list(self._chunks), collections.deque()
                self._writing, self._pending = self._pending, 0
            ok = self._write(chunks)
            with self._cond:
                if not ok:  # back in front, in order
                    self._chunks.extendleft(reversed(chunks))
                    self._pending += self._writing
                self._writing = 0
                self._cond.notify_all()
            return ok

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._cond:
                if not self._stop:
                    self._cond.wait_for(lambda: self._stop or self._pending >= self.flush_rows,
                                        timeout=max(self.flush_seconds, delay))
                if self._stop:
                    return  # close() writes the rest
            ok = self._flush_once()
            delay = 0.0 if ok is not False else min(max(delay * 2, 0.2), 5.0)

    def _write(self, chunks: list[dict[str, list]]) -> bool:
        n = sum(len(c[EVENT_TS]) for c in chunks)
        try:
            table = pa.table({name: pa.array([v for c in chunks for v in c[name]], type=t)
                              for name, t in self._types.items()})
            batch = new_batch_id()
            rows = prepare(self.view, table, batch=batch, write_time=datetime.now(timezone.utc))
            # No tie check: the table then records "ties possible", which makes retrieval take the exact path,
            # and a flush costs one commit instead of a DuckDB query plus a commit.
            self.store.offline.append(self.view.name, rows, batch=batch)
        except Exception as exc:  # any failure: keep the rows, retry later (a bug here must not lose the log)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._on_event("failed", n)
            log.error("prediction log flush failed; will retry", extra={"rows": n, "error": self.last_error})
            return False
        self.written += n
        self.last_error = None
        self._on_event("written", n)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far (retrying until ``timeout``); True when it is committed."""
        deadline = time.monotonic() + timeout
        while True:
            ok = self._flush_once()
            if ok is None and not self.pending:
                return True
            if time.monotonic() >= deadline:
                return not self.pending
            if ok is False:
                time.sleep(0.2)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the writer and commit every queued row (retrying until ``timeout``). True when nothing is lost."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        ok = self.flush(max(0.0, timeout))
        if not ok:
            log.error("prediction log: rows not written at shutdown",
                      extra={"rows": self.pending, "error": self.last_error})
        return ok


def read_log(store, model: str) -> pa.Table:
    """The model's whole prediction log (every committed flush), for audit and replay."""
    import pyarrow.parquet as pq

    name = view_name(model)
    files = store.offline.files(name, store.offline.version(name))
    tables = []
    for uri in files.uris:
        path = uri.removeprefix("file://") if files.filesystem is None else uri.split("://", 1)[-1]
        tables.append(pq.read_table(path, filesystem=files.filesystem))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")

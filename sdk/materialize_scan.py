"""Materialization's scans in a thread of their own (``ReadAhead``), ahead of the writes ``materialize`` makes in
the caller's thread: while the online store takes one chunk, the engine computes the next chunk or the next view."""

from __future__ import annotations

import threading
from collections import deque

READ_AHEAD_BYTES = 64 << 20  # scanned chunks waiting for the writer, at most


class ReadAhead:
    """Scans the views' winners in a thread of its own while the caller writes earlier rows online.

    DuckDB and the online store's socket both release the GIL, so the next chunks, and the next views, are computed
    on one core while the store takes the previous chunk on the other. Scanned chunks wait in a FIFO of at most
    ``READ_AHEAD_BYTES`` (always at least one chunk), which bounds memory: a scan is not held back by a writer still
    busy with an earlier view as long as the results fit. Items: ("rows", i, batch), ("end", i) after job i's last
    chunk, or ("error", exc); a scan error thus reaches the writer after every row scanned before it."""

    def __init__(self, ctx, jobs: list, chunk_rows: int):  # jobs: materialize._Job (view, files, start, end)
        self._ctx, self._jobs, self._chunk_rows = ctx, jobs, chunk_rows
        self._items: deque = deque()  # (item, bytes)
        self._bytes = 0
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._con = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="skewless-materialize-scan", daemon=True)

    def __enter__(self) -> "ReadAhead":
        self._thread.start()
        return self

    def _put(self, item, nbytes: int = 0) -> bool:
        with self._cv:
            while self._items and self._bytes + nbytes > READ_AHEAD_BYTES and not self._stop.is_set():
                self._cv.wait(0.1)
            if self._stop.is_set():
                return False
            self._items.append((item, nbytes))
            self._bytes += nbytes
            self._cv.notify_all()
            return True

    def _run(self) -> None:
        engine = self._ctx.engine
        try:
            for i, job in enumerate(self._jobs):
                # The first scan runs alone. Later ones overlap the writes: they leave a core to the writer (and to
                # an online store on this machine), which is the slower side of the pipeline there.
                con = engine.connect(spare_cores=1 if i else 0)
                with self._lock:
                    self._con = con
                try:
                    if self._stop.is_set():
                        return
                    for batch in engine.latest_rows(con, job.view, job.files, job.start, job.end, self._chunk_rows):
                        if not self._put(("rows", i, batch), batch.nbytes):
                            return
                finally:
                    with self._lock:
                        self._con = None
                    con.close()
                if not self._put(("end", i)):
                    return
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(("error", exc))

    def __iter__(self):
        while True:
            with self._cv:
                while not self._items:
                    if not self._thread.is_alive():  # never wait on a scan that is gone
                        raise RuntimeError("the materialize scan thread ended without a result")
                    self._cv.wait(0.5)
                item, nbytes = self._items.popleft()
                self._bytes -= nbytes
                self._cv.notify_all()
            if item[0] == "error":
                raise item[1]
            yield item

    def _interrupt(self) -> None:
        with self._lock:
            interrupt = getattr(self._con, "interrupt", None)
            if interrupt is not None:
                try:
                    interrupt()
                except Exception:  # noqa: BLE001 - the query already ended: nothing to interrupt
                    pass

    def __exit__(self, *exc) -> None:
        # Normal end or the writer failed: stop the scan, unblock it, wait for it. The running query is interrupted
        # again on every round: an interrupt that lands just before a query starts does not stop that query.
        self._stop.set()
        while self._thread.is_alive():
            self._interrupt()
            with self._cv:
                self._cv.notify_all()
            self._thread.join(0.05)
        self._items.clear()

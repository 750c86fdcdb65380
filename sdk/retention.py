"""Retention runs: per-view history retention and prediction-log retention (``skewless retention run``).

For each view with ``history_retention`` R, at time ``now``:

- versions committed before ``now - R`` are expired — except the newest version and every version a registered
  training set pins (every training set version in the registry's history: ``training_sets.pinned_snapshots``);
  the expiry is recorded in the history itself before anything is deleted, so asking for an expired version is a
  ``SnapshotExpired`` error, never a silently different rebuild;
- then the history is vacuumed with retention R, keeping the pinned versions' files: files removed (by a compaction
  or a delete) more than R ago and needed by no kept version are deleted.

Append-only histories remove no files, so a vacuum frees space only after compactions, deletes (forget, prediction
log retention) — but the expiry applies all the same: an old snapshot refuses to rebuild once past its retention.

Prediction-log retention: in every prediction-log view (a registered view tagged ``skewless.kind=prediction_log``),
rows whose event time is older than ``now - prediction_log_retention`` are deleted (one tagged Delta DELETE
commit per run and view), then purged like a ``forget``: versions before the delete expire once the view's history
retention (none: at once) allows. Pending ``forget`` purges whose time has come are completed first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import forget as forget_mod
from . import training_sets as ts_mod

LOG_KIND = "prediction_log"


@dataclass
class RetentionReport:
    """What ``FeatureStore.retention_run`` did: per view the oldest readable version, the older versions kept for
    registered training sets and the files vacuumed; prediction-log rows deleted; forget requests completed."""

    expired: dict[str, dict] = field(default_factory=dict)  # view -> {"oldest": n, "kept": [...], "files": k}
    log_rows_deleted: dict[str, int] = field(default_factory=dict)  # prediction-log view -> rows
    forgets_completed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"expired": self.expired, "log_rows_deleted": self.log_rows_deleted,
                "forgets_completed": self.forgets_completed}


def run(fs, *, views: list[str] | None = None, prediction_log_retention: timedelta | None = None,
        now: datetime | None = None, progress=None) -> RetentionReport:
    now = now or datetime.now(timezone.utc)
    say = progress or (lambda msg: None)
    state = fs._registry_state(fresh=True)
    all_views = state.list("feature_view")
    chosen = [v for v in all_views if views is None or v.name in views]
    fs.authorize("ingest", [("view", v.name) for v in chosen], state)
    report = RetentionReport()
    report.forgets_completed = forget_mod.complete_due(fs, now, say)
    if prediction_log_retention is not None:
        for v in chosen:
            if v.tags.get("skewless.kind") == LOG_KIND:
                report.log_rows_deleted[v.name] = _trim_log(fs, v, now - prediction_log_retention, now)
    pins: dict[str, set[int]] = {}
    for _name, _version, snapshot in ts_mod.pinned_snapshots(fs.registry.store):
        for view, at in snapshot.items():
            if at is not None:
                pins.setdefault(view, set()).add(at)
    for v in chosen:
        if v.history_retention is None:
            continue
        newest = fs.offline.version(v.name)
        if newest is None:
            continue
        cutoff_ms = int((now - v.history_retention).timestamp() * 1000)
        oldest = next((ver for ver, at in fs.offline.version_times(v.name) if at >= cutoff_ms), newest)
        kept = [p for p in pins.get(v.name, ()) if p < oldest]
        say(f"{v.name}: versions before {oldest} expire (kept: {sorted(kept) or 'none'})")
        files = forget_mod.expire(fs.offline, v.name, oldest=oldest, kept=kept,
                                  removed_before=now - v.history_retention)
        rec = fs.offline.expiry(v.name)
        report.expired[v.name] = {"oldest": rec[0] if rec else oldest, "kept": rec[1] if rec else kept,
                                  "files": len(files)}
    return report


def _trim_log(fs, view, before: datetime, now: datetime) -> int:
    """Delete the log rows older than ``before`` (one tagged delete per run and view), then purge as forget does."""
    tag = f"retention-{view.name}-{before.strftime('%Y%m%dT%H%M%S%f')}"
    rows, version = fs.offline.delete_before(view.name, before, tag=tag)
    if version is not None:
        forget_mod.expire(fs.offline, view.name, oldest=version, kept=[],
                          removed_before=now - (view.history_retention or timedelta(0)))
    return rows

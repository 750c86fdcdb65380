"""``forget``: erase one entity's rows (given keys) from every store skewless writes, resumably, with a report.

What is erased, per feature view whose entities include the entity (prediction-log views too: a model's log is a
registered view, tagged ``skewless.kind=prediction_log``, whose history lives in the offline store):

1. ``plan``: the views, and the registered training sets (every version in the registry's history) whose
   snapshot pins a history version holding at least one row of the keys — found before anything is deleted.
2. ``offline``: one Delta DELETE commit per view (``OfflineStore.delete_rows``), tagged with the request id, so a
   re-run finds the commit and its count instead of deleting again.
3. ``online``: the rows and the aggregation tiles of the keys (``OnlineStore.delete_entities``; idempotent).
4. ``training rows``: the leakage guard's record of each registered training set's entity rows (skewless.training_rows)
   keeps a hash of each row's join keys under a public seed, which anyone can recompute for a guessable key: the
   rows of the keys are removed from every such record (rewritten whole), one step per record. A record written
   before per-key hashes were kept, whose training set has join keys beyond the entity's, cannot tell the entity's
   rows: it is reported as not erasable (``training_rows_not_erasable``), left as it is.
5. ``purge``: older versions still hold the rows in files the delete only marked removed. Once the view's
   ``history_retention`` has passed since the delete (at once for a view without one), versions before the delete
   are recorded as expired (``SnapshotExpired`` for a snapshot asking for them) and vacuumed: the files are gone.
   Until then the purge is *pending*: a later ``forget`` of the same keys, or ``skewless retention run``, does it.

Resumable: each step done is a record in the registry store (``forget/<request>/<step>.json``, written once, as
audit records are); a re-run of the same request (the same entity and keys) skips the steps recorded and redoes
nothing (a step killed half-way is idempotent: the tagged delete is found, an online delete of gone keys deletes
nothing). The records, the report and the audit record hold a SHA-256 of the keys, never the keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from . import training_rows
from . import training_sets as ts_mod
from .definitions import Entity, FeatureView
from .errors import ConfigError, ConflictError, NotFoundError, ValidationError
from .faults import kill_point

PREFIX = "forget/"


@dataclass
class ForgetReport:
    """What ``FeatureStore.forget`` removed (``to_dict()``: the CLI's ``--json``). ``complete``: every view purged."""

    request: str  # the request id (a hash of the entity and its keys)
    entity: str
    keys: int  # how many keys were forgotten
    keys_sha256: str
    offline_rows: dict[str, int] = field(default_factory=dict)  # view -> history rows deleted
    offline_versions: dict[str, int | None] = field(default_factory=dict)  # view -> its delete commit (None: no row)
    online_entities: dict[str, int] = field(default_factory=dict)  # view -> stored rows / tile sets deleted
    training_sets: list[str] = field(default_factory=list)  # "name@version" whose snapshot held the entity
    training_rows: dict[str, int] = field(default_factory=dict)  # "name@version" -> leakage-guard rows removed
    training_rows_not_erasable: list[str] = field(default_factory=list)  # records that cannot tell the entity's rows
    purged: dict[str, str] = field(default_factory=dict)  # view -> "done" | "pending until <UTC time>"
    resumed: bool = False  # steps of an earlier run of this request were found and skipped

    @property
    def complete(self) -> bool:
        return all(v == "done" for v in self.purged.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete}


def normalise_keys(entity: Entity, keys: Sequence[Any]) -> list[tuple]:
    """Keys as tuples in the entity's join-key order: scalars (one join key), tuples, or dicts by join key."""
    out = []
    for k in keys:
        if isinstance(k, dict):
            missing = [c for c in entity.join_keys if c not in k]
            if missing:
                raise ValidationError(f"a key to forget lacks join keys {missing} of entity {entity.name!r}")
            k = tuple(k[c] for c in entity.join_keys)
        elif not isinstance(k, (tuple, list)):
            k = (k,)
        if len(k) != len(entity.join_keys):
            raise ValidationError(f"entity {entity.name!r} has join keys {entity.join_keys}; got a key {len(k)} "
                                  "values long")
        if any(v is None for v in k):
            raise ValidationError("a key to forget is null")
        out.append(tuple(v.item() if hasattr(v, "item") else v for v in k))
    if not out:
        raise ValidationError("no keys to forget")
    return list(dict.fromkeys(out))


def request_id(entity: str, keys: list[tuple]) -> tuple[str, str]:
    """(request id, SHA-256 of the keys): the same entity and keys always make the same request."""
    digest = hashlib.sha256(json.dumps(sorted(map(repr, keys))).encode()).hexdigest()
    return hashlib.sha256(f"{entity}\0{digest}".encode()).hexdigest()[:24], digest


def views_of(state, entity: str) -> list[FeatureView]:
    return [v for v in state.list("feature_view") if entity in v.entities]


class _Journal:
    def __init__(self, store, request: str):
        self.store, self.base = store, f"{PREFIX}{request}/"
        self.done = {k[len(self.base):-5]: json.loads(store.read_record(k)) for k in store.record_keys(self.base)}

    def record(self, step: str, value: dict) -> dict:
        try:
            self.store.put_record(f"{self.base}{step}.json", json.dumps(value, sort_keys=True).encode())
        except ConflictError:  # a concurrent run of the same request recorded it first: theirs stands
            value = json.loads(self.store.read_record(f"{self.base}{step}.json"))
        self.done[step] = value
        return value


def forget(fs, entity_name: str, keys: Sequence[Any], *, purge_now: bool = False, now: datetime | None = None,
           progress=None) -> ForgetReport:
    """See the module docstring. ``purge_now``: purge every view now, even before its history retention passed
    (versions before the delete then raise SnapshotExpired at once)."""
    now = now or datetime.now(timezone.utc)
    say = progress or (lambda msg: None)
    state = fs._registry_state(fresh=True)
    entity = state.get("entity", entity_name)
    tuples = normalise_keys(entity, keys)
    request, digest = request_id(entity.name, tuples)
    journal = _Journal(fs.registry.store, request)
    report = ForgetReport(request, entity.name, len(tuples), digest, resumed=bool(journal.done))
    plan = journal.done.get("plan")
    names = plan["views"] if plan is not None else [v.name for v in views_of(state, entity.name)]
    if not names:
        raise NotFoundError(f"no feature view has entity {entity.name!r}: nothing to forget")
    views = {v.name: v for v in state.list("feature_view")}
    missing = [n for n in names if n not in views]
    if missing:
        raise NotFoundError(f"views {missing} of this forget request were deleted since it started; re-run it "
                            "after re-applying them, or forget their histories by deleting the views")
    who = fs.authorize("ingest", [("view", n) for n in names], state)  # every view, before anything is done
    if not fs.offline.supports_erasure:  # refused before anything is recorded or deleted
        raise ConfigError(f"the offline store {fs.offline.url} cannot delete rows of a history: forget needs a local, "
                          "s3:// or oss:// Delta store (docs/governance.md)")
    if plan is None:
        holding, clean = _training_sets_holding(fs, [views[n] for n in names], entity, tuples)
        plan = journal.record("plan", {"views": names, "started": now.isoformat(), "training_sets": holding,
                                       "clean_pins": clean})
        kill_point("forget.planned")
    report.training_sets = plan["training_sets"]
    for name in plan["views"]:
        view = views[name]
        keyed = {c: view.join_key_dtypes[c] for c in entity.join_keys}
        step = journal.done.get(f"offline-{name}")
        if step is None:
            say(f"{name}: deleting history rows")
            # a store erasing in place expires older versions itself, keeping the pins that held none of the rows
            keep = {"keep": plan.get("clean_pins", {}).get(name, [])} if fs.offline.erases_in_place else {}
            rows, version = fs.offline.delete_rows(name, keyed, tuples, tag=request, **keep)
            kill_point("forget.offline_deleted")
            step = journal.record(f"offline-{name}", {"rows": rows, "version": version, "time": now.isoformat()})
        report.offline_rows[name], report.offline_versions[name] = step["rows"], step["version"]
        step = journal.done.get(f"online-{name}")
        if step is None:
            say(f"{name}: deleting online rows and tiles")
            try:
                gone = fs.online.delete_entities(view, list(keyed), tuples)
            except NotImplementedError as exc:
                raise ConfigError(f"the online store {fs.online.url} cannot delete entities: {exc}") from exc
            kill_point("forget.online_deleted")
            step = journal.record(f"online-{name}", {"entities": gone})
        report.online_entities[name] = step["entities"]
    _erase_training_rows(fs, journal, report, entity, {c: views[plan["views"][0]].join_key_dtypes[c].arrow
                                                       for c in entity.join_keys}, tuples, say)
    for name in plan["views"]:
        report.purged[name] = purge(fs, journal, views[name], now, force=purge_now)
    if "done" not in journal.done and report.complete:
        journal.record("done", {"time": now.isoformat()})
    if "audited" not in journal.done:
        fs.audit_log.append(who, "forget", f"entity:{entity.name}", "allowed",
                            f"request {request}: {len(tuples)} key(s) sha256 {digest[:16]}; history rows "
                            f"{sum(report.offline_rows.values())}, online {sum(report.online_entities.values())}; "
                            f"training sets {report.training_sets or 'none'}; leakage-guard rows "
                            f"{sum(report.training_rows.values())}")
        journal.record("audited", {"time": now.isoformat()})
    return report


def _erase_training_rows(fs, journal: _Journal, report: ForgetReport, entity: Entity, key_types: dict,
                         keys: list[tuple], say) -> None:
    """The training-rows steps: which records hold rows of ``keys`` (``rows-plan``, found before any is rewritten),
    then each rewritten without them (``rows-<name>@<version>``; a rewrite killed before its step was recorded is
    redone, finding nothing left to remove, and the count comes from the plan)."""
    store = fs.registry.store
    plan = journal.done.get("rows-plan")
    if plan is None:
        found: dict[str, int] = {}
        blind = []
        for name, version in training_rows.recorded(store):
            n = training_rows.erase(store, name, version, entity.join_keys, key_types, keys, dry_run=True)
            if n is None:
                blind.append(f"{name}@{version}")
            elif n:
                found[f"{name}@{version}"] = n
        plan = journal.record("rows-plan", {"records": found, "not_erasable": blind})
    for ref, n in plan["records"].items():
        if f"rows-{ref}" not in journal.done:
            say(f"training set {ref}: removing {n} leakage-guard row(s)")
            name, _, version = ref.rpartition("@")
            training_rows.erase(store, name, int(version), entity.join_keys, key_types, keys)
            kill_point("forget.training_rows_erased")
            journal.record(f"rows-{ref}", {"rows": n})
    report.training_rows = dict(plan["records"])
    report.training_rows_not_erasable = list(plan["not_erasable"])


def purge(fs, journal: _Journal, view: FeatureView, now: datetime, *, force: bool = False) -> str:
    """The purge step of one view: done, done now, or pending until the view's retention has passed."""
    if f"purge-{view.name}" in journal.done:
        return "done"
    deleted = journal.done[f"offline-{view.name}"]
    if deleted["version"] is not None and not fs.offline.erases_in_place:  # (in place: nothing left to purge)
        retention = view.history_retention or timedelta(0)
        due = datetime.fromisoformat(deleted["time"]) + retention
        if now < due and not force:
            return f"pending until {due.isoformat()}"
        # versions before the delete expire, but those a training set pins that never held the entity stay
        expire(fs.offline, view.name, oldest=deleted["version"],
               kept=journal.done["plan"].get("clean_pins", {}).get(view.name, []),
               removed_before=now if force else now - retention)
    kill_point("forget.purged")
    journal.record(f"purge-{view.name}", {"time": now.isoformat()})
    return "done"


def complete_due(fs, now: datetime, progress=None) -> list[str]:
    """Finish the pending purges of every forget request whose views' retention has passed (``retention run``).
    Returns the request ids completed."""
    say = progress or (lambda msg: None)
    store = fs.registry.store
    requests = sorted({k[len(PREFIX):].split("/", 1)[0] for k in store.record_keys(PREFIX)})
    views = {v.name: v for v in fs._registry_state(fresh=True).list("feature_view")}
    out = []
    for request in requests:
        journal = _Journal(store, request)
        if "done" in journal.done or "plan" not in journal.done:
            continue
        names = [n for n in journal.done["plan"]["views"] if n in views and f"offline-{n}" in journal.done]
        states = [purge(fs, journal, views[n], now) for n in names]
        if len(names) == len(journal.done["plan"]["views"]) and all(s == "done" for s in states):
            journal.record("done", {"time": now.isoformat()})
            say(f"forget request {request}: purge complete")
            out.append(request)
    return out


def expire(offline, view: str, *, oldest: int, kept: list[int], removed_before: datetime) -> list[str]:
    """Vacuum the files removed from the history before ``removed_before`` that neither the newest version nor
    ``kept`` need, after recording the versions that may lose files as expired: those below ``oldest``, and any
    committed before ``removed_before`` (a file they read may have been removed since), but ``kept``. Merged with
    what is recorded: an expired version never becomes readable again. Returns the files deleted."""
    # Delta's vacuum takes whole hours back from the wall clock: the instant it will actually use (at most an hour
    # after ``removed_before``) decides which versions may lose files.
    hours = math.floor(max(0.0, (datetime.now(timezone.utc) - removed_before).total_seconds()) / 3600)
    cutoff_ms = int((datetime.now(timezone.utc) - timedelta(hours=hours)).timestamp() * 1000)
    times = offline.version_times(view)
    newest = times[-1][0] if times else oldest
    oldest = max(oldest, next((v for v, at in times if at >= cutoff_ms), newest))
    prior = offline.expiry(view)
    if prior is not None:
        kept = [v for v in kept if v >= prior[0] or v in prior[1]]
        oldest = max(oldest, prior[0])
    kept = sorted(v for v in set(kept) if v < oldest)
    if prior != (oldest, kept) and (prior is not None or oldest > 0):  # (nothing expires: no commit)
        offline.set_expiry(view, oldest, kept)  # before any file goes: a reader never reads a half-vacuumed version
    kill_point("retention.expiry_recorded")
    return offline.vacuum(view, retention_hours=hours, keep_versions=kept)


def _training_sets_holding(fs, views: list[FeatureView], entity: Entity, keys: list[tuple]
                           ) -> tuple[list[str], dict[str, list[int]]]:
    """("name@version" of every registered training set version whose snapshot pins a version of one of ``views``
    holding a row of ``keys``; per view, the pinned versions holding none). Each (view, version) scanned once."""
    names = {v.name: v for v in views}
    held: dict[tuple[str, int], bool] = {}
    out = []
    for name, version, snapshot in ts_mod.pinned_snapshots(fs.registry.store):
        holds = False
        for view, at in snapshot.items():
            if view not in names or at is None:
                continue
            if (view, at) not in held:
                keyed = {c: names[view].join_key_dtypes[c] for c in entity.join_keys}
                try:
                    fs.offline.check_readable(view, at)
                    held[(view, at)] = fs.offline.count_key_rows(view, at, keyed, keys) > 0
                except NotFoundError:  # expired or gone already: nothing to keep, nothing to report
                    held[(view, at)] = False
            holds = holds or held[(view, at)]
        if holds:
            out.append(f"{name}@{version}")
    clean: dict[str, list[int]] = {}
    for (view, at), h in sorted(held.items()):
        if not h:
            clean.setdefault(view, []).append(at)
    return out, clean

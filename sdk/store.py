"""``FeatureStore``: the entry point. A thin layer that wires config to adapters and delegates every operation
to the module that owns it (registry, ingest, retrieval, materialize, online_read)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence


from . import audit as audit_mod
from . import config as config_mod
from . import permissions as perms
from . import pii as pii_mod
from . import features as features_mod
from . import ingest as ingest_mod
from . import materialize as mat
from . import online_read, plugins, sources
from . import push as push_mod
from . import statistics as stats_mod
from .aggregation.definition import AggregatedView
from .aggregation import maintain
from .aggregation.maintain import check_store
from .aggregation.partials import layout as tile_layout
from .definitions import Entity, FeatureService, FeatureView
from .errors import ConfigError, ConflictError, DefinitionError, EngineError, PermissionDenied, ValidationError
from .faults import kill_point
from .offline.base import BatchAlreadyCommitted, CommittedBatch, Watermark, WatermarkMoved
from .redact import redact_url
from .registry import Plan, Registry
from .offline.pit import join_key_types
from .retrieval import LabelledJob, LocatedJob, entity_columns, entity_input, entity_tables, polars_to_arrow
from .splits import Split
from .stages import ModelStage, Stage
from .stages import leakage as stage_leakage
from .training_sets import TrainingSet
from .timeutil import new_batch_id, now as utc_now, utc
from .transforms import OnDemandTransform
from .transforms import offline as transforms_offline
from .transforms import online as transforms_online
from .transforms.resolve import resolve_request

REGISTRY_CACHE_SECONDS = 5.0
_UNSET = object()


class FeatureStore:
    """A feature repo: ``FeatureStore(".")`` reads ``./skewless.yaml``."""

    def __init__(self, repo_path: str | Path = ".", *, config: config_mod.Config | None = None,
                 principal: str | None = None, token: str | None = None):
        """``principal`` (a registered principal's name) or ``token`` (a service token, matched by its hash) says
        who calls, for the permission checks of the write paths (``skewless.permissions``); neither: the
        environment's ``SKEWLESS_TOKEN`` / ``SKEWLESS_PRINCIPAL``."""
        self.repo_path = Path(repo_path).resolve()
        self.config = config or config_mod.load(self.repo_path)
        self._principal, self._token = principal, token
        self._acting = threading.local()  # a server's per-request principal (``acting_as``)
        self._state = None
        self._state_at = 0.0
        self._resolved: dict[Any, list] = {}
        self._resolved_for = None  # the registry state the cached resolutions were made against

    # -- adapters (created on first use) ---------------------------------------------------------------------
    def _make(self, role: str, url: str, options: dict):
        return plugins.load(role, url)(url, self.config.repo_path, options)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self._make("registry", self.config.registry.url, self.config.registry.options))

    @cached_property
    def offline(self):
        return self._make("offline", self.config.offline.url, self.config.offline.options)

    @cached_property
    def engine(self):
        return self._make("engine", self.config.engine, self.config.engine_options)

    @cached_property
    def online(self):
        return self._make("online", self.config.online.url, self.config.online.options)

    now = staticmethod(utc_now)

    # -- permissions and audit (skewless.permissions, skewless.audit) ------------------------------------------
    @cached_property
    def audit_log(self) -> audit_mod.AuditLog:
        return audit_mod.AuditLog(self.registry.store)

    @contextlib.contextmanager
    def acting_as(self, principal: str | None):
        """Within the block, this thread's calls are checked and audited as ``principal`` (a server's caller,
        identified by its token: the feature server's pushes)."""
        prior = getattr(self._acting, "principal", _UNSET)
        self._acting.principal = principal
        try:
            yield self
        finally:
            self._acting.principal = prior

    def principal(self, state=None) -> str | None:
        """Who this call is made as: ``acting_as``'s, else the constructor's, else the environment's."""
        acting = getattr(self._acting, "principal", _UNSET)
        if acting is not _UNSET:
            return acting
        if self._principal is not None:
            return self._principal
        state = state if state is not None else self._registry_state()
        if self._token is not None:
            return perms.principal_for_token(state, self._token) or "<unknown token>"
        return perms.principal_from_env(state)

    def _audit_write(self, who: str | None, resource: str, outcome: str, detail: str) -> None:
        """An allowed data write (ingest, push, stream run, materialize) in the audit log — only while the registry
        declares permissions: an open registry writes as before, with no added object per ingest or push (applies,
        deploys and denials are always recorded)."""
        if perms.governed(self._registry_state()):
            self.audit_log.append(who, "ingest", resource, outcome, detail)

    def authorize(self, action: str, resources: Sequence[tuple[str, str]], state=None) -> str | None:
        """Check ``action`` on every resource before anything is done (``permissions.check``): on a denial the
        denial is audited and ``PermissionDenied`` raised. Returns the principal (for the audit of the call)."""
        state = state if state is not None else self._registry_state(fresh=True)
        who = self.principal(state)
        for resource in resources:
            try:
                perms.check(state, who, action, resource)
            except PermissionDenied as exc:
                self.audit_log.append(who, action, exc.resource, "denied", str(exc))
                raise
        return who

    def masking(self) -> "pii_mod.Masking":
        """What this caller may not see of personal data in display outputs (the CLI, the UI, logs): PII columns,
        unless the principal holds ``read_pii`` on their view (skewless.pii)."""
        state = self._registry_state(fresh=True)
        return pii_mod.Masking(state, self.principal(state))

    def authorize_read(self, features, state=None, labels=None) -> str | None:
        """``read_offline`` for a read of ``features`` (a feature service's name: on it, or else on every view it
        reads; refs: on every view they read, a transform's input views included), before anything is read. An
        open registry costs no registry read (its cached state, at most REGISTRY_CACHE_SECONDS old, as the servers
        read it); a governed one is checked against its newest version, as the write paths are."""
        if state is None:
            state = self._registry_state()
            if perms.governed(state):
                state = self._registry_state(fresh=True)
        needed = perms.needed_for_read(state, self.principal(state), "read_offline", features) \
            if perms.governed(state) else []
        if labels is not None and perms.governed(state):  # label views are read like any other history
            needed += [r for r in perms.read_resources(state, [labels] if isinstance(labels, str) else labels)
                       if r not in needed]
        return self.authorize("read_offline", needed, state)

    # -- registry --------------------------------------------------------------------------------------------
    def _registry_state(self, fresh: bool = False):
        if fresh or self._state is None or time.monotonic() - self._state_at > REGISTRY_CACHE_SECONDS:
            state = self.registry.state()
            if self._state is None or state.version != self._state.version:
                self._resolved.clear()
            self._state, self._state_at = state, time.monotonic()
        return self._state

    def refresh_registry(self) -> None:
        self._registry_state(fresh=True)

    def plan(self, objects: Iterable, *, prune: bool = False) -> Plan:
        """What ``apply`` would change, with breaking changes flagged."""
        return self.registry.plan(objects, prune=prune)

    def apply(self, objects: Iterable | Entity | FeatureView | FeatureService, *, prune: bool = False,
              allow_breaking: bool = False, message: str = "") -> Plan:
        """Commit definitions as a new registry version (ConflictError if another apply won the race)."""
        if isinstance(objects, (Entity, FeatureView, FeatureService, OnDemandTransform, perms.Principal, perms.Role,
                                perms.Grant, Stage, ModelStage)):
            objects = [objects]
        before = self._registry_state(fresh=True)
        # Checked against the registry as it is: the apply that first declares permissions is allowed (open), and
        # one that changes them needs `apply` under the permissions in force.
        who = self.authorize("apply", [perms.PROJECT], before)
        # the principal is also the registry version's author (its own history names who committed it)
        plan = self.registry.apply(objects, prune=prune, allow_breaking=allow_breaking, message=message, author=who)
        if plan.empty:
            return plan
        after = self._registry_state(fresh=True)
        self.audit_log.append(who, "apply", "*", "allowed",
                              f"registry version {after.version}: {len(plan.changes)} change(s)")
        for change in plan.changes:
            if change.kind in perms.PERMISSION_KINDS:
                self.audit_log.append(who, "permission_change", f"{change.kind}:{change.name}", "allowed", str(change))
        for change in plan.changes:
            if change.kind == "feature_view" and change.action == "delete":
                self.online.drop_view(change.name)
            elif change.kind == "feature_view" and change.action == "update":
                old, new = before.get("feature_view", change.name), after.get("feature_view", change.name)
                if (tile_layout(old) or tile_layout(new)) and tile_layout(old) != tile_layout(new):
                    # Stored tiles of another layout cannot be read: forget them and the view's materialized end, so
                    # the next materialize (incremental too) rebuilds them from the whole history.
                    self.online.drop_view(change.name)
                    mat.forget_progress(self.online, change.name)
        return plan

    def repo_objects(self) -> list:
        """The definitions the repo's files declare (``skewless.repo.load_objects``): where ``skewless.stages.run``
        finds a featurization stage's function."""
        from .repo import load_objects

        return load_objects(self.repo_path)

    def get_entity(self, name: str) -> Entity:
        return self._registry_state().get("entity", name)

    def get_feature_view(self, name: str) -> FeatureView:
        return self._registry_state().get("feature_view", name)

    def get_feature_service(self, name: str) -> FeatureService:
        return self._registry_state().get("feature_service", name)

    def list_entities(self) -> list[Entity]:
        return self._registry_state(fresh=True).list("entity")

    def list_feature_views(self) -> list[FeatureView]:
        return self._registry_state(fresh=True).list("feature_view")

    def list_feature_services(self) -> list[FeatureService]:
        return self._registry_state(fresh=True).list("feature_service")

    def get_transform(self, name: str) -> OnDemandTransform:
        return self._registry_state().get("transform", name)

    def list_transforms(self) -> list[OnDemandTransform]:
        return self._registry_state(fresh=True).list("transform")

    def get_stage(self, name: str) -> Stage | ModelStage:
        return self._registry_state(fresh=True).get("stage", name)

    def list_stages(self) -> list[Stage | ModelStage]:
        return self._registry_state(fresh=True).list("stage")

    def get_training_set(self, name: str) -> TrainingSet:
        return self._registry_state(fresh=True).get("training_set", name)

    def list_training_sets(self) -> list[TrainingSet]:
        return self._registry_state(fresh=True).list("training_set")

    def search(self, text: str = "", *, tag: str | None = None, owner: str | None = None) -> list:
        """Objects whose name/description contains ``text``, with tag ``k`` or ``k=v``, and/or owner."""
        out = []
        for obj in self.list_entities() + self.list_feature_views() + self.list_transforms() + \
                self.list_feature_services():
            hay = f"{obj.name} {getattr(obj, 'description', '')}".lower()
            if text and text.lower() not in hay:
                continue
            if owner is not None and getattr(obj, "owner", "") != owner:
                continue
            if tag is not None:
                k, _, v = tag.partition("=")
                if k not in obj.tags or (v and obj.tags[k] != v):
                    continue
            out.append(obj)
        return out

    def _transforms(self, features: Sequence[str] | FeatureService | str):
        """The TransformRequest of ``features`` when a ref names a transform output, else None (cached like
        ``_resolve``, under the refs' key tagged as this kind of answer)."""
        state = self._registry_state()
        if not state.objects.get("transform"):
            return None
        if state is not self._resolved_for:
            self._resolved.clear()
            self._resolved_for = state
        try:
            key = ("transforms", tuple(features.feature_refs) if isinstance(features, FeatureService) else (
                features if isinstance(features, str) else tuple(features)))
            hit = self._resolved.get(key, _UNSET)
        except TypeError:  # an unhashable ref: resolve_request names it
            return resolve_request(state, features)
        if hit is _UNSET:
            hit = self._resolved[key] = resolve_request(state, features if isinstance(key[1], str) else key[1])
        return hit

    def _resolve(self, features: Sequence[str] | FeatureService | str):
        key = tuple(features.feature_refs) if isinstance(features, FeatureService) else (
            features if isinstance(features, str) else tuple(features))
        state = self._registry_state()
        if state is not self._resolved_for:  # cached resolutions hold view definitions of one state only
            self._resolved.clear()
            self._resolved_for = state
        try:
            hit = self._resolved.get(key)
        except TypeError:  # an unhashable ref: resolve() names it
            return features_mod.resolve(state, key)
        if hit is None:
            # the key, not `features`: an iterator was consumed building it
            hit = self._resolved[key] = features_mod.resolve(state, features if isinstance(key, str) else key)
        return hit

    # -- ingest ----------------------------------------------------------------------------------------------
    def ingest(self, view_name: str, data: Any = None, *, batch_id: str | None = None,
               date_format: str | None = None, online: bool = True) -> ingest_mod.IngestResult:
        """Validate and append rows to the view's history, and push their newest values online.

        ``data``: a pandas DataFrame or pyarrow Table; None reads the view's source (``ingest_source``): only its
        rows above the last ingested watermark when the source declares one.

        Text timestamps must be ISO 8601 unless ``date_format`` (strftime codes, e.g. ``%d/%m/%Y``) is given.
        Nothing is written when validation fails. Idempotent: the batch's identity (``batch_id``, else a hash of its
        rows) is recorded in its commit; ingesting a committed ``batch_id`` again, or the same rows again before any
        other ingest of the view (or while their online push is unfinished), appends nothing, completes the online
        push and returns ``already_ingested=True``. Returns the history version holding the rows. ``online=False``
        appends to the history only (the online store catches up at the next materialize)."""
        if data is None:
            return self.ingest_source(view_name, batch_id=batch_id, date_format=date_format)
        return self._ingest(view_name, data, batch_id, date_format, online=online)

    def _ingest(self, view_name: str, data: Any, batch_id: str | None, date_format: str | None,
                watermark: Watermark | None = None, *, online: bool = True) -> ingest_mod.IngestResult:
        state = self._registry_state(fresh=True)
        view = state.get("feature_view", view_name)
        who = self.authorize("ingest", [("view", view.name)], state)
        to_online = view.online and online
        batch, write_time = new_batch_id(), utc_now()
        rows = ingest_mod.prepare(view, data, batch=batch, write_time=write_time, date_format=date_format)
        ingest_mod.check_batch_id(batch_id)  # before anything is written
        pending = ingest_mod.pending_key(view.name, batch)
        staged = None
        if to_online:
            if isinstance(view, AggregatedView):  # before anything is written: nothing half-done
                check_store(self, view)
            ingest_mod.mark_pending(self.online, view.name, batch)
            # The online push begins now where the store stages writes (alongside hashing the batch's identity and
            # the append; visible after the append's commit, this batch's pending marker cleared in the same commit).
            staged = mat.stage_push(self, view, rows, meta={pending: None})
        try:
            ident = ingest_mod.identity(rows, write_time, batch_id)
            found = self.offline.committed(view.name, ident)
        except BaseException:
            self._drop_push(view, staged, pending, to_online)
            raise
        # The same rows again after other ingests is a deliberate re-send (it wins ties again): appended. A batch
        # id always means "this batch", and a batch whose push never finished is the same run being retried.
        if found is not None and (batch_id is not None or found.newest or self._pending(view, found.batch)):
            self._drop_push(view, staged, pending, to_online)
            return self._complete(view, found, ident, rows.num_rows)
        # Computed alongside the checks and staging below; the append takes it just before its commit.
        extra = stats_mod.append_options(self, view, rows)
        if watermark:
            extra["watermark"] = watermark
        # An aggregated view's tiles, when they may be the rows' own (an empty history), computed while the commit
        # runs (maintain.start_ahead; used only once the committed snapshot proves it, nothing written before).
        ahead = maintain.start_ahead(self, view, rows) \
            if to_online and staged is None and isinstance(view, AggregatedView) else None
        kill_point("ingest.before_offline_commit")
        # Stores that record the key packing scan the prior history through the engine, only when it must widen.
        try:
            version = self.offline.append(view.name, rows, batch=batch, batch_id=ident, once=found is None,
                                          tie_check=lambda new, prior: self.engine.tie_level(view, new, prior),
                                          history_stats=lambda prior: self.engine.packing_stats(view, prior),
                                          **extra)
        except BaseException as exc:
            if ahead is not None:
                ahead.cancel()
            if staged is not None:  # nothing of this run's rows becomes visible online
                staged.abort()
            if isinstance(exc, BatchAlreadyCommitted):  # a concurrent run of the same batch committed it first
                if to_online:
                    self.online.set_meta(pending, None)
                return self._complete(view, exc.found, ident, rows.num_rows)
            if isinstance(exc, WatermarkMoved):  # another ingest of this source committed first: nothing appended
                if to_online:
                    self.online.set_meta(pending, None)
                raise ConflictError(f"ingest of {view.name!r} from its source: another ingest committed first "
                                    f"({exc}); run it again to ingest what is new since") from None
            raise
        kill_point("ingest.after_offline_commit")
        if to_online:
            if staged is not None:
                staged.commit()  # the rows and the marker's removal, one commit
                kill_point("ingest.online_push_chunk")
            else:
                mat.push_batch(self, view, rows, batch, version, ahead=ahead)
                self.online.set_meta(pending, None)
        # After the whole write (a failure here leaves the rows written and the push complete, unrecorded)
        self._audit_write(who, f"view:{view.name}", "allowed",
                          f"{rows.num_rows} rows, history version {version}{'' if to_online else ', offline only'}")
        return ingest_mod.IngestResult(view.name, version, rows.num_rows, ident)

    def _drop_push(self, view: FeatureView, staged, pending: str, to_online: bool) -> None:
        """An ingest that appends nothing after all: its staged push dropped, its pending marker removed."""
        if staged is not None:
            staged.abort()
        if to_online:
            self.online.set_meta(pending, None)

    def _pending(self, view: FeatureView, batch: int) -> bool:
        return view.online and self.online.get_meta(ingest_mod.pending_key(view.name, batch)) is not None

    def _complete(self, view: FeatureView, found: CommittedBatch, ident: str, rows: int) -> ingest_mod.IngestResult:
        """A rerun of a committed batch: finish its online push if it never finished (its marker is still set)."""
        if self._pending(view, found.batch):
            mat.push_batch(self, view, None, found.batch, found.version)
            self.online.set_meta(ingest_mod.pending_key(view.name, found.batch), None)
        return ingest_mod.IngestResult(view.name, found.version, rows, ident, already_ingested=True)

    def ingest_source(self, view_name: str, *, batch_id: str | None = None,
                      date_format: str | None = None) -> ingest_mod.IngestResult:
        """Ingest the view's declared source (``ParquetSource``, ``CsvSource``, ``DeltaSource``, ``SqlSource``;
        local, ``s3://``, ``oss://``). With a ``watermark`` column, only rows above the watermark recorded by the
        last source ingest are read, and the new one is recorded in the same offline commit as the rows, so a rerun
        (after a crash at any point) ingests each row once; ``rows == 0``: nothing new."""
        state = self._registry_state(fresh=True)
        view = state.get("feature_view", view_name)
        self.authorize("ingest", [("view", view.name)], state)  # before the source is read
        src = view.source
        if src is None:
            raise DefinitionError(f"feature view {view_name!r} has no source to ingest from")
        if src.watermark is None:
            return self._ingest(view_name, sources.read(self.config, src), batch_id, date_format)
        if not self.offline.supports_watermarks:
            raise ConfigError(f"the offline store {self.offline.url} does not record watermarks; incremental "
                              f"ingest of {view_name!r} needs a Delta store (local, s3://, oss://)")
        if view.online:  # a crash after the last run's offline commit: its online push is finished first
            mat.repair_pending(self, [view])
        prior = self.offline.watermark(view.name, src.watermark)
        table = sources.read(self.config, src, prior)
        if table.num_rows == 0:
            return ingest_mod.IngestResult(view.name, self.offline.version(view.name) or 0, 0, "")
        value = sources.watermark_value(table.column(src.watermark), src.watermark)
        return self._ingest(view_name, table, batch_id, date_format, Watermark(src.watermark, value, prior))

    def push(self, name: str, data: Any, *, to: str = "online", identify: bool = True) -> list[ingest_mod.IngestResult]:
        """Feast's push: write ``data`` to every view named ``name`` or whose source is named ``name``, ``to``
        "online", "offline" or "online_and_offline", with ingest's validation and write path (``push``).
        ``identify=False``: an online push's results carry no ``batch_id`` (None; its rows are not hashed)."""
        state = self._registry_state()  # cached (as views_for's): a push is the feature server's hot write path
        views = push_mod.views_for(self, name)
        who = self.authorize("ingest", [("view", v.name) for v in views], state)  # every view, before any write
        results = push_mod.push(self, name, data, to=to, identify=identify, views=views)
        if to == "online":  # the other modes went through ingest, which audited each view
            for r in results:
                self._audit_write(who, f"view:{r.view}", "allowed", f"push {r.rows} rows, online only")
        return results

    # -- streams ---------------------------------------------------------------------------------------------
    def stream(self, view_name: str, source, *, consumer: str | None = None, dead_letter: str | Path | None = None,
               options: dict | None = None, **kwargs):
        """Consume a stream into ``view_name`` exactly once (skewless.streams.consume): ``source`` is a
        ``StreamSource`` or its URL (``kinesis://NAME``, ``memory:///FOLDER``; ``options`` go to its adapter).
        ``consumer`` names the consumer whose positions are committed with each append (default: the URL);
        ``dead_letter``: the folder for bad records (default: ``dead-letter/`` in the repo). Other keyword
        arguments: ``max_records``, ``max_seconds``, ``poll_seconds``, ``until_caught_up``, ``max_batches``, ``stop``.
        Returns a ``StreamStats``."""
        from .streams.consume import consume
        from .streams.deadletter import DeadLetter

        try:
            who = self.authorize("ingest", [("view", view_name)])  # before a stream is opened or read
        except PermissionDenied:
            if not isinstance(source, str):
                source.close()  # ours to close, as below
            raise
        if isinstance(source, str):
            url = source
            source = plugins.load("stream", url)(url, self.config.repo_path, options or {})
            consumer = consumer or redact_url(url)
        consumer = consumer or source.name
        dead = DeadLetter(dead_letter or self.config.repo_path / "dead-letter")
        try:
            stats = consume(self, view_name, source, consumer=consumer, dead_letter=dead, **kwargs)
        finally:
            source.close()
        # one record per run (not per micro-batch: a long-running consumer would write one per second)
        self._audit_write(who, f"view:{view_name}", "allowed",
                              f"stream {consumer}: {stats.batches} micro-batches, {stats.rows} rows")
        return stats

    def compact(self, view_name: str, target_file_mb: int = 128) -> dict | None:
        """Compact the view's history (small files from stream micro-batches) into large files as one new version;
        older versions stay readable. See ``OfflineStore.compact``."""
        state = self._registry_state(fresh=True)
        view = state.get("feature_view", view_name)
        self.authorize("ingest", [("view", view.name)], state)  # it writes a new history version
        return self.offline.compact(view.name, target_file_mb)

    # -- erasure and retention (skewless.forget, skewless.retention; docs/governance.md) -------------------------
    def forget(self, entity: str, keys: Sequence[Any], *, purge_now: bool = False, progress=None):
        """Erase the rows of ``keys`` (values of ``entity``'s join keys: scalars, tuples or dicts) from every view
        keyed by the entity — offline histories (prediction logs included), online rows, aggregation tiles — and,
        once each view's history retention allows (``purge_now``: at once), vacuum the older versions holding them.
        Resumable: calling it again with the same keys completes an interrupted or pending request. Returns a
        ``ForgetReport`` (rows removed per view and store, the registered training sets that held the entity)."""
        from .forget import forget

        return forget(self, entity, keys, purge_now=purge_now, progress=progress)

    def retention_run(self, views: Sequence[str] | None = None, *, prediction_log_retention=None, now=None,
                      progress=None):
        """Expire and vacuum history versions older than each view's ``history_retention`` (keeping every version a
        registered training set pins), delete prediction-log rows older than ``prediction_log_retention`` (a
        timedelta), and complete pending forget purges. Returns a ``RetentionReport``."""
        from .retention import run

        return run(self, views=list(views) if views else None, prediction_log_retention=prediction_log_retention,
                   now=now, progress=progress)

    # -- statistics ------------------------------------------------------------------------------------------
    def get_statistics(self, view_name: str, version: int | None = None) -> stats_mod.ViewStatistics:
        """Per-feature statistics of every row written to the view's history up to ``version`` (None: the newest),
        recorded at write time (skewless.statistics; docs/statistics.md). NotFoundError for an unknown view or
        version; ``StatisticsUnavailable`` (a NotFoundError) for a version written without statistics."""
        state = self._registry_state(fresh=True)
        view = state.get("feature_view", view_name)
        self.authorize("read_offline", [("view", view.name)], state)
        return stats_mod.read(self.offline, view.name, version)

    def get_training_set_statistics(self, name: str, version: int | None = None
                                    ) -> dict[str, stats_mod.FeatureStatistics]:
        """The statistics of a registered training set's features (``version``: the training set's registry
        version, None: the newest), keyed ``view:feature``: each view's at the history version the training set
        recorded (its ``statistics``). Needs ``read_offline`` on each of its views."""
        return stats_mod.for_training_set(self, name, version, authorize=self.authorize_read)

    # -- training sets ---------------------------------------------------------------------------------------
    def get_historical_features(self, entity_df: Any, features: Sequence[str] | FeatureService | str, *,
                                full_feature_names: bool = False, point_in_time: str = "event",
                                timestamp_column: str = "event_timestamp",
                                snapshot: dict[str, int | None] | None = None,
                                include_event_timestamps: bool = False, date_format: str | None = None,
                                labels: Sequence[str] | None = None, split: Split | dict | None = None,
                                allow_leakage: Sequence[str] | None = None) -> LocatedJob:
        """A point-in-time-correct training set: every entity row once, in order, plus feature values at its time.

        ``entity_df``: pandas, pyarrow or polars table; a Parquet path or glob, local or at an ``s3://`` / ``oss://``
        URL (for tables larger than memory); or a DuckDB SQL query (``SELECT ... FROM read_parquet('...')``).
        ``job.to_parquet`` writes locally or to an ``s3://`` / ``oss://`` URL, streamed (an object appears only whole).
        ``point_in_time``: "event" (default) or "available" (only rows already known at t: no backfill leakage).
        ``snapshot``: the ``job.snapshot`` of an earlier training set, to rebuild it identically.
        ``date_format``: the format of a text timestamp column (default: ISO 8601 only).
        ``labels``: ``label_view:label`` refs (skewless.LabelView), joined by the same point-in-time rule and put
        after the features; ``split``: a ``skewless.Split`` (or its dict form) adding the split column
        (docs/concepts/labels-and-splits.md). Both are recorded when the job is registered.
        With a split, reading the output of a stage fit on rows of the test split is a ``LeakageError``
        (skewless.stages.leakage) unless the stage is named in ``allow_leakage`` (recorded when registered)."""
        if point_in_time not in ("event", "available"):
            raise ValidationError(f"point_in_time must be 'event' or 'available', not {point_in_time!r}")
        self.authorize_read(features, labels=labels)
        req = self._transforms(features)
        resolved = self._resolve(features) if req is None else req.resolved
        label_views = features_mod.resolve(self._registry_state(), [labels] if isinstance(labels, str) else labels,
                                           labels=True) if labels is not None else []
        split = Split.of(split) if split is not None else None
        names = [v.name for v, _ in resolved + label_views]
        aggregated = [v.name for v, _ in resolved if isinstance(v, AggregatedView)]
        if aggregated and not self.engine.supports_aggregations:
            raise EngineError(f"the {self.engine.name} engine does not compute aggregated views' features in "
                              f"training sets (views {aggregated}); use the duckdb engine")
        snap = dict(snapshot) if snapshot is not None else self.offline.snapshot(names)
        missing = [n for n in names if n not in snap]
        if missing:
            raise ValidationError(f"snapshot has no version for views {missing}")
        if snapshot is not None:  # a rebuild: refuse versions past their retention rather than read other files
            for n in names:
                self.offline.check_readable(n, snap[n])
        files = {n: self.offline.files(n, snap[n]) for n in names}
        keep = None
        if isinstance(entity_df, str) and (sources.is_query(entity_df) or sources.on_object_store(entity_df)):
            keep = tempfile.TemporaryDirectory(prefix="skewless-entity-")
            entity_df = sources.entity_files(self.config, entity_df, Path(keep.name))
        entity_df = entity_input(polars_to_arrow(entity_df), timestamp_column, date_format)
        refs = [f"{v.name}:{f}" for v, fs in resolved for f in fs]
        if req is not None:
            req.names(full_feature_names)  # a name given twice fails before the join runs
        key_types = {k: d.arrow for k, d in join_key_types(resolved + label_views).items()}
        if split is not None:
            split = split.bind(key_types, timestamp_column, entity_columns(entity_df))
        rows = entity_df  # the guard reads the entity rows as given (the engine's job may consume an iterator)
        allowed = stage_leakage.guard(self, names, split, lambda cols: entity_tables(rows, [*cols]), key_types,
                                      allow_leakage)
        # With transforms, views are read under full names (inputs nobody requested included) and renamed after.
        full = full_feature_names or req is not None
        job = self.engine.historical(entity_df, resolved + label_views, files, snapshot={n: snap[n] for n in names},
                                     features=refs, timestamp_column=timestamp_column, full_feature_names=full,
                                     point_in_time=point_in_time, event_timestamps=include_event_timestamps)
        if req is not None:
            job = transforms_offline.TransformedJob(job, req, timestamp_column=timestamp_column,
                                                    full_feature_names=full_feature_names)
        if split is not None or (label_views and req is not None):
            # label columns as the engine named them -> as requested, after the features (without transforms the
            # engine already put them there under their names: its job, and its own outputs, are kept)
            moved = [(f"{v.name}__{f}" if full else f, f"{v.name}__{f}" if full_feature_names else f)
                     for v, fs in label_views for f in fs]
            job = LabelledJob(job, moved, split, key_types)
        return LocatedJob(job, self.config, keep, store=self, entity=entity_df, point_in_time=point_in_time,
                          feature_service=features.name if isinstance(features, FeatureService) else
                          features if isinstance(features, str) else None,
                          labels=[f"{v.name}:{f}" for v, fs in label_views for f in fs], split=split,
                          key_types=key_types, timestamp_column=timestamp_column, allowed_leakage=allowed)

    # -- materialization -------------------------------------------------------------------------------------
    def _views_for(self, names: Sequence[str] | None) -> list[FeatureView]:
        state = self._registry_state(fresh=True)
        views = [state.get("feature_view", n) for n in names] if names else state.list("feature_view")
        return [v for v in views if v.online]

    def materialize(self, start_date: datetime, end_date: datetime, feature_views: Sequence[str] | None = None,
                    *, progress: mat.ProgressFn | None = None, chunk_rows: int = mat.CHUNK_ROWS
                    ) -> list[mat.ViewResult]:
        """Write to the online store, per entity with rows in [start, end], the newest row at ``end``."""
        start, end = utc(start_date, "start_date"), utc(end_date, "end_date")
        if start > end:
            raise ValidationError(f"start_date {start} is after end_date {end}")
        views = self._views_for(feature_views)
        who = self.authorize("ingest", [("view", v.name) for v in views])
        mat.repair_pending(self, views)
        out = mat.materialize_any(self, [(v, start, end) for v in views], progress, chunk_rows)
        self._audit_materialize(who, out, f"materialize {start.isoformat()} .. {end.isoformat()}")
        return out

    def _audit_materialize(self, who: str | None, results: list, what: str) -> None:
        for r in results:
            self._audit_write(who, f"view:{r.view}", "allowed", f"{what}: {r.rows} rows online")

    def materialize_incremental(self, end_date: datetime, feature_views: Sequence[str] | None = None,
                                *, progress: mat.ProgressFn | None = None, chunk_rows: int = mat.CHUNK_ROWS,
                                allow_rewind: bool = False) -> list[mat.ViewResult]:
        """Materialize each view from its last materialized end (or its beginning) to ``end_date``. An end before
        a view's last end is a ValidationError unless ``allow_rewind`` (then that view restarts from its
        beginning)."""
        end = utc(end_date, "end_date")
        views = self._views_for(feature_views)
        who = self.authorize("ingest", [("view", v.name) for v in views])
        starts = mat.incremental_starts(self.online, views, end, allow_rewind)
        mat.repair_pending(self, views)
        out = mat.materialize_any(self, [(v, s, end) for v, s in zip(views, starts)], progress, chunk_rows)
        self._audit_materialize(who, out, f"materialize-incremental to {end.isoformat()}")
        return out

    # -- online reads ----------------------------------------------------------------------------------------
    def get_online_features(self, features: Sequence[str] | FeatureService | str, entity_rows: Sequence[dict],
                            *, full_feature_names: bool = False, now: datetime | None = None
                            ) -> online_read.OnlineResponse:
        """Current feature values for ``entity_rows``, with per-value status and event timestamp.

        ``now`` (default: the clock) is the time the TTL is evaluated at."""
        if now is None:
            now = utc_now()
        elif type(now) is not datetime or now.tzinfo is not timezone.utc:  # an aware UTC datetime already is one
            now = utc(now, "now")
        req = self._transforms(features)
        if req is not None:
            return transforms_online.read(self.online, req, entity_rows, now, full_feature_names)
        return online_read.read(self.online, self._resolve(features), entity_rows, now, full_feature_names)


def init_repo(path: str | Path, project: str = "default") -> FeatureStore:
    """Create an empty repo with embedded defaults (SQLite online store, local Delta histories, DuckDB)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / config_mod.FILE_NAME
    if not cfg.exists():
        cfg.write_text(config_mod.Config.default(path, project).to_yaml())
    return FeatureStore(path)

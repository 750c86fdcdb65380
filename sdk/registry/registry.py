"""The registry: definitions by name, every commit a new immutable version, per-object version history."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from ..definitions import KINDS as DEFINITION_KINDS
from ..definitions import Entity, FeatureService, FeatureView
from ..errors import DefinitionError, NotFoundError
from ..permissions import KINDS as PERMISSION_KINDS
from ..permissions import Grant, Principal, Role
from ..permissions import check_references as check_permission_references
from ..stages import dag as stage_dag
from ..stages.definition import ModelStage, Stage, StageBase
from ..training_sets import TrainingSet
from ..transforms import OnDemandTransform
from ..transforms.resolve import check_inputs
from .plan import Plan, diff
from .store import RegistryStore

FORMAT = 1
# Every kind of object the registry holds (a registry written before a kind existed simply has none of it).
KINDS = {**DEFINITION_KINDS, "transform": OnDemandTransform, "training_set": TrainingSet, **PERMISSION_KINDS,
         "stage": StageBase}
APPLICABLE = (Entity, FeatureView, OnDemandTransform, FeatureService, Principal, Role, Grant, Stage, ModelStage)


@dataclass(frozen=True)
class ObjectVersion:
    kind: str
    name: str
    version: int  # per-object: 1 on creation, +1 on each change
    registry_version: int
    updated_at: str
    spec: dict


class RegistryState:
    """One committed registry version: all objects, each with its own version number."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.version: int = doc["version"]
        self.objects: dict[str, dict[str, dict]] = doc["objects"]

    @classmethod
    def empty(cls) -> "RegistryState":
        return cls({"format": FORMAT, "version": 0, "objects": {k: {} for k in KINDS}})

    def specs(self) -> dict[str, dict[str, dict]]:
        return {k: {n: e["spec"] for n, e in objs.items()} for k, objs in self.objects.items()}

    def get(self, kind: str, name: str):
        entry = self.objects.get(kind, {}).get(name)
        if entry is None:
            raise NotFoundError(f"{kind.replace('_', ' ')} {name!r} is not in the registry (version {self.version}); "
                                f"known: {sorted(self.objects.get(kind, {}))}")
        return KINDS[kind].from_dict(entry["spec"])

    def list(self, kind: str) -> list:
        return [KINDS[kind].from_dict(e["spec"]) for _, e in sorted(self.objects.get(kind, {}).items())]

    def object_version(self, kind: str, name: str) -> int:
        return self.objects[kind][name]["version"]


MANAGED_TAG = "skewless.kind"


def _desired_specs(base: RegistryState, objects: Iterable, prune: bool) -> dict[str, dict[str, dict]]:
    objects = list(objects)
    for o in objects:
        if not isinstance(o, APPLICABLE):
            raise DefinitionError(f"cannot apply {type(o).__name__}: expected Entity, FeatureView, "
                                  "OnDemandTransform, FeatureService, Principal, Role, Grant, Stage or ModelStage")
    # Objects skewless manages itself (tagged ``skewless.kind``, e.g. a model's prediction log view) are not in the
    # user's repo files, so pruning to "what the files declare" must keep them.
    specs = {k: {n: s for n, s in v.items() if (s.get("tags") or {}).get(MANAGED_TAG)}
             for k, v in base.specs().items()} if prune else base.specs()
    for kind in KINDS:
        specs.setdefault(kind, {})
    seen: set[tuple[str, str]] = set()
    for o in objects:
        if (o.kind, o.name) in seen:
            raise DefinitionError(f"{o.kind.replace('_', ' ')} {o.name!r} is defined twice")
        seen.add((o.kind, o.name))
    entities = {n: Entity.from_dict(s) for n, s in specs["entity"].items()}
    entities.update({o.name: o for o in objects if isinstance(o, Entity)})
    for o in objects:
        if isinstance(o, FeatureView):
            o.resolve(entities)
        specs[o.kind][o.name] = o.to_dict()
    _check_references(specs)
    return specs


def _check_references(specs: dict[str, dict[str, dict]]) -> None:
    check_permission_references(specs)
    for vname, v in specs["feature_view"].items():
        for e in v["entities"]:
            if e not in specs["entity"]:
                raise DefinitionError(f"feature view {vname!r} refers to unknown entity {e!r}")
            if any(k not in v["join_keys"] for k in specs["entity"][e]["join_keys"]):
                raise DefinitionError(f"feature view {vname!r}: entity {e!r} join keys changed; re-apply the view")
    transforms = specs.get("transform", {})
    if transforms:
        views = {n: FeatureView.from_dict(v) for n, v in specs["feature_view"].items()}
        for tname, t in transforms.items():
            if tname in views:
                raise DefinitionError(f"transform {tname!r} has the name of a feature view ('{tname}:...' "
                                      "references must name one object)")
            check_inputs(OnDemandTransform.from_dict(t), views)
    for sname, s in specs["feature_service"].items():
        for ref in s["features"]:
            view, _, feat = ref.partition(":")
            if view in transforms:
                if feat not in {f["name"] for f in transforms[view]["outputs"]}:
                    raise DefinitionError(f"feature service {sname!r} refers to unknown transform output {ref!r}")
                continue
            v = specs["feature_view"].get(view)
            if v is None:
                raise DefinitionError(f"feature service {sname!r} refers to unknown feature view {view!r}")
            if v.get("label"):
                raise DefinitionError(f"feature service {sname!r} refers to label view {view!r}: labels are not "
                                      "model inputs (request them with labels=[...] in a training set)")
            # an aggregated view serves its aggregation outputs, not its event columns
            served = {a["name"] for a in v["aggregations"]} if v.get("aggregations") else \
                {f["name"] for f in v["schema"]} - set(v["join_keys"])
            if feat not in served:
                raise DefinitionError(f"feature service {sname!r} refers to unknown feature {ref!r}")
    stage_dag.check(specs)


class Registry:
    """Reads and commits registry versions through a RegistryStore."""

    def __init__(self, store: RegistryStore):
        self.store = store
        self._cache: RegistryState | None = None

    def state(self, version: int | None = None) -> RegistryState:
        latest = self.store.latest() if version is None else version
        if latest == 0:
            return RegistryState.empty()
        if self._cache is not None and self._cache.version == latest:
            return self._cache
        state = RegistryState(json.loads(self.store.read(latest)))
        if version is None:
            self._cache = state
        return state

    def plan(self, objects: Iterable, *, prune: bool = False) -> Plan:
        base = self.state()
        return diff(base.version, base.specs(), _desired_specs(base, objects, prune))

    def apply(self, objects: Iterable, *, prune: bool = False, allow_breaking: bool = False,
              message: str = "", author: str | None = None) -> Plan:
        """Commit ``objects`` as a new version. ``prune`` deletes objects not listed (a repo's full state).

        Raises DefinitionError on breaking changes unless ``allow_breaking``, and ConflictError when another
        commit landed since this one read the registry (nothing is written then)."""
        base = self.state()
        desired = _desired_specs(base, objects, prune)
        plan = diff(base.version, base.specs(), desired)
        if plan.empty:
            return plan
        if plan.breaking and not allow_breaking:
            raise DefinitionError("breaking changes need allow_breaking=True (CLI: --allow-breaking):\n"
                                  + "\n".join(str(c) for c in plan.breaking))
        self._commit(base, desired, message, author)
        return plan

    def put(self, kind: str, name: str, spec: dict, *, message: str = "", author: str | None = None) -> bool:
        """Commit one object skewless manages itself (e.g. a registered training set), outside ``apply``'s plan:
        a no-op (False) when the registry already holds ``spec`` under that name, else a new registry version in
        which it is the object's next version. ConflictError when another commit landed first."""
        base = self.state()
        if base.objects.get(kind, {}).get(name, {}).get("spec") == spec:
            return False
        desired = base.specs()
        desired.setdefault(kind, {})[name] = spec
        self._commit(base, desired, message, author)
        return True

    def _commit(self, base: RegistryState, desired: dict, message: str, author: str | None) -> None:
        now = datetime.now(timezone.utc).isoformat()
        new_version = base.version + 1
        objs: dict[str, dict[str, dict]] = {}
        for kind, specs in desired.items():
            objs[kind] = {}
            for name, spec in specs.items():
                prev = base.objects.get(kind, {}).get(name)
                if prev is not None and prev["spec"] == spec:
                    objs[kind][name] = prev
                else:
                    objs[kind][name] = {"version": (prev["version"] + 1) if prev else 1,
                                        "registry_version": new_version, "updated_at": now, "spec": spec}
        doc = {"format": FORMAT, "version": new_version, "parent": base.version, "committed_at": now,
               "author": author or _user(), "message": message, "objects": objs}
        self.store.create(new_version, json.dumps(doc, indent=1, sort_keys=True).encode())
        self._cache = RegistryState(doc)

    def history(self, kind: str, name: str) -> list[ObjectVersion]:
        """Every distinct definition ``name`` has had, oldest first (feature versioning)."""
        out: list[ObjectVersion] = []
        for v in self.store.versions():
            entry = json.loads(self.store.read(v))["objects"].get(kind, {}).get(name)
            if entry and (not out or out[-1].version != entry["version"]):
                out.append(ObjectVersion(kind, name, entry["version"], entry["registry_version"],
                                         entry["updated_at"], entry["spec"]))
        if not out:
            raise NotFoundError(f"{kind.replace('_', ' ')} {name!r} has never been in the registry")
        return out


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return "unknown"

"""The model registry: named models, immutable numbered versions, stages, and each version's lineage.

Stored beside the feature registry (``<registry url>/models/<name>/...``) through the same ``RegistryStore``
contract, so it works wherever the feature registry does (local folders, S3, OSS) with the same atomic
create-if-absent commits and no lock service:

    models/index/         v<n>: the list of model names (a new document when a model is first registered)
    models/<name>/artifacts/  v<n>: model version n's ``model.tar.gz`` (the store names objects by number only)
    models/<name>/versions/   v<n>: version n's record: manifest, digest of the artifact, who/when, lineage
    models/<name>/stages/     v<k>: the k-th stage change, holding the whole stage assignment after it

The artifact is committed before the record that points at it, so a record always has its artifact; a crash in
between leaves an unreferenced artifact number that the next registration skips. Two concurrent registrations or
promotions never lose one another: the loser of a commit re-reads and takes the next number.
"""

from __future__ import annotations

import getpass
import json
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from skewless import permissions as perms
from skewless import plugins
from skewless.errors import ConflictError, DefinitionError, NotFoundError, ValidationError

from .artifact import ModelArtifact, ModelManifest, sha256

MODEL_REGISTRY_SIDECAR = "registry.json"
STAGES = ("staging", "production", "archived")
_ATTEMPTS = 50


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    created_at: str
    created_by: str
    message: str
    artifact_sha256: str
    artifact_bytes: int
    manifest: ModelManifest
    stages: tuple[str, ...] = ()

    @property
    def training_snapshot(self) -> dict | None:
        return (self.manifest.training or {}).get("snapshot")


class ModelRegistry:
    def __init__(self, store):
        self.store = store  # a FeatureStore: its config says where the feature registry (and the model registry beside it) lives
        cfg = store.config.registry
        self._root = cfg.url.rstrip("/") + "/models"
        self._options = cfg.options

    def _rs(self, *parts: str):
        url = "/".join((self._root,) + parts)
        return plugins.load("registry", url)(url, self.store.config.repo_path, self._options)

    # -- writes ----------------------------------------------------------------------------------------------
    def register(self, artifact: ModelArtifact, *, message: str = "", author: str | None = None,
                 stage: str | None = None) -> ModelVersion:
        """Store ``artifact`` as the next version of its model (and optionally put it in ``stage``).

        Also applies the model's prediction-log feature view to the feature registry, so logged predictions are
        joinable by training-set retrieval as soon as the model serves."""
        from .prediction_log import log_view

        m = artifact.manifest
        # `deploy` on the model, checked before anything is written (a denial is audited and does nothing)
        who = self.store.authorize("deploy", [("model", m.name)])
        view = log_view(m)
        for _ in range(_ATTEMPTS):  # before the version exists: a failure leaves nothing half-registered
            try:
                self.store.apply([view])  # a no-op when the registry already has it
                break
            except ConflictError:  # another apply (e.g. a concurrent registration) won: re-read and re-plan
                continue
        data = artifact.to_tar()
        digest = sha256(data)
        arts, recs = self._rs(m.name, "artifacts"), self._rs(m.name, "versions")
        for _ in range(_ATTEMPTS):
            version = max(arts.latest(), recs.latest()) + 1
            try:
                arts.create(version, data)
            except ConflictError:
                continue
            doc = {"name": m.name, "version": version, "created_at": _now(), "created_by": author or _user(),
                   "message": message, "artifact_sha256": digest, "artifact_bytes": len(data),
                   "manifest": m.to_dict()}
            recs.create(version, json.dumps(doc, indent=1, sort_keys=True).encode())
            break
        else:
            raise ConflictError(f"model {m.name!r}: {_ATTEMPTS} concurrent registrations won first")
        self._add_to_index(m.name)
        if perms.governed(self.store._registry_state()):  # as data writes: an open registry records none
            self.store.audit_log.append(who, "deploy", f"model:{m.name}", "allowed", f"register version {version}")
        if stage:
            self.promote(m.name, version, stage, author=author)
        return self.get(m.name, version)

    def _add_to_index(self, name: str) -> None:
        index = self._rs("index")
        for _ in range(_ATTEMPTS):
            latest = index.latest()
            names = json.loads(index.read(latest))["models"] if latest else []
            if name in names:
                return
            try:
                index.create(latest + 1, json.dumps({"models": sorted(names + [name])}).encode())
                return
            except ConflictError:
                continue
        raise ConflictError(f"model index: {_ATTEMPTS} concurrent updates won first")

    def promote(self, name: str, version: int, stage: str, *, author: str | None = None) -> dict[str, int]:
        """Put ``version`` in ``stage`` (the stage's previous version leaves it). Returns the new assignment."""
        if stage not in STAGES:
            raise ValidationError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
        self._record(name, version)  # NotFoundError for an unknown version
        log = self._rs(name, "stages")
        for _ in range(_ATTEMPTS):
            latest = log.latest()
            current = json.loads(log.read(latest))["stages"] if latest else {}
            stages = {s: v for s, v in current.items() if v != version or s == stage}
            stages[stage] = version
            event = {"stage": stage, "version": version, "previous": current.get(stage), "by": author or _user(),
                     "at": _now()}
            try:
                log.create(latest + 1, json.dumps({"stages": stages, "event": event}, sort_keys=True).encode())
                return stages
            except ConflictError:
                continue
        raise ConflictError(f"model {name!r}: {_ATTEMPTS} concurrent stage changes won first")

    # -- reads -----------------------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        index = self._rs("index")
        latest = index.latest()
        return json.loads(index.read(latest))["models"] if latest else []

    def records(self) -> list[dict]:
        """Every version of every model as stored (``name``, ``version``, ``manifest`` as a mapping...) with its
        ``stages``: what ``skewless.lineage.graph`` draws."""
        out = []
        for name in self.list_models():
            recs, by_version = self._rs(name, "versions"), self._stages_by_version(name)
            for v in recs.versions():
                doc = json.loads(recs.read(v))
                out.append({**doc, "stages": sorted(by_version.get(v, ()))})
        return out

    def stages(self, name: str) -> dict[str, int]:
        log = self._rs(name, "stages")
        latest = log.latest()
        return json.loads(log.read(latest))["stages"] if latest else {}

    def stage_history(self, name: str) -> list[dict]:
        log = self._rs(name, "stages")
        return [json.loads(log.read(v))["event"] for v in log.versions()]

    def _record(self, name: str, version: int) -> dict:
        try:
            return json.loads(self._rs(name, "versions").read(version))
        except NotFoundError:
            raise NotFoundError(f"model {name!r} has no version {version}") from None

    def versions(self, name: str) -> list[ModelVersion]:
        recs = self._rs(name, "versions")
        nums = recs.versions()
        if not nums:
            raise NotFoundError(f"no model named {name!r} is registered")
        by_version = self._stages_by_version(name)
        return [self._version(json.loads(recs.read(v)), by_version) for v in nums]

    def _stages_by_version(self, name: str) -> dict[int, tuple[str, ...]]:
        out: dict[int, tuple[str, ...]] = {}
        for s, v in sorted(self.stages(name).items()):
            out[v] = out.get(v, ()) + (s,)
        return out

    @staticmethod
    def _version(doc: dict, by_version: dict) -> ModelVersion:
        return ModelVersion(doc["name"], doc["version"], doc["created_at"], doc["created_by"], doc["message"],
                            doc["artifact_sha256"], doc["artifact_bytes"], ModelManifest.from_dict(doc["manifest"]),
                            by_version.get(doc["version"], ()))

    def get(self, name: str, version: int | None = None, *, stage: str | None = None) -> ModelVersion:
        """A version by number, by stage, or (neither) the newest."""
        if version is not None and stage is not None:
            raise ValidationError("give a version or a stage, not both")
        if stage is not None:
            version = self.stages(name).get(stage)
            if version is None:
                raise NotFoundError(f"model {name!r} has no version in stage {stage!r}")
        if version is None:
            version = self._rs(name, "versions").latest()
            if not version:
                raise NotFoundError(f"no model named {name!r} is registered")
        return self._version(self._record(name, version), self._stages_by_version(name))

    def download(self, name: str, version: int | None = None, *, stage: str | None = None,
                 dest: str | Path | None = None) -> ModelArtifact:
        """Fetch and unpack a version's artifact, checking it is byte-for-byte what was registered."""
        mv = self.get(name, version, stage=stage)
        data = self._rs(name, "artifacts").read(mv.version)
        if sha256(data) != mv.artifact_sha256:
            raise DefinitionError(f"model {name!r} version {mv.version}: artifact digest mismatch (altered in the "
                                  "store); refusing to load it")
        dest = Path(dest) if dest else Path(tempfile.mkdtemp(prefix=f"skewless-{name}-v{mv.version}-"))
        artifact = ModelArtifact.from_tar(data, dest)
        # Which model registry version this folder is: the server reports and logs it (deploy targets ship it too).
        (artifact.path / MODEL_REGISTRY_SIDECAR).write_text(json.dumps({"name": name, "version": mv.version,
                                                                  "sha256": mv.artifact_sha256}))
        return artifact


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return "unknown"

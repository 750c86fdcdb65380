"""The model artifact: a folder (``model.tar.gz`` when stored) holding the model, what it was trained on and what
it needs to run.

    skewless-model.json   the manifest: name, flavour, feature service with the frozen feature view definitions,
                          input/output signature, key lookups, training snapshot (lineage), requirements
    model/                the flavour's files
    code/                 Python source the model needs (python flavour)
    requirements.txt      pinned from the packaging environment

The folder is exactly what SageMaker unpacks to ``/opt/ml/model``. The feature view definitions are frozen into
the manifest so a server reads features with the definitions (TTLs, dtypes) the model was trained with, without
reading the feature registry on the request path.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import platform
import re
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from skewless import dtypes
from skewless.definitions import LOG_PII, FeatureService, FeatureView, Field, check_name
from skewless.drift import check_monitoring
from skewless.errors import DefinitionError, NotFoundError, ValidationError
from skewless.features import resolve
from skewless.training_sets import TrainingSet
from skewless.transforms.resolve import resolve_request

from . import flavors

MANIFEST = "skewless-model.json"
FORMAT = 1
MISSING_POLICIES = ("serve", "flag", "reject")


def check_missing_policy(policy: str, error: type[Exception] = DefinitionError) -> str:
    if policy not in MISSING_POLICIES:
        raise error(f"missing_features must be one of {', '.join(MISSING_POLICIES)}, not {policy!r}")
    return policy


@dataclass
class ModelManifest:
    name: str
    flavor: str
    flavor_options: dict
    feature_service: str
    feature_refs: list[str]
    feature_views: dict[str, dict]  # frozen view specs (FeatureView.to_dict)
    # Model input column -> where it comes from: "view:feature" (online store) or "request:<field>".
    inputs: list[dict]  # [{"name", "dtype", "source"}], in the order the model takes them
    outputs: list[dict]  # [{"name", "dtype"}]
    request_keys: dict[str, str]  # join key -> dtype name: what a request carries
    key_lookups: dict[str, str] = field(default_factory=dict)  # join key -> "view:feature" it is read from
    # What a prediction does when a required view reads NOT_FOUND or EXPIRED for a row (MISSING_POLICIES); the
    # server's SKEWLESS_MISSING_FEATURES overrides it. required_features: "view" or "view:feature" entries whose
    # view counts as required; None: every view the model reads.
    missing_features: str = "serve"
    required_features: list[str] | None = None
    requirements: list[str] = field(default_factory=list)
    # The on-demand transforms whose outputs the model takes (inputs sourced "transform:output"): name -> frozen
    # spec (OnDemandTransform.to_dict, its source and hash). The hashes are pinned: a server refuses a feature
    # registry whose copy of one differs (serving/model.py: ``check_transforms``).
    transforms: dict[str, dict] = field(default_factory=dict)
    training: dict | None = None  # {"snapshot", "features", "registry_version", "feature_view_versions", ...}
    # Skew/drift thresholds of this model (skewless.drift.check_monitoring), over its feature service's; None: none.
    monitoring: dict | None = None
    # What the prediction log stores for a PII feature (FeatureService.log_pii, or package_model's override):
    # redact | hash | keep (skewless.pii.log_value).
    log_pii: str = "redact"
    description: str = ""
    created_at: str = ""
    created_by: str = ""
    python: str = ""
    format: int = FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelManifest":
        if d.get("format") != FORMAT:
            raise DefinitionError(f"model manifest format {d.get('format')!r} is not supported (expected {FORMAT})")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    # -- what serving needs -----------------------------------------------------------------------------------
    def is_transform(self, source: str) -> bool:
        return source.split(":")[0] in self.transforms

    def online_refs(self) -> list[str]:
        """Every ``view:feature`` the server reads: the model's online inputs, the transforms' inputs, then the
        key lookups."""
        refs = [i["source"] for i in self.inputs if not i["source"].startswith("request:")
                and not self.is_transform(i["source"])]
        for spec in self.transforms.values():
            refs += [r for r in spec["inputs"].values() if r not in refs]
        return refs + list(self.key_lookups.values())

    def request_fields(self) -> dict[str, str]:
        """Request-time field -> dtype: the model's own request inputs, then the transforms' request fields."""
        out = {i["source"][8:]: i["dtype"] for i in self.inputs if i["source"].startswith("request:")}
        for spec in self.transforms.values():
            for f in spec.get("request", []):
                out.setdefault(f["name"], f["dtype"])
        return out

    def transform_hashes(self) -> dict[str, str]:
        return {n: s["hash"] for n, s in self.transforms.items()}

    def required_views(self) -> dict[str, list[str]]:
        """Required view -> the refs the model reads from it (what a 422 names)."""
        return required_views(self.name, self.online_refs(), self.required_features)

    def views(self) -> dict[str, FeatureView]:
        return {n: FeatureView.from_dict(s) for n, s in self.feature_views.items()}

    def read_stages(self) -> list[list[tuple[FeatureView, list[str]]]]:
        """The online reads, in order: each stage reads views whose join keys are all known by then (from the
        request, or from a key lookup of an earlier stage). One batched read per stage."""
        views = self.views()
        wanted: dict[str, list[str]] = {}
        for ref in self.online_refs():
            v, f = ref.split(":")
            if f not in wanted.setdefault(v, []):
                wanted[v].append(f)
        known, stages, left = set(self.request_keys), [], dict(wanted)
        while left:
            stage = [(views[v], fs) for v, fs in left.items() if set(views[v].join_keys) <= known]
            if not stage:
                raise DefinitionError(f"model {self.name!r}: join keys of views {sorted(left)} come neither from "
                                      f"the request {sorted(self.request_keys)} nor from key lookups "
                                      f"{self.key_lookups}")
            for v, _ in stage:
                del left[v.name]
                known |= {k for k, ref in self.key_lookups.items() if ref.split(":")[0] == v.name}
            stages.append(stage)
        return stages


def required_views(model: str, refs: Sequence[str], required: Sequence[str] | None) -> dict[str, list[str]]:
    reads: dict[str, list[str]] = {}
    for ref in refs:
        if ref not in reads.setdefault(ref.split(":")[0], []):
            reads[ref.split(":")[0]].append(ref)
    if required is None:
        return reads
    out: dict[str, list[str]] = {}
    for entry in required:
        view, _, feat = str(entry).partition(":")
        if view not in reads or (feat and entry not in reads[view]):
            raise DefinitionError(f"model {model!r}: required feature {entry!r} is not one the model reads "
                                  f"({', '.join(r for rs in reads.values() for r in rs)})")
        refs_of = out.setdefault(view, [])
        if feat and entry not in refs_of:
            refs_of.append(entry)
    return {v: refs_of or reads[v] for v, refs_of in out.items()}


class ModelArtifact:
    """A packaged model on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.manifest = ModelManifest.from_dict(json.loads((self.path / MANIFEST).read_text()))
        except FileNotFoundError:
            raise NotFoundError(f"{self.path} is not a model artifact (no {MANIFEST})") from None

    def load(self) -> flavors.LoadedModel:
        m = self.manifest
        return flavors.get(m.flavor).load(self.path, m.flavor_options)

    def to_tar(self) -> bytes:
        """``model.tar.gz`` bytes (SageMaker's model format), deterministic for identical files."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
            for p in sorted(self.path.rglob("*")):
                info = tar.gettarinfo(str(p), arcname=str(p.relative_to(self.path)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if p.is_file():
                    with open(p, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
        return buf.getvalue()

    @classmethod
    def from_tar(cls, data: bytes, dest: str | Path) -> "ModelArtifact":
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            # Checked here, not only by extractall's filter="data": Debian bookworm's Python (the image's, 3.11.2)
            # predates the filter (3.11.4). An artifact holds files and folders under its root, nothing else.
            bad = [m.name for m in members if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute()
                   or ".." in Path(m.name).parts]
            if bad:
                raise ValidationError(f"model archive has members that are not plain files or folders under its "
                                      f"root: {bad[:5]}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members, filter="data")
            else:
                tar.extractall(dest, members)
        return cls(dest)

    def __repr__(self) -> str:
        return f"ModelArtifact({self.manifest.name!r}, flavor={self.manifest.flavor!r}, path={str(self.path)!r})"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pins(packages: Sequence[str]) -> list[str]:
    out = []
    for p in packages:
        try:
            out.append(f"{p}=={metadata.version(p)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _merge_requirements(*layers: Sequence[str]) -> list[str]:
    """Requirement lines by distribution name, a later layer replacing an earlier one's line for the same name
    (the packaging environment's pins < the saved model's own list < what the caller gives)."""
    out: dict[str, str] = {}
    for layer in layers:
        for line in layer:
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)  # anything else (a URL, -e ...) kept as is
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else line.strip()] = line.strip()
    return sorted(out.values())


def package_model(model: Any, *, name: str, store, feature_service: str | FeatureService, path: str | Path | None
                  = None, flavor: str | None = None, training_set=None, snapshot: dict | None = None,
                  request_fields: Sequence[Field] = (), key_lookups: dict[str, str] | None = None,
                  outputs: Sequence[tuple[str, Any]] | None = None, method: str | None = None,
                  artifacts: dict[str, str] | None = None, requirements: Sequence[str] = (),
                  full_feature_names: bool = False, description: str = "", missing_features: str = "serve",
                  required_features: Sequence[str] | None = None, monitoring: dict | None = None,
                  log_pii: str | None = None) -> ModelArtifact:
    """Package a trained model with the feature service it was trained on.

    ``training_set``: the ``RetrievalJob`` the model was trained on (its ``snapshot`` is the lineage; or give
    ``snapshot``), or a registered training set (its name or ``TrainingSet``; a job registered with
    ``job.register(name)`` counts too): the manifest's ``training["training_set"]`` then names it.
    ``request_fields``: model inputs that requests carry themselves (request-time values).
    ``key_lookups``: join keys read from a feature instead of the request, e.g. ``{"zipcode":
    "loan_zipcode:zipcode"}`` so a request with a loan id alone reaches the zipcode's features.
    ``missing_features``: ``serve`` (predict, count the rows missing a required view in the response's
    ``feature_status``), ``flag`` (also list those rows) or ``reject`` (422 naming the missing features);
    ``required_features``: the ``view`` or ``view:feature`` entries that count (default: all).
    ``monitoring``: the model's skew/drift thresholds, over its feature service's (docs/monitoring.md).
    ``log_pii``: what its prediction log stores for PII features (``redact`` | ``hash`` | ``keep``; default: the
    feature service's ``log_pii``)."""
    check_name("model", name)
    if log_pii is not None and log_pii not in LOG_PII:
        raise DefinitionError(f"model {name!r}: log_pii must be one of {list(LOG_PII)}, not {log_pii!r}")
    check_missing_policy(missing_features)
    monitoring = check_monitoring(monitoring, f"model {name!r}")
    fl = flavors.get(flavor) if flavor else flavors.detect(model)
    state = store._registry_state(fresh=True)
    if isinstance(training_set, str):
        training_set = state.get("training_set", training_set)  # NotFoundError for an unknown name, first
    svc = feature_service if isinstance(feature_service, FeatureService) else state.get("feature_service",
                                                                                      feature_service)
    key_lookups = dict(key_lookups or {})
    treq = resolve_request(state, svc)
    transforms = {t.name: t for t in treq.transforms} if treq is not None else {}
    resolved = resolve(state, svc) if treq is None else [
        (v, [f for f in fs if f"{v.name}:{f}" in treq.refs]) for v, fs in treq.resolved]
    resolved = [(v, fs) for v, fs in resolved if fs]
    lookup_views = resolve(state, list(dict.fromkeys(key_lookups.values()))) if key_lookups else []
    all_views = {v.name: v for v, _ in resolved + lookup_views}

    # Inputs available to the model: the service's features (named as in the training set) and request fields.
    available: dict[str, tuple[str, str]] = {}
    for v, feats in resolved:
        by_name = {f.name: f for f in v.features}
        for f in feats:
            col = f"{v.name}__{f}" if full_feature_names else f
            if col in available:
                raise DefinitionError(f"feature {col!r} is in two views of {svc.name!r}: use full_feature_names=True")
            available[col] = (by_name[f].dtype.name, f"{v.name}:{f}")
    for t in transforms.values():
        for o in t.outputs:
            if f"{t.name}:{o.name}" not in svc.feature_refs:
                continue
            col = f"{t.name}__{o.name}" if full_feature_names else o.name
            if col in available:
                raise DefinitionError(f"feature {col!r} is in two views or transforms of {svc.name!r}: use "
                                      "full_feature_names=True")
            available[col] = (o.dtype.name, f"{t.name}:{o.name}")
    for rf in request_fields:
        if not isinstance(rf, Field):
            raise DefinitionError("request_fields must be skewless.Field objects")
        if rf.name in available:
            raise DefinitionError(f"request field {rf.name!r} has the name of a feature of {svc.name!r}")
        available[rf.name] = (rf.dtype.name, f"request:{rf.name}")
    names = fl.input_names(model) or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise DefinitionError(f"model inputs {unknown} are neither features of {svc.name!r} nor request fields; "
                              f"available: {list(available)}")
    inputs = [{"name": n, "dtype": available[n][0], "source": available[n][1]} for n in names]
    # The transforms the model takes an output of, frozen with their hashes; the views they read are read too.
    used = {i["source"].split(":")[0] for i in inputs} & set(transforms)
    frozen = {n: transforms[n].to_dict() for n in sorted(used)}
    input_views = resolve(state, list(dict.fromkeys(r for n in used for r in transforms[n].inputs.values()))) \
        if used else []
    all_views.update({v.name: v for v, _ in input_views})

    keys: dict[str, str] = {}
    for v in all_views.values():
        keys.update({k: d.name for k, d in v.join_key_dtypes.items()})
    for k, ref in key_lookups.items():
        if k not in keys:
            raise DefinitionError(f"key lookup {k!r}: no view of {svc.name!r} has join key {k!r}")
        lv, lf = ref.split(":")
        if dtypes.by_name(keys[k]) != next(f.dtype for f in all_views[lv].features if f.name == lf):
            raise DefinitionError(f"key lookup {k!r}: feature {ref!r} does not have the key's dtype {keys[k]}")
    request_keys = {k: d for k, d in keys.items() if k not in key_lookups}
    for rf in request_fields:
        if rf.name in keys:
            raise DefinitionError(f"request field {rf.name!r} is a join key; keys are always taken from requests")

    reads = ([i["source"] for i in inputs if not i["source"].startswith("request:")
              and i["source"].split(":")[0] not in frozen]
             + [r for n in frozen for r in transforms[n].inputs.values()] + list(key_lookups.values()))
    required_views(name, reads, required_features)  # before anything is written
    unknown = sorted(set((monitoring or {}).get("features", {})) - set(reads))
    if unknown:
        raise DefinitionError(f"model {name!r}: monitoring names features it does not read: {unknown}")
    options = {"method": method, "outputs": list(outputs) if outputs else None, "artifacts": artifacts}
    registered = None  # (name, version) of a registered training set: the model version's lineage points at it
    if isinstance(training_set, TrainingSet):
        registered = (training_set.name, state.object_version("training_set", training_set.name)
                      if training_set.name in state.objects.get("training_set", {}) else None)
        if registered[1] is None or state.get("training_set", training_set.name) != training_set:
            raise ValidationError(f"training set {training_set.name!r} is not registered with this definition: "
                                  "register it first (job.register(name))")
    elif training_set is not None:
        registered = getattr(training_set, "registered", None)
    if snapshot is None and training_set is not None:
        snapshot = dict(training_set.snapshot)
    training = None
    if snapshot is not None:
        training = {"snapshot": snapshot, "features": list(getattr(training_set, "features", svc.feature_refs)),
                    "training_set": {"name": registered[0], "version": registered[1]} if registered else None,
                    "registry_version": state.version,
                    "feature_view_versions": {v: state.object_version("feature_view", v) for v in all_views},
                    "feature_service_version": state.object_version("feature_service", svc.name)
                    if svc.name in state.objects.get("feature_service", {}) else None}
    elif training_set is None:
        raise ValidationError("give the training set the model was trained on (training_set=job or snapshot=...): "
                              "it is the model's lineage")

    root = Path(path) if path else Path(tempfile.mkdtemp(prefix=f"skewless-model-{name}-"))
    if (root / MANIFEST).exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    saved = fl.save(model, root, options)
    outs = fl.outputs(model, {**options, "method": saved.get("method", method)})
    reqs = _merge_requirements(_pins(("skewless",) + fl.packages), fl.requirements(root, saved), requirements)
    manifest = ModelManifest(
        name=name, flavor=fl.name, flavor_options=saved, feature_service=svc.name,
        feature_refs=list(svc.feature_refs), feature_views={n: v.to_dict() for n, v in all_views.items()},
        inputs=inputs, outputs=[{"name": n, "dtype": d} for n, d in outs], request_keys=request_keys,
        key_lookups=key_lookups, missing_features=missing_features, transforms=frozen,
        required_features=list(required_features) if required_features is not None else None,
        requirements=reqs, training=training, monitoring=monitoring, description=description,
        log_pii=log_pii or getattr(svc, "log_pii", "redact"),
        created_at=datetime.now(timezone.utc).isoformat(), created_by=_user(), python=platform.python_version())
    for o in manifest.outputs:
        check_name("model output", o["name"])
        dtypes.by_name(o["dtype"])
    manifest.read_stages()  # every view must be reachable from the request's keys
    (root / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=1, sort_keys=True))
    (root / "requirements.txt").write_text("\n".join(reqs) + "\n")
    return ModelArtifact(root)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return "unknown"

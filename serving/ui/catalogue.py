"""What the web UI shows, read from the feature registry and the model registry beside it (read-only).

Registry versions are immutable (every commit is a new numbered document), so a parsed version is cached for the
life of the process and never invalidated; only "which version is the latest" is asked of the store per request.
The model registry's index and stages do change, so they are read per request (one listing per model).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from skewless.registry import Registry
from skewless.registry.plan import Plan, diff

# kind in the UI (a URL segment) -> (registry kind, title). Aggregated views are stored as feature views whose spec
# holds "aggregations"; the UI lists them apart, as users think of them.
SECTIONS = {
    "entities": ("entity", "Entities"),
    "views": ("feature_view", "Feature views"),
    "aggregated": ("feature_view", "Aggregated views"),
    "transforms": ("transform", "On-demand transforms"),
    "services": ("feature_service", "Feature services"),
    "training-sets": ("training_set", "Training sets"),
}
_SECTION_OF_KIND = {"entity": "entities", "transform": "transforms", "feature_service": "services",
                    "training_set": "training-sets"}


def section_of(kind: str, spec: dict) -> str | None:
    """The UI section of a registry object; None for a kind the UI does not list (a newer skewless may register
    kinds this one does not know: they are left out, never an error)."""
    if kind == "feature_view":
        return "aggregated" if spec.get("aggregations") else "views"
    return _SECTION_OF_KIND.get(kind)


@dataclass(frozen=True)
class Row:
    section: str
    kind: str
    name: str
    owner: str
    tags: dict
    description: str
    version: int  # the object's own version
    registry_version: int  # the registry version that last changed it

    def matches(self, words: list[str]) -> bool:
        """Every word must hit the name, the owner, a tag key, a tag value or ``key=value`` (case-insensitive)."""
        hay = [self.name.lower(), self.owner.lower()]
        for k, v in self.tags.items():
            hay += [str(k).lower(), str(v).lower(), f"{k}={v}".lower()]
        return all(any(w in h for h in hay) for w in words)


class Catalogue:
    def __init__(self, registry: Registry, models=None):
        self.registry = registry
        self.models = models  # a skewless.serving.model_registry.ModelRegistry, or None
        self._docs: dict[int, dict] = {}
        self._rows: dict[int, list[Row]] = {}
        self._lock = threading.Lock()

    # -- registry versions (immutable: cached) ---------------------------------------------------------------
    def latest(self) -> int:
        return self.registry.store.latest()

    def doc(self, version: int) -> dict:
        got = self._docs.get(version)
        if got is None:
            got = json.loads(self.registry.store.read(version)) if version else {
                "version": 0, "objects": {}, "committed_at": "", "author": "", "message": ""}
            with self._lock:
                self._docs[version] = got
        return got

    def versions(self) -> list[dict]:
        """Every version, newest first: number, when, who, message and object counts per UI section."""
        out = []
        for v in sorted(self.registry.store.versions(), reverse=True):
            d = self.doc(v)
            counts = dict.fromkeys(SECTIONS, 0)
            for r in self.rows(v):
                counts[r.section] += 1
            out.append({"version": v, "committed_at": d.get("committed_at", ""), "author": d.get("author", ""),
                        "message": d.get("message", ""), "counts": counts})
        return out

    def rows(self, version: int | None = None) -> list[Row]:
        version = self.latest() if version is None else version
        got = self._rows.get(version)
        if got is None:
            got = []
            for kind, objs in sorted(self.doc(version).get("objects", {}).items()):
                for name, e in sorted(objs.items()):
                    s = e["spec"]
                    if section_of(kind, s) is None:
                        continue
                    got.append(Row(section_of(kind, s), kind, name, s.get("owner", "") or "", s.get("tags") or {},
                                   s.get("description", "") or "", e["version"], e["registry_version"]))
            with self._lock:
                self._rows[version] = got
        return got

    def search(self, q: str, section: str | None = None) -> list[Row]:
        words = q.lower().split()
        return [r for r in self.rows() if (section is None or r.section == section) and r.matches(words)]

    def entry(self, kind: str, name: str, version: int | None = None) -> dict | None:
        version = self.latest() if version is None else version
        return self.doc(version).get("objects", {}).get(kind, {}).get(name)

    def history(self, kind: str, name: str) -> list[dict]:
        """Each distinct definition of the object, oldest first, with the registry version that made it."""
        out: list[dict] = []
        for v in sorted(self.registry.store.versions()):
            e = self.doc(v).get("objects", {}).get(kind, {}).get(name)
            if e and (not out or out[-1]["version"] != e["version"]):
                out.append({"version": e["version"], "registry_version": e["registry_version"],
                            "updated_at": e["updated_at"], "spec": e["spec"]})
        return out

    def diff(self, a: int, b: int) -> Plan:
        """What changed from registry version ``a`` to ``b`` (the same diff ``skewless plan`` prints)."""
        specs = [{k: {n: e["spec"] for n, e in objs.items()} for k, objs in self.doc(v).get("objects", {}).items()}
                 for v in (a, b)]
        return diff(a, specs[0], specs[1])

    def warm(self) -> None:
        """Parse every version now (at start-up, in a thread): later requests find them cached."""
        for v in self.registry.store.versions():
            self.rows(v)

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()
            self._rows.clear()

    # -- models (mutable: read per request) ------------------------------------------------------------------
    def model_rows(self) -> list[dict]:
        if self.models is None:
            return []
        out = []
        for name in self.models.list_models():
            # The number of the newest version record (one listing; the records themselves are not read).
            latest = self.models._rs(name, "versions").latest()
            out.append({"name": name, "stages": self.models.stages(name), "latest": latest})
        return out

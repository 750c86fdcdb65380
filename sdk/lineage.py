"""Lineage: which data feeds which features, services, training sets, model versions and endpoints, both ways.

    g = lineage.graph(store, models=ModelRegistry(store).records(),   # model versions and endpoints: optional,
                      endpoints=target.endpoints())                     # given by the serving layer
    g.upstream("model/credit@2")      # what version 2 of model credit read, down to its sources
    g.downstream("zipcode:city")      # a feature ref: the services, training sets, models and endpoints using it
    g.paths("feature_view/zipcode", "endpoint/credit")
    g.to_dict()                       # {"nodes": [...], "edges": [...]}: JSON, what the web UI draws

Nodes are ``kind/name`` (``@version`` for model versions), kinds in ``KINDS``. Edges point the way data flows.
Features are nodes of their own (``feature/view:name``, ``feature/transform:output``), so a question about one
feature follows it through transforms, services, training sets and models. The graph is read from the feature
registry (definitions, registered training sets); model versions and endpoints are handed in by the caller that
has the serving layer (``serving.ModelRegistry.records()``, a deploy target's ``endpoints()``), so the core neither
imports serving nor reads its storage layout. Model versions packaged before training sets were registered point
at their feature service directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

from .errors import NotFoundError, ValidationError

KINDS = ("source", "feature_view", "aggregated_view", "transform", "feature", "feature_service", "training_set",
         "stage", "model", "endpoint")


@dataclass(frozen=True)
class Node:
    kind: str
    name: str
    version: int | None = None
    attrs: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}" + (f"@{self.version}" if self.version is not None else "")


@dataclass(frozen=True)
class Edge:
    source: str  # node id data flows from
    target: str  # node id it flows to
    relation: str  # "feeds", "has_feature", "input", "output", "serves", "trained_on", "labels", "deployed", "scores"
    attrs: dict = field(default_factory=dict, compare=False, hash=False)


class Graph:
    def __init__(self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = ()):
        self.nodes: dict[str, Node] = {n.id: n for n in nodes}
        self.edges: list[Edge] = []
        self._seen: set[tuple[str, str, str]] = set()
        for e in edges:
            self.add_edge(e)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def add_edge(self, edge: Edge) -> None:
        key = (edge.source, edge.target, edge.relation)
        if key not in self._seen:
            self._seen.add(key)
            self.edges.append(edge)

    # -- queries -------------------------------------------------------------------------------------------
    def find(self, name: str) -> list[Node]:
        """The nodes ``name`` means: a node id (``kind/name[@v]``), a ``view:feature`` ref, or a bare name (every
        version of a model). NotFoundError when none; ValidationError when the name is taken by several kinds."""
        if name in self.nodes:
            return [self.nodes[name]]
        if f"feature/{name}" in self.nodes:
            return [self.nodes[f"feature/{name}"]]
        hits = [n for n in self.nodes.values() if n.name == name]
        if not hits:
            raise NotFoundError(f"{name!r} is not in the lineage graph (give a node id such as feature_view/NAME, "
                                "a view:feature ref, or a name)")
        kinds = {n.kind for n in hits}
        if len(kinds) > 1:
            raise ValidationError(f"{name!r} names several objects: {sorted(n.id for n in hits)}; give one id")
        return sorted(hits, key=lambda n: n.id)

    def _walk(self, name: str, forward: bool) -> "Graph":
        start = [n.id for n in self.find(name)]
        out: dict[str, list[Edge]] = {}
        for e in self.edges:
            out.setdefault(e.source if forward else e.target, []).append(e)
        seen, todo, edges = set(start), list(start), []
        while todo:
            for e in out.get(todo.pop(), []):
                edges.append(e)
                nxt = e.target if forward else e.source
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return Graph([self.nodes[i] for i in seen], edges)

    def upstream(self, name: str) -> "Graph":
        """``name`` and everything it is derived from."""
        return self._walk(name, forward=False)

    def downstream(self, name: str) -> "Graph":
        """``name`` and everything derived from it."""
        return self._walk(name, forward=True)

    def of_kind(self, kind: str) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.kind == kind), key=lambda n: n.id)

    def paths(self, source: str, target: str, limit: int = 100) -> list[list[str]]:
        """Every path (node ids) from ``source`` to ``target`` along the edges, at most ``limit``."""
        (src,), dst = [n.id for n in self.find(source)][:1], {n.id for n in self.find(target)}
        out: dict[str, list[str]] = {}
        for e in self.edges:
            out.setdefault(e.source, []).append(e.target)
        found: list[list[str]] = []
        stack = [[src]]
        while stack and len(found) < limit:
            path = stack.pop()
            if path[-1] in dst:
                found.append(path)
                continue
            stack += [path + [n] for n in out.get(path[-1], []) if n not in path]
        return sorted(found)

    def to_dict(self) -> dict:
        """``{"nodes": [{"id", "kind", "name", "version", "attrs"}], "edges": [{"source", "target", "relation",
        "attrs"}]}``, sorted: stable JSON for the UI and scripts."""
        return {"nodes": [{"id": n.id, **asdict(n)} for n in sorted(self.nodes.values(), key=lambda n: n.id)],
                "edges": [asdict(e) for e in sorted(self.edges, key=lambda e: (e.source, e.target, e.relation))]}


def _source_name(src: dict) -> str:
    return src.get("name") or src.get("path") or src.get("table") or f"{src.get('type', 'source')} query"


def _add_definitions(g: Graph, specs: dict[str, dict[str, dict]]) -> None:
    for name, v in specs.get("feature_view", {}).items():
        kind = "aggregated_view" if v.get("aggregations") else "feature_view"
        vid = g.add(Node(kind, name, attrs={"entities": v["entities"], "online": v.get("online"),
                                            "owner": v.get("owner", ""), "tags": v.get("tags", {}),
                                            **({"label": True} if v.get("label") else {})}))
        if v.get("source"):
            g.add_edge(Edge(g.add(Node("source", _source_name(v["source"]), attrs={"type": v["source"].get("type")})),
                            vid, "feeds"))
        served = [a["name"] for a in v["aggregations"]] if v.get("aggregations") else \
            [f["name"] for f in v["schema"] if f["name"] not in v["join_keys"]]
        for f in served:
            g.add_edge(Edge(vid, g.add(Node("feature", f"{name}:{f}")), "has_feature"))
    for name, t in specs.get("transform", {}).items():
        tid = g.add(Node("transform", name, attrs={"mode": t.get("mode"), "hash": t.get("hash")}))
        for ref in t["inputs"].values():
            g.add_edge(Edge(g.add(Node("feature", ref)), tid, "input"))
        for o in t["outputs"]:
            g.add_edge(Edge(tid, g.add(Node("feature", f"{name}:{o['name']}")), "output"))
    for name, s in specs.get("feature_service", {}).items():
        sid = g.add(Node("feature_service", name, attrs={"owner": s.get("owner", ""), "tags": s.get("tags", {})}))
        for ref in s["features"]:
            g.add_edge(Edge(g.add(Node("feature", ref)), sid, "serves"))


def _add_training_sets(g: Graph, state) -> None:
    for name, entry in state.objects.get("training_set", {}).items():
        ts = entry["spec"]
        tid = g.add(Node("training_set", name, attrs={"version": entry["version"], "snapshot": ts["snapshot"],
                                                     "entity_fingerprint": ts.get("entity_fingerprint")}))
        if ts.get("feature_service"):
            g.add_edge(Edge(g.add(Node("feature_service", ts["feature_service"])), tid, "trained_on"))
        for ref in ts["features"]:
            g.add_edge(Edge(g.add(Node("feature", ref)), tid, "trained_on"))
        for ref in ts.get("labels", []):  # a label view's columns: the training set's targets
            g.add_edge(Edge(g.add(Node("feature", ref)), tid, "labels"))


def _add_models(g: Graph, docs: list[dict]) -> None:
    for doc in docs:
        m = doc["manifest"]
        mid = g.add(Node("model", doc["name"], doc["version"], attrs={"stages": doc.get("stages", []),
                                                                     "flavor": m.get("flavor")}))
        ts = (m.get("training") or {}).get("training_set")
        if ts:
            g.add_edge(Edge(g.add(Node("training_set", ts["name"])), mid, "trained_on",
                            {"version": ts.get("version")}))
        else:  # packaged before training sets were registered (or from a bare snapshot)
            g.add_edge(Edge(g.add(Node("feature_service", m["feature_service"])), mid, "trained_on"))
        refs = [i["source"] for i in m["inputs"] if not i["source"].startswith("request:")]
        refs += list(m.get("key_lookups", {}).values())
        for ref in refs:
            g.add_edge(Edge(g.add(Node("feature", ref)), mid, "input"))


def _add_stages(g: Graph, specs: dict[str, dict[str, dict]]) -> None:
    """Stages (skewless.stages): their inputs feed them, they write their output view; a model stage is fed by the
    versions of its model (the pinned one, else every version: each run takes the newest)."""
    def node(kind: str, name: str) -> str:
        if kind == "feature_view" and f"aggregated_view/{name}" in g.nodes:
            return f"aggregated_view/{name}"
        return g.add(Node(kind, name))

    for name, s in specs.get("stage", {}).items():
        sid = g.add(Node("stage", name, attrs={"type": s.get("type"), "model": s.get("model"),
                                               "version": s.get("version"), "fit_split": s.get("fit_split")}))
        for ref in s["inputs"]:
            kind, _, obj = ref.partition("/")
            g.add_edge(Edge(node(kind, obj), sid, "input"))
        g.add_edge(Edge(sid, node("feature_view", s["output"]), "output"))
        if s.get("model"):
            for m in g.of_kind("model"):
                if m.name == s["model"] and s.get("version") in (None, m.version):
                    g.add_edge(Edge(m.id, sid, "scores"))


def _add_endpoints(g: Graph, endpoints: Iterable) -> None:
    for ep in endpoints:
        model = getattr(ep, "model", None)
        if model is None:
            continue
        eid = g.add(Node("endpoint", ep.name, attrs={"target": ep.target, "status": ep.status}))
        for v in ep.variants:
            g.add_edge(Edge(g.add(Node("model", model, v.version)), eid, "deployed",
                            {"variant": v.name, "weight": v.weight}))


def graph(store, models: Iterable[dict] = (), endpoints: Iterable = ()) -> Graph:
    """The whole lineage graph of ``store``'s feature registry, with ``models``: model version records (``name``,
    ``version``, ``stages``, ``manifest`` as a mapping: ``serving.ModelRegistry.records()``) and ``endpoints``:
    deploy targets' ``Endpoint`` objects (``name``, ``target``, ``status``, ``model``, ``variants`` with ``version``
    and ``weight``)."""
    state = store._registry_state(fresh=True)
    g = Graph()
    _add_definitions(g, state.specs())
    _add_training_sets(g, state)
    _add_models(g, models)
    _add_stages(g, state.specs())
    _add_endpoints(g, endpoints)
    return g

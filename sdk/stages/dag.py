"""The stages' DAG, inferred from the registry: a stage depends on the stage that writes a view it reads (directly,
through a feature service's features, or through a transform's inputs). Nothing else declares it, so it cannot
disagree with the stages. A cycle, or two stages writing one view, is a ``DefinitionError`` at ``apply``."""

from __future__ import annotations

from ..errors import DefinitionError, NotFoundError
from .definition import KIND


def _views_of_service(spec: dict, specs: dict) -> list[str]:
    out: list[str] = []
    transforms = specs.get("transform", {})
    for ref in spec["features"]:
        view = ref.partition(":")[0]
        if view in transforms:  # a transform output: the views its inputs read
            out += [r.partition(":")[0] for r in transforms[view]["inputs"].values()]
        else:
            out.append(view)
    return list(dict.fromkeys(out))


def input_views(spec: dict, specs: dict) -> list[str]:
    """The feature views a stage reads: its view inputs and its services' views (training sets are fixed
    snapshots: a rerun upstream does not change them, so they are no edge)."""
    out: list[str] = []
    for ref in spec["inputs"]:
        kind, _, name = ref.partition("/")
        if kind == "feature_view":
            out.append(name)
        elif kind == "feature_service":
            out += _views_of_service(specs["feature_service"][name], specs)
    return list(dict.fromkeys(out))


class Dag:
    """The stages of one registry state (``specs``: kind -> name -> spec) and their dependencies."""

    def __init__(self, specs: dict):
        self.specs = specs
        self.stages: dict[str, dict] = dict(specs.get(KIND, {}))
        self.writer: dict[str, str] = {}  # view -> the stage writing it
        for name, s in sorted(self.stages.items()):
            other = self.writer.get(s["output"])
            if other is not None:
                raise DefinitionError(f"stages {other!r} and {name!r} both write view {s['output']!r}: a view has one "
                                      "writing stage")
            self.writer[s["output"]] = name
        self.upstream_of: dict[str, list[str]] = {
            name: sorted({self.writer[v] for v in input_views(s, specs) if v in self.writer})
            for name, s in self.stages.items()}
        self._check_acyclic()

    def _check_acyclic(self) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                # path order is downstream -> upstream; said the way data flows
                raise DefinitionError("stages form a cycle: " + " -> ".join(reversed(cycle)) + " (each writes a "
                                      "view the next one reads); a stage's inputs must not depend on its output")
            state[name] = 1
            for up in self.upstream_of[name]:
                visit(up, path + [name])
            state[name] = 2

        for name in sorted(self.stages):
            visit(name, [])

    def stage(self, name: str) -> dict:
        if name not in self.stages:
            raise NotFoundError(f"stage {name!r} is not in the registry; known: {sorted(self.stages)}")
        return self.stages[name]

    def order(self, name: str) -> list[str]:
        """``name`` and every stage upstream of it, each after the stages it reads from."""
        self.stage(name)
        out: list[str] = []

        def visit(n: str) -> None:
            if n in out:
                return
            for up in self.upstream_of[n]:
                visit(up)
            out.append(n)

        visit(name)
        return out

    def upstream_of_views(self, views: list[str]) -> list[str]:
        """The stages whose outputs reach ``views``: their writers and everything upstream of those."""
        out: list[str] = []
        for v in views:
            if v in self.writer:
                out += [s for s in self.order(self.writer[v]) if s not in out]
        return out


def check(specs: dict) -> None:
    """The registry's reference checks for stages: inputs and outputs exist, one writer per view, no cycle."""
    for name, s in specs.get(KIND, {}).items():
        for ref in s["inputs"]:
            kind, _, obj = ref.partition("/")
            if obj not in specs.get(kind, {}):
                raise DefinitionError(f"stage {name!r} refers to unknown {kind.replace('_', ' ')} {obj!r}")
        out = specs["feature_view"].get(s["output"])
        if out is None:
            raise DefinitionError(f"stage {name!r} writes unknown feature view {s['output']!r} (declare the view)")
        if out.get("label"):
            raise DefinitionError(f"stage {name!r} writes label view {s['output']!r}; a stage writes features")
    Dag(specs)

"""Versions of a stage side by side (docs/concepts/stages.md#versions-side-by-side).

A stage named ``BASE@vN`` is version N of stage BASE. Versions of one stage declare the same output view (the
*logical* view, ``scaled``) and each writes its own *physical* view, ``scaled__vN``: a registry view skewless
derives at ``apply`` from the logical one (same schema, tagged ``skewless.stage_version``). Because each
version's rows live in a view of their own, point-in-time reads, materialization and the leakage guard work on
them unchanged: they never see two versions' rows at once.

Readers name a version in a feature reference: ``scaled@v2:spend_scaled`` (a version), ``scaled@staging:...``
(an alias), or ``scaled:...`` (unpinned: the ``production`` alias). Aliases are a registry object per stage (kind
``stage_alias``, managed by skewless: ``skewless stage promote`` / ``rollback``), so every reader of one registry
version resolves them alike, and each change is a registry version (its history is the promotions' history).
"""

from __future__ import annotations

import re

from ..errors import DefinitionError, NotFoundError

ALIASES = ("production", "staging")
ALIAS_KIND = "stage_alias"
DEFAULT_ALIAS = "production"  # what an unpinned read of a versioned output resolves to
VIEW_TAG = "skewless.stage_version"  # a derived physical view's tag: the stage version writing it
_VERSION = re.compile(r"v([1-9][0-9]{0,5})")


def split_stage(name: str) -> tuple[str, int | None]:
    """``"scale@v2"`` -> ``("scale", 2)``; an unversioned name -> ``(name, None)``."""
    base, sep, v = name.partition("@")
    if not sep:
        return name, None
    m = _VERSION.fullmatch(v)
    if m is None:
        raise DefinitionError(f"stage name {name!r}: a stage version is named NAME@vN (N = 1, 2, ...)")
    return base, int(m.group(1))


def physical(view: str, version: int) -> str:
    """The view version ``version`` of a stage writes its output ``view`` to."""
    return f"{view}__v{version}"


def parse_pin(pin: str) -> int | str:
    """A pin's version number (``"v2"`` -> 2) or its alias (``"staging"``); anything else is a DefinitionError."""
    m = _VERSION.fullmatch(pin)
    if m is not None:
        return int(m.group(1))
    if pin not in ALIASES:
        raise DefinitionError(f"{pin!r} pins no stage version: write @vN (a version) or @{' / @'.join(ALIASES)}")
    return pin


class StageAliases:
    """The registry object holding one stage's aliases: ``held`` alias -> the versions it has held, the current one
    last (a rollback pops it), and ``event``, the change that made this object version (action promote |
    rollback, alias, version, previous, by, at)."""

    kind = ALIAS_KIND

    def __init__(self, name: str, held: dict[str, list[int]], event: dict | None = None):
        self.name, self.held, self.event = name, {a: list(v) for a, v in held.items() if v}, dict(event or {})

    @property
    def aliases(self) -> dict[str, int]:
        return {a: v[-1] for a, v in sorted(self.held.items())}

    def to_dict(self) -> dict:
        return {"name": self.name, "aliases": self.aliases, "held": self.held, "event": self.event,
                "tags": {"skewless.kind": ALIAS_KIND}}  # managed: `apply --prune` keeps it

    @classmethod
    def from_dict(cls, d: dict) -> "StageAliases":
        return cls(d["name"], d.get("held", {}), d.get("event"))


class Versions:
    """The versioned stages of one registry state (``specs``: kind -> name -> spec) and their aliases."""

    def __init__(self, specs: dict):
        self.of_view: dict[str, dict[int, str]] = {}  # logical output view -> version -> stage name
        self.base_of_view: dict[str, str] = {}
        for name, s in sorted(specs.get("stage", {}).items()):
            base, version = split_stage(name)
            if version is None:
                continue
            other = self.base_of_view.setdefault(s["output"], base)
            if other != base:
                raise DefinitionError(f"stages {other!r} and {base!r} both write view {s['output']!r}: a view has one "
                                      "writing stage (its versions are NAME@v1, NAME@v2, ...)")
            self.of_view.setdefault(s["output"], {})[version] = name
        self.aliases: dict[str, dict[str, int]] = {n: dict(s["aliases"])
                                                   for n, s in specs.get(ALIAS_KIND, {}).items()}

    def output(self, spec: dict) -> str:
        """The view a stage (by its spec) writes: its physical view when it is a version."""
        version = split_stage(spec["name"])[1]
        return spec["output"] if version is None else physical(spec["output"], version)

    def versions(self, base: str) -> dict[int, str]:
        """Version -> stage name of stage ``base`` (empty: not versioned)."""
        for view, b in self.base_of_view.items():
            if b == base:
                return dict(self.of_view[view])
        return {}

    def view(self, ref: str, *, strict: bool = True) -> str | None:
        """The view a read of ``ref`` (a view name, possibly pinned: ``scaled@v2``, ``scaled@staging``) reads. An
        unpinned versioned output reads its ``production`` version. An alias no version holds: NotFoundError, or
        None when not ``strict`` (the DAG at ``apply``, before any promotion). An unknown version: NotFoundError."""
        vname, sep, pin = ref.partition("@")
        versions = self.of_view.get(vname)
        if versions is None:
            if sep:
                raise NotFoundError(f"{ref!r}: view {vname!r} is not written by versions of a stage (NAME@vN), so "
                                    "there is no version to pin")
            return ref
        base = self.base_of_view[vname]
        want = parse_pin(pin) if sep else DEFAULT_ALIAS
        if isinstance(want, int):
            if want not in versions:
                raise NotFoundError(f"{ref!r}: stage {base!r} has no version v{want}; it has "
                                    f"{', '.join(f'v{v}' for v in sorted(versions))}")
            return physical(vname, want)
        version = self.aliases.get(base, {}).get(want)
        if version is None:
            if not strict:
                return None
            raise NotFoundError(f"{ref!r}: no version of stage {base!r} is {want!r}"
                                + ("" if sep else f" (an unpinned read of view {vname!r} reads the {want!r} version)")
                                + f": pin one ({vname}@v{min(versions)}) or `skewless stage promote {base} "
                                  f"v{min(versions)} --alias {want}`")
        return physical(vname, version)


def derive_views(specs: dict, managed_tag: str) -> None:
    """Add (or refresh) the physical view of every stage version to ``specs``: its logical view's definition under
    the physical name. A declared view of that name is a DefinitionError."""
    Versions(specs)  # two stages' versions writing one view: named as such, before their views clash
    views = specs.get("feature_view", {})
    for name, s in specs.get("stage", {}).items():
        version = split_stage(name)[1]
        logical = views.get(s["output"])
        if version is None or logical is None:  # an unknown output: the stages' reference check names it
            continue
        target = physical(s["output"], version)
        held = views.get(target)
        if held is not None and (held.get("tags") or {}).get(VIEW_TAG) != name:
            raise DefinitionError(f"feature view {target!r} is declared, but it is the view stage {name!r} writes "
                                  f"(version {version} of view {s['output']!r}): rename the view")
        # managed (kept by `apply --prune`), keeping a managed logical view's own kind (a batch prediction view)
        tags = {managed_tag: "stage_version", **(logical.get("tags") or {}), VIEW_TAG: name}
        views[target] = {**logical, "name": target, "tags": tags,
                         "description": f"version {version} of view {s['output']!r}, written by stage {name!r}"}

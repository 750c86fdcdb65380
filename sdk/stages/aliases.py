"""Promoting a stage version to an alias and rolling it back (``skewless stage promote`` / ``rollback``), as model
versions are promoted: each change is checked (``deploy`` on the stage's output view), committed as the stage's
``stage_alias`` registry object (a new registry version: its object history is the promotions' history) and
audited. A rollback returns the alias to the version it held before its newest promotion."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone

from ..errors import ConflictError, NotFoundError, ValidationError
from .versions import ALIAS_KIND, ALIASES, DEFAULT_ALIAS, StageAliases, parse_pin

_ATTEMPTS = 20


def versions_of(state, stage: str) -> tuple[dict[int, str], str]:
    """Stage ``stage``'s versions (version -> stage name) and its logical output view; NotFoundError if none."""
    versions = state.versions.versions(stage)
    if not versions:
        known = sorted({n.partition("@")[0] for n in state.objects.get("stage", {}) if "@" in n})
        raise NotFoundError(f"stage {stage!r} has no versions (stages named {stage}@v1, {stage}@v2, ...); "
                            f"versioned stages: {known}")
    output = state.objects["stage"][next(iter(versions.values()))]["spec"]["output"]
    return versions, output


def current(store, stage: str) -> dict[str, int]:
    """Alias -> version of stage ``stage`` (NotFoundError: the stage has no versions)."""
    state = store._registry_state(fresh=True)
    versions_of(state, stage)
    return dict(state.versions.aliases.get(stage, {}))


def history(store, stage: str) -> list[dict]:
    """Every promotion and rollback of stage ``stage``'s aliases, oldest first (each with its registry version)."""
    try:
        versions = store.registry.history(ALIAS_KIND, stage)
    except NotFoundError:
        return []
    return [{**v.spec["event"], "registry_version": v.registry_version} for v in versions]


def _change(store, stage: str, alias: str, action: str, version: int | str | None, author: str | None) -> dict:
    if alias not in ALIASES:
        raise ValidationError(f"alias must be one of {', '.join(ALIASES)}, not {alias!r}")
    for _ in range(_ATTEMPTS):
        state = store._registry_state(fresh=True)
        versions, output = versions_of(state, stage)
        who = store.authorize("deploy", [("view", output)], state)  # before anything changes: a denial does nothing
        current = state.objects.get(ALIAS_KIND, {}).get(stage)
        obj = StageAliases.from_dict(current["spec"]) if current else StageAliases(stage, {})
        held = list(obj.held.get(alias, []))
        previous = held[-1] if held else None
        if action == "promote":
            want = int(version) if isinstance(version, str) and version.isdigit() else (
                parse_pin(version) if isinstance(version, str) else version)
            if isinstance(want, str):  # promote what another alias holds (staging -> production)
                want = obj.aliases.get(want)
                if want is None:
                    raise NotFoundError(f"stage {stage!r}: no version is {version!r}")
            if want not in versions:
                raise NotFoundError(f"stage {stage!r} has no version v{want}; it has "
                                    f"{', '.join(f'v{v}' for v in sorted(versions))}")
            if previous == want:
                return obj.aliases  # already there: nothing to record
            held.append(want)
        else:
            if len(held) < 2:
                raise ValidationError(f"stage {stage!r}: alias {alias!r} has " + (
                    f"held only v{previous}" if held else "never been set") + ": nothing to roll back to")
            held.pop()
        event = {"action": action, "alias": alias, "version": held[-1], "previous": previous,
                 "by": author or who or _user(), "at": datetime.now(timezone.utc).isoformat()}
        new = StageAliases(stage, {**obj.held, alias: held}, event)
        try:
            store.registry.put(ALIAS_KIND, stage, new.to_dict(), message=f"{action} {stage}@v{held[-1]} as {alias}",
                               author=author)
        except ConflictError:  # another commit landed first: re-read and decide again
            continue
        store.refresh_registry()
        store.audit_log.append(who, "deploy", f"stage:{stage}", "allowed",
                               f"{action} {alias} to v{held[-1]} (was " + (f"v{previous})" if previous else "none)"))
        return new.aliases
    raise ConflictError(f"stage {stage!r}: {_ATTEMPTS} concurrent registry commits won first")


def promote(store, stage: str, version: int | str, alias: str = DEFAULT_ALIAS, *, author: str | None = None
            ) -> dict[str, int]:
    """Make version ``version`` (2, ``"v2"``, or the alias holding it: ``"staging"``) of stage ``stage`` its
    ``alias``. Unpinned reads of its output (and ``view@alias`` pins) read that version from then on (other processes
    within their registry cache time). Returns the stage's aliases."""
    return _change(store, stage, alias, "promote", version, author)


def rollback(store, stage: str, alias: str = DEFAULT_ALIAS, *, author: str | None = None) -> dict[str, int]:
    """Return ``alias`` of stage ``stage`` to the version it held before its newest promotion (ValidationError when
    it held no other). Returns the stage's aliases."""
    return _change(store, stage, alias, "rollback", None, author)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return "unknown"

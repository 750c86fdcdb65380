"""Resolving feature references ("view:feature", a FeatureService, or its name) against a registry state."""

from __future__ import annotations

from typing import Sequence

from .definitions import FeatureService, FeatureView
from .errors import DefinitionError, NotFoundError


def resolve(state, features: Sequence[str] | FeatureService | str) -> list[tuple[FeatureView, list[str]]]:
    """[(view, [feature, ...]), ...] in order of first appearance; a feature asked twice is an error."""
    if isinstance(features, FeatureService):
        refs = features.feature_refs
    elif isinstance(features, str):
        refs = state.get("feature_service", features).feature_refs
    else:
        refs = list(features)
    if not refs:
        raise DefinitionError("no features requested")
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise DefinitionError(f"feature reference {ref!r} must look like 'view:feature'")
        view, feat = ref.split(":")
        by_view.setdefault(view, [])
        if feat in by_view[view]:
            raise DefinitionError(f"feature {ref!r} is requested twice")
        by_view[view].append(feat)
    out = []
    for vname, feats in by_view.items():
        try:
            view = state.get("feature_view", vname)
        except NotFoundError as exc:
            raise DefinitionError(str(exc)) from None
        unknown = [f for f in feats if f not in view.feature_names]
        if unknown:
            raise DefinitionError(f"feature view {vname!r} has no features {unknown}; it has {view.feature_names}")
        out.append((view, feats))
    return out

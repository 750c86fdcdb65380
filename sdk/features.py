"""Resolving feature references ("view:feature", a FeatureService, or its name) against a registry state."""

from __future__ import annotations

from typing import Sequence

from .definitions import FeatureService, FeatureView
from .errors import DefinitionError, NotFoundError


def resolve(state, features: Sequence[str] | FeatureService | str, *, labels: bool = False
            ) -> list[tuple[FeatureView, list[str]]]:
    """[(view, [feature, ...]), ...] in order of first appearance; a feature asked twice is an error.

    Features name plain or aggregated views, never label views (labels are not model inputs); with ``labels`` the
    refs are a training set's labels and must all name label views (skewless.labels)."""
    if isinstance(features, FeatureService):
        refs = features.feature_refs
    elif isinstance(features, str):
        refs = state.get("feature_service", features).feature_refs
    else:
        refs = list(features)
    what = "label" if labels else "feature"
    if not refs:
        raise DefinitionError(f"no {what}s requested")
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise DefinitionError(f"{what} reference {ref!r} must look like 'view:{what}'")
        view, feat = ref.split(":")
        by_view.setdefault(view, [])
        if feat in by_view[view]:
            raise DefinitionError(f"{what} {ref!r} is requested twice")
        by_view[view].append(feat)
    out = []
    for vname, feats in by_view.items():
        read = state.read_view(vname)  # a stage version's own view (skewless.stages.versions); NotFoundError
        try:
            view = state.get("feature_view", read)
        except NotFoundError as exc:
            raise DefinitionError(str(exc)) from None
        if view.is_label != labels:
            raise DefinitionError(
                f"{vname!r} is a label view: labels are not model inputs; request them with labels=[...]"
                if view.is_label else f"labels must name label views (skewless.LabelView); {vname!r} is a feature view")
        unknown = [f for f in feats if f not in view.feature_names]
        if unknown:
            raise DefinitionError(f"{'label' if labels else 'feature'} view {vname!r} has no {what}s {unknown}; it has "
                                  f"{view.feature_names}")
        out.append((view, feats))
    return out

"""Feature references that name transform outputs ("transform:output") besides view features ("view:feature"):
which views to read (the requested features plus every input of the requested transforms, read even when not
requested) and how the result's columns are named."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..definitions import FeatureService, FeatureView
from ..dtypes import DType
from ..errors import DefinitionError, NotFoundError, ValidationError
from ..features import resolve
from .definition import OnDemandTransform


@dataclass
class TransformRequest:
    refs: list[str]  # what was asked for, in order
    resolved: list[tuple[FeatureView, list[str]]]  # the views to read: requested features, then transform inputs
    transforms: list[OnDemandTransform]  # each requested transform once, in order of first request
    dtypes: dict[str, DType] = field(default_factory=dict)  # "view:feature" -> its dtype, for every read feature

    def names(self, full_feature_names: bool) -> list[str]:
        """The result's column name of each ref; a name given twice is a ValidationError."""
        names = [ref.replace(":", "__") if full_feature_names else ref.split(":")[1] for ref in self.refs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValidationError(f"feature names {dup} appear twice (two views or transforms); use "
                                  "full_feature_names=True")
        return names


def refs_of(state, features: Sequence[str] | FeatureService | str) -> list[str]:
    if isinstance(features, FeatureService):
        return list(features.feature_refs)
    if isinstance(features, str):
        return list(state.get("feature_service", features).feature_refs)
    return list(features)


def transform_names(state) -> set[str]:
    return set(state.objects.get("transform", {}))


def resolve_request(state, features: Sequence[str] | FeatureService | str) -> TransformRequest | None:
    """None when no ref names a transform (the plain path), else what to read and run."""
    refs = refs_of(state, features)
    names = transform_names(state)
    if not names or not any(isinstance(r, str) and r.split(":")[0] in names for r in refs):
        return None
    view_refs: list[str] = []
    transforms: dict[str, OnDemandTransform] = {}
    seen: set[str] = set()
    for ref in refs:
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise DefinitionError(f"feature reference {ref!r} must look like 'view:feature' or 'transform:output'")
        if ref in seen:
            raise DefinitionError(f"feature {ref!r} is requested twice")
        seen.add(ref)
        owner, out = ref.split(":")
        if owner in names:
            t = transforms.get(owner) or state.get("transform", owner)
            if out not in t.output_names:
                raise DefinitionError(f"transform {owner!r} has no output {out!r}; it has {t.output_names}")
            transforms[owner] = t
        else:
            view_refs.append(ref)
    for t in transforms.values():
        view_refs += [r for r in t.inputs.values() if r not in view_refs]
    try:
        resolved = resolve(state, view_refs) if view_refs else []
    except NotFoundError as exc:
        raise DefinitionError(str(exc)) from None
    dts = {f"{v.name}:{f.name}": f.dtype for v, _ in resolved for f in v.features}
    return TransformRequest(refs, resolved, list(transforms.values()), dts)


def check_inputs(transform: OnDemandTransform, views: dict[str, FeatureView]) -> None:
    """At apply: every input names a feature of a view (plain or aggregated), not another transform's output."""
    for col, ref in transform.inputs.items():
        vname, feat = ref.split(":")
        view = views.get(vname)
        if view is None:
            raise DefinitionError(f"transform {transform.name!r}: input {col!r} refers to unknown feature view "
                                  f"{vname!r} (a transform's inputs are view features)")
        if view.is_label:
            raise DefinitionError(f"transform {transform.name!r}: input {col!r} reads label view {vname!r}; labels "
                                  "are not model inputs")
        if feat not in view.feature_names:
            raise DefinitionError(f"transform {transform.name!r}: input {ref!r}: view {vname!r} has no feature "
                                  f"{feat!r}; it has {view.feature_names}")

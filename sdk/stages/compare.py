"""The A/B comparison of two versions of a stage on the same entity rows: each output feature read point in time
from each version's view in one request (so the rows are the same rows), and per feature how far they agree.
Downstream model metrics are added by the serving layer (``skewless.serving.stage_compare``), which scores models."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ValidationError
from .aliases import versions_of
from .versions import parse_pin, physical


def version_number(state, stage: str, pin: int | str) -> int:
    """A pin (2, ``"2"``, ``"v2"``, an alias) of stage ``stage`` as its version number (NotFoundError if unknown)."""
    versions, view = versions_of(state, stage)
    if isinstance(pin, str) and pin.isdigit():
        pin = int(pin)
    ref = f"{view}@v{pin}" if isinstance(pin, int) else f"{view}@{pin}"
    if isinstance(pin, str):
        parse_pin(pin)
    return int(state.versions.view(ref).rpartition("__v")[2])


def agreement(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> dict[str, Any]:
    """How two columns of the same rows agree: rows, rows missing on each side, rows with both, the share of those
    equal; numbers also their means and the mean and largest absolute difference."""
    both = pc.and_(pc.is_valid(a), pc.is_valid(b))
    n_both = pc.sum(both).as_py() or 0
    out: dict[str, Any] = {"rows": len(a), "missing_a": a.null_count, "missing_b": b.null_count, "both": n_both}
    x, y = pc.filter(a, both), pc.filter(b, both)
    out["share_equal"] = (pc.sum(pc.equal(x, y)).as_py() or 0) / n_both if n_both else None
    if pa.types.is_integer(a.type) or pa.types.is_floating(a.type):
        diff = pc.abs(pc.subtract(pc.cast(x, pa.float64()), pc.cast(y, pa.float64())))
        out.update(mean_a=pc.mean(x).as_py(), mean_b=pc.mean(y).as_py(), mean_abs_diff=pc.mean(diff).as_py(),
                   max_abs_diff=pc.max(diff).as_py())
    return out


def compare_outputs(store, stage: str, a: int | str, b: int | str, entities: Any, *,
                    timestamp_column: str = "event_timestamp", point_in_time: str = "event") -> dict[str, Any]:
    """Versions ``a`` and ``b`` of stage ``stage`` (numbers, ``"v2"`` or aliases) on ``entities`` (as
    ``get_historical_features`` takes them): {stage, view, a: {pin, version, view}, b: ..., rows, outputs: feature
    -> ``agreement``}."""
    state = store._registry_state(fresh=True)
    _, view = versions_of(state, stage)
    va, vb = version_number(state, stage, a), version_number(state, stage, b)
    if va == vb:
        raise ValidationError(f"stage {stage!r}: {a!r} and {b!r} are both version v{va}: compare two versions")
    features = state.get("feature_view", view).feature_names
    refs = [f"{view}@v{v}:{f}" for v in (va, vb) for f in features]
    table = store.get_historical_features(entities, refs, full_feature_names=True, timestamp_column=timestamp_column,
                                          point_in_time=point_in_time).to_arrow()
    return {"stage": stage, "view": view, "rows": table.num_rows,
            "a": {"pin": str(a), "version": va, "view": physical(view, va)},
            "b": {"pin": str(b), "version": vb, "view": physical(view, vb)},
            "outputs": {f: agreement(table.column(f"{physical(view, va)}__{f}"),
                                     table.column(f"{physical(view, vb)}__{f}")) for f in features}}

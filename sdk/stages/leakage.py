"""The leakage guard: a training-set request with a split that reads a stage's output (directly, or through
stages downstream of it) must not get features from a stage fit on rows of the request's test split.

A fit row is in the request's test split when the request's split rule puts it there: by time (its time is past
the test cut-off) and by entity (its entity is one of the request's test entities, compared as hashes: see
``skewless.training_rows``); with both, when both do. The rows a stage was fit on are those its training set was
registered with (only its ``fit_split`` when the stage declares one). Any such row fails the request with a
``LeakageError`` naming the stage, the split and the overlap (rows, first and last row time); a fit that cannot be
checked (nothing recorded of it) fails too, saying why. ``allow_leakage=[stage, ...]`` accepts named stages; what
was accepted, with the overlaps found, is recorded with the registered training set.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import training_rows
from ..errors import LeakageError, ValidationError
from ..splits import Split, iso_us
from . import fits as fits_mod
from . import records
from .dag import Dag
from .definition import KIND

TEST = "test"


class _Request:
    """The request's split and entity rows; its test entities' hashes computed once, when an entity split asks."""

    def __init__(self, split: Split, entity_tables, key_types: Mapping[str, pa.DataType]):
        self.split, self._tables, self.key_types = split, entity_tables, key_types

    @cached_property
    def test_entities(self) -> pa.Array:
        keys = list(self.split.keys or ())
        found = []
        for t in self._tables(keys):
            names = self.split.entity_split([t.column(k) for k in keys], [self.key_types.get(k) for k in keys],
                                            t.num_rows)
            test = t.filter(pc.fill_null(pc.equal(names, TEST), False))
            found.append(np.unique(training_rows.entity_hashes(test, keys, self.key_types).to_numpy()))
        return pa.array(np.unique(np.concatenate(found)) if found else np.empty(0, np.uint64), pa.uint64())


def _overlap(stage: str, fit: fits_mod.Fit, request: _Request, registry_store) -> dict | None:
    """{rows, first, last} of the fit rows in the request's test split; None when there are none. LeakageError
    (``rows`` None) when the fit cannot be checked."""
    def unknown(why: str) -> LeakageError:
        return LeakageError(f"stage {stage!r}: cannot check it was fit on no rows of this request's {TEST!r} split: "
                            f"{why}. Pass allow_leakage=[{stage!r}] to accept it (recorded with the training set)",
                            stage=stage, split=TEST, rows=None)

    if fit.training_set is None:
        raise unknown(fit.why)
    kept = training_rows.read(registry_store, fit.training_set, fit.version)
    if kept is None:
        raise unknown(f"the rows of training set {fit.training_set!r} version {fit.version} were not kept (it was "
                      "registered before skewless kept them, or by a path that does not); register it again")
    rows, keys = kept
    if fit.split is not None:
        if "split" not in rows.column_names:
            raise unknown(f"it declares fit_split={fit.split!r} but training set {fit.training_set!r} version "
                          f"{fit.version} was registered without a split")
        rows = training_rows.of_split(rows, fit.split)
    split = request.split
    mask = pa.array(np.ones(rows.num_rows, dtype=bool))
    if split.time is not None:
        in_test = split.time_split(pc.cast(rows.column("t"), pa.timestamp("us", "UTC")))
        mask = pc.and_(mask, pc.fill_null(pc.equal(in_test, TEST), False))
    if split.entity is not None:
        if sorted(split.keys or ()) != keys:
            raise unknown(f"the split's entity keys {sorted(split.keys or ())} are not the keys its training set "
                          f"{fit.training_set!r} recorded its entities by ({keys})")
        mask = pc.and_(mask, pc.is_in(rows.column("entity"), value_set=request.test_entities))
    hit = rows.filter(mask)
    if not hit.num_rows:
        return None
    mm = pc.min_max(hit.column("t")).as_py()
    return {"split": TEST, "rows": hit.num_rows, "fit": str(fit),
            "first": iso_us(mm["min"]) if mm["min"] is not None else None,
            "last": iso_us(mm["max"]) if mm["max"] is not None else None}


def guard(store, views: Iterable[str], split: Split | None, entity_tables, key_types: Mapping[str, pa.DataType],
          allow: Iterable[str] | None) -> dict[str, Any]:
    """Check a request reading ``views`` with ``split`` (``entity_tables(columns)``: the entity rows' columns, in
    parts). Returns what ``allow`` accepted: stage -> the overlap found with each of its fits (empty: none). Raises
    LeakageError."""
    allow = list(allow or [])
    if not allow and (split is None or TEST not in split.names):
        return {}  # nothing to check: no registry read on the common path
    state = store._registry_state()
    specs = state.specs()
    stages = specs.get(KIND, {})
    unknown = sorted(set(allow) - set(stages))
    if unknown:
        raise ValidationError(f"allow_leakage names unknown stages {unknown}; known: {sorted(stages)}")
    accepted: dict[str, Any] = {}
    if split is None or TEST not in split.names or not stages:
        return accepted
    dag = Dag(specs)
    request = _Request(split, entity_tables, key_types)
    rstore = store.registry.store
    for name in dag.upstream_of_views(list(views)):
        for fit in fits_mod.of_stage(store, state, stages[name], records.completed(rstore, name)):
            try:
                found = _overlap(name, fit, request, rstore)
            except LeakageError as exc:
                if name not in allow:
                    raise
                found = {"split": TEST, "rows": None, "why": str(exc)}
            if found is None:
                continue
            if name in allow:
                accepted.setdefault(name, []).append(found)
                continue
            raise LeakageError(
                f"stage {name!r} was fit on {found['rows']} rows of this request's {TEST!r} split (row times "
                f"{found['first']} .. {found['last']}): its fit is {fit}, and this request reads its output view "
                f"{stages[name]['output']!r} (directly or through stages downstream of it). Fit it on rows outside "
                f"the {TEST!r} split (fit_split=, or a training set without them), or pass allow_leakage=[{name!r}] "
                "to accept it (recorded with the training set)",
                stage=name, split=TEST, rows=found["rows"], first=found["first"], last=found["last"])
    for name in allow:
        accepted.setdefault(name, [])
    return accepted

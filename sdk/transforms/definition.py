"""On-demand transforms: the definition (spec ``transformations.md`` section 2).

A transform is a pure function from the features of one row (and the request fields and the time it declares) to
declared, typed outputs. Its normalised source is part of its registry entry, with a hash over that source and its
signature: the copy in the registry is what runs offline, online and in the model server.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from ..definitions import RESERVED, FeatureViewProjection, Field, _tags, check_name
from ..errors import DefinitionError
from .purity import compile_pure, source_of

MODES = ("pandas", "arrow", "row")


def _fields(items: Any, what: str, name: str) -> list[Field]:
    items = list(items or [])
    for f in items:
        if not isinstance(f, Field):
            raise DefinitionError(f"transform {name!r}: {what} must be skewless.Field objects")
    names = [f.name for f in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DefinitionError(f"transform {name!r}: duplicate {what} {dup}")
    return items


def _inputs(inputs: Any, name: str) -> dict[str, str]:
    """column name in the batch -> "view:feature"; a list names each column after its feature."""
    if isinstance(inputs, dict):
        pairs = list(inputs.items())
    else:
        pairs = []
        for ref in inputs or []:
            if not isinstance(ref, str) or ref.count(":") != 1:
                raise DefinitionError(f"transform {name!r}: input {ref!r} must look like 'view:feature'")
            pairs.append((ref.split(":")[1], ref))
    out: dict[str, str] = {}
    for col, ref in pairs:
        check_name(f"transform {name!r} input", col)
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise DefinitionError(f"transform {name!r}: input {ref!r} must look like 'view:feature'")
        if col in out:
            raise DefinitionError(f"transform {name!r}: two inputs are named {col!r}; name them with a dict "
                                  "{column: 'view:feature'}")
        out[col] = ref
    return out


class OnDemandTransform:
    """A request-time transform. Build it with ``@skewless.on_demand(...)`` on a ``def``.

    ``inputs``: ``["view:feature", ...]`` (each column named after its feature) or ``{column: "view:feature"}``;
    features of plain or aggregated views. ``request``: Fields the caller supplies (offline: entity table columns;
    online: keys of the entity rows). ``outputs``: the Fields it returns. ``time``: a column name that receives the
    row's time (the entity row's timestamp offline, the request time online); the only clock it may read.
    ``mode``: ``"pandas"`` (the function takes and returns a DataFrame of the batch), ``"arrow"`` (a
    ``pyarrow.RecordBatch`` in; a Table, RecordBatch or dict of arrays out) or ``"row"`` (a dict in, a dict out,
    called per row: the cheapest for single-entity requests). The mode is part of the definition, so
    every path runs the same code the same way."""

    kind = "transform"

    def __init__(self, name: str, *, source: str, inputs: Any = (), request: Sequence[Field] = (),
                 outputs: Sequence[Field] = (), time: str | None = None, mode: str = "pandas", owner: str = "",
                 tags: dict[str, str] | None = None, description: str = ""):
        self.name = check_name("transform", name)
        self.inputs = _inputs(inputs, name)
        self.request = _fields(request, "request fields", name)
        self.outputs = _fields(outputs, "outputs", name)
        if not self.outputs:
            raise DefinitionError(f"transform {name!r}: declare at least one output Field")
        if mode not in MODES:
            raise DefinitionError(f"transform {name!r}: mode must be one of {MODES}, not {mode!r}")
        if time is not None:
            check_name(f"transform {name!r} time input", time)
        self.time, self.mode = time, mode
        columns = list(self.inputs) + [f.name for f in self.request] + ([time] if time else [])
        clash = sorted({c for c in columns if columns.count(c) > 1} | (set(columns) & RESERVED))
        if clash:
            raise DefinitionError(f"transform {name!r}: input columns {clash} are named twice or reserved")
        bad = sorted(set(f.name for f in self.outputs) & RESERVED)
        if bad:
            raise DefinitionError(f"transform {name!r}: outputs {bad} are reserved column names")
        self.source = source
        self.function = compile_pure(source, name)
        self.hash = content_hash(source, self.signature())
        self.owner, self.description = owner, description
        self.tags = _tags(tags, f"transform {name!r}")

    # -- what it reads and writes -------------------------------------------------------------------------------
    @property
    def output_names(self) -> list[str]:
        return [f.name for f in self.outputs]

    @property
    def feature_names(self) -> list[str]:  # as a view's: what "transform:output" references may name
        return self.output_names

    def __getitem__(self, names: Any) -> FeatureViewProjection:
        """``transform[["out1"]]``: some outputs, for a FeatureService."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise DefinitionError(f"transform {self.name!r} has no outputs {unknown}; it has {self.output_names}")
        return FeatureViewProjection(self.name, names)

    def signature(self) -> dict:
        return {"inputs": self.inputs, "request": [[f.name, f.dtype.name] for f in self.request],
                "outputs": [[f.name, f.dtype.name] for f in self.outputs], "time": self.time, "mode": self.mode}

    # -- serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "inputs": self.inputs, "request": [f.to_dict() for f in self.request],
                "outputs": [f.to_dict() for f in self.outputs], "time": self.time, "mode": self.mode,
                "source": self.source, "hash": self.hash, "owner": self.owner, "tags": self.tags,
                "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "OnDemandTransform":
        """From a registry entry: the stored source is checked and compiled again, and must match its hash."""
        t = cls(d["name"], source=d["source"], inputs=d["inputs"],
                request=[Field.from_dict(f) for f in d.get("request", [])],
                outputs=[Field.from_dict(f) for f in d["outputs"]], time=d.get("time"), mode=d.get("mode", "pandas"),
                owner=d.get("owner", ""), tags=d.get("tags"), description=d.get("description", ""))
        if d.get("hash") and d["hash"] != t.hash:
            raise DefinitionError(f"transform {t.name!r}: the stored hash {d['hash'][:12]} does not match its "
                                  f"source and signature ({t.hash[:12]}); the registry entry was altered")
        return t

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OnDemandTransform) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(("transform", self.name))

    def __repr__(self) -> str:
        return f"OnDemandTransform({self.name!r}, outputs={self.output_names}, hash={self.hash[:12]})"


def content_hash(source: str, signature: dict) -> str:
    """sha256 over the normalised source and the signature (inputs, request fields, outputs, time, mode)."""
    doc = json.dumps({"source": source, "signature": signature}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def on_demand(*, inputs: Any = (), outputs: Sequence[Field], request: Sequence[Field] = (), time: str | None = None,
              mode: str = "pandas", name: str | None = None, owner: str = "", tags: dict[str, str] | None = None,
              description: str = "") -> Callable[[Callable], OnDemandTransform]:
    """Decorator: ``@on_demand(inputs=[...], request=[Field(...)], outputs=[Field(...)])`` on a ``def`` makes it an
    ``OnDemandTransform`` (named after the function unless ``name``), checked for purity now."""
    def wrap(fn: Callable) -> OnDemandTransform:
        n = name or getattr(fn, "__name__", "")
        return OnDemandTransform(n, source=source_of(fn, n), inputs=inputs, request=request, outputs=outputs,
                                 time=time, mode=mode, owner=owner, tags=tags,
                                 description=description or (fn.__doc__ or "").strip())
    return wrap

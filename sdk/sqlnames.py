"""Names every rendered SQL shares: identifier quoting and the entity relation's input-position column.

Kept apart from ``offline.pit`` so that the SQL of other definitions (``aggregation.sql``) and the engines that
render both import them without a circle between ``offline`` and ``aggregation``."""

from __future__ import annotations

from .errors import ValidationError

ENTITY_ROW = "_skewless_entity_row"


def q(name: str) -> str:
    """Quote an identifier (DuckDB/ANSI double quotes; sqlglot re-quotes for other dialects)."""
    return '"' + name.replace('"', '""') + '"'


def output_names(view: str, features: list[str], taken: set[str], full_feature_names: bool) -> list[str]:
    """The result column of each requested feature (``view__feature`` with full names), each checked against
    ``taken`` (the input columns and earlier outputs, extended here): a collision is an error, never an overwrite."""
    out = []
    for f in features:
        name = f"{view}__{f}" if full_feature_names else f
        if name in taken:
            raise ValidationError(f"output column {name!r} would overwrite another column; "
                                  f"use full_feature_names=True or rename it", column=name)
        taken.add(name)
        out.append(name)
    return out

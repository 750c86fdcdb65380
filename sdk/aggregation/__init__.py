"""Windowed aggregations (spec: ``transformations.md`` section 1).

``definition`` holds what every engine and store shares: the `AggregatedView` / `Aggregation` definitions, the
functions and their types, and the window and tile arithmetic in integer microseconds.
"""

from .definition import AggregatedView, Aggregation

__all__ = ["AggregatedView", "Aggregation"]

"""Label views: the targets a model learns, kept as histories with their own time and joined point-in-time like
features (docs/concepts/labels-and-splits.md).

A label describes an event and becomes known after it: a loan defaults months after it is granted, a chargeback
arrives weeks after the payment. A ``LabelView`` stores each label as a history row whose

* ``event_timestamp`` is the time of the event the label describes, and whose
* ``created_timestamp`` is the time the label became known (the spec's "when the row ... became known").

Nothing else is new: ingest, snapshots and the point-in-time join are a feature view's (the spec's one rule,
rendered by ``offline/pit.py`` on every engine). With ``point_in_time="available"`` the join keeps only rows with
``created_timestamp <= t``, so a label not yet known at the entity row's time is null there; with the default
``"event"`` it is joined by its event time alone. What a label view adds is what keeps labels out of model
inputs: its columns are requested as ``labels=`` (never as features, feature-service members or online reads),
recorded as the training set's labels, and it is not pushed online unless asked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Sequence

from .definitions import DataSource, Entity, FeatureView, Field
from .errors import DefinitionError


class LabelView(FeatureView):
    """A named group of labels (targets) of one or more entities, with a history: ``event_timestamp`` is the time of
    the event each label describes, ``created_timestamp`` the time it became known.

    A ``source`` must name its known-at column (``created_timestamp_column``): without it every row would count as
    known only when ingested. Rows ingested from a table without a ``created_timestamp`` column are known from
    their write time (the spec's default). ``online`` is False unless asked: labels are not model inputs."""

    spec_marker = "label"
    is_label = True

    def __init__(self, name: str, entities: Sequence[Entity | str], schema: Sequence[Field],
                 source: DataSource | None = None, ttl: timedelta | None = None, *, owner: str = "",
                 tags: dict[str, str] | None = None, description: str = "", online: bool = False):
        if source is not None and isinstance(source, DataSource) and not source.created_timestamp_column:
            raise DefinitionError(f"label view {name!r}: its source must name the column holding when each label "
                                  "became known (created_timestamp_column=...): a label is known after the event it "
                                  "describes (event_timestamp)")
        super().__init__(name, entities, schema, source, ttl, owner=owner, tags=tags, description=description,
                         online=online)

    @property
    def label_names(self) -> list[str]:
        return self.feature_names

    def to_dict(self) -> dict:
        return {**super().to_dict(), "label": True}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelView":
        return cls._base_from_dict(d)

    def __repr__(self) -> str:
        return f"LabelView({self.name!r}, labels={self.feature_names})"

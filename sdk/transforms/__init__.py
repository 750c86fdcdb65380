"""On-demand (request-time) transforms (spec: ``transformations.md`` section 2).

``definition`` (the ``OnDemandTransform`` kind and the ``on_demand`` decorator, its source and hash), ``purity``
(the rule a transform's code must follow, and the sandbox it runs in), ``values`` (typed inputs and outputs),
``run`` (the one implementation every path calls), ``resolve`` ("transform:output" references), ``offline``
(historical retrieval), ``online`` (online reads; the model server calls ``transform_columns``).
"""

from .definition import OnDemandTransform, on_demand

__all__ = ["OnDemandTransform", "on_demand"]

"""The web UI (``skewless ui``): the catalogue, definitions, registry versions and their diffs, models, and charts
drawn in the page with uPlot (vendored in ``static/``: no CDN, it works with no internet). Read-only without a
token; ``/actions/*`` need one.

Modules: ``catalogue`` (what the pages show, read from the registries; parsed registry versions cached, they are
immutable), ``app`` (routes, the token gate, Jinja2 templates in ``templates/``), ``server`` (settings, uvicorn).
"""

from __future__ import annotations

from .app import create_app
from .catalogue import Catalogue
from .server import UIConfig

__all__ = ["Catalogue", "UIConfig", "create_app"]

"""The feature server's Prometheus metrics (its own collector registry, as the model server's ``metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ..metrics import _LATENCY, new_registry

ROUTES = ("get-online-features", "push", "write-to-online-store", "metrics", "docs")


class FeatureServerMetrics:
    def __init__(self):
        self.prometheus_registry = r = new_registry()
        self.requests = Counter("skewless_fs_requests", "Feature server requests by route and HTTP status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("skewless_fs_request_seconds", "Request latency (server side) by route", ["route"],
                                 buckets=_LATENCY, registry=r)
        self.entities = Histogram("skewless_fs_entities", "Entities per online read",
                                  buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=r)
        self.pushed_rows = Counter("skewless_fs_pushed_rows", "Rows written by pushes, by destination", ["to"],
                                   registry=r)
        self.pushes_in_flight = Gauge("skewless_fs_pushes_in_flight", "Pushes being written", registry=r)
        self.store_errors = Counter("skewless_fs_online_store_errors", "Online store failures seen (a read's or a "
                                    "probe's; not the open breaker's answers)", registry=r)
        self.store_probes = Counter("skewless_fs_online_store_probes", "Round trips made to check the online store",
                                    registry=r)
        self.breaker_open = Gauge("skewless_fs_online_store_breaker_open", "1 while requests fail fast because the "
                                  "online store is known down", registry=r)
        # Children made once: labels() costs a lock and a lookup per call on the hot path.
        self._latency = {route: self.latency.labels(route) for route in ROUTES}
        self._counts: dict[tuple[str, int], Counter] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        c = self._counts.get((route, status))
        if c is None:
            c = self._counts[(route, status)] = self.requests.labels(route, str(status))
        c.inc()
        self._latency[route].observe(seconds)

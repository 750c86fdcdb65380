"""Deploy targets: one surface to put registered model versions behind endpoints, wherever they run.

    target = get_target("local" | "sagemaker" | "eas", store, **options)
    target.deploy("credit", 1, "credit")               # a new endpoint, or all traffic to v1 (blue-green)
    target.deploy("credit", 2, "credit", weight=0.2)   # canary: v2 gets 20 %, the others keep their ratio
    target.set_weights("credit", {"v1": 0.5, "v2": 0.5})
    target.invoke("credit", [{"loan_id": 1}])          # {"predictions": [...], "version": n, "variant": "v2"}
    target.rollback("credit")                          # undo the last deploy: the variants and weights before it
    target.endpoints(); target.delete("credit")

Variants are named ``v<version>``. Weights are fractions summing to 1 here; each target converts to its cloud's
units (SageMaker's relative weights, EAS's 0-100 service weights).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from skewless.errors import ConfigError, NotFoundError, StoreUnavailable, ValidationError

TARGETS = ("local", "sagemaker", "eas")


@dataclass
class Variant:
    name: str
    version: int
    weight: float


@dataclass
class Endpoint:
    name: str
    target: str
    status: str
    variants: list[Variant] = field(default_factory=list)
    url: str | None = None
    model: str | None = None  # the registered model its variants are versions of (lineage), when the target knows

    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}


def variant_name(version: int) -> str:
    return f"v{int(version)}"


def normalize(weights: dict[str, float]) -> dict[str, float]:
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValidationError(f"weights must be non-negative with a positive sum, got {weights}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def full_weights(endpoint: str, weights: dict[str, float], have) -> dict[str, float]:
    """``weights`` over every variant the endpoint ``have``s (unnamed ones get 0), normalized; unknown names fail
    before anything changes."""
    unknown = set(weights) - set(have)
    if unknown:
        raise NotFoundError(f"endpoint {endpoint!r} has no variants {sorted(unknown)}; it has {sorted(have)}")
    return normalize({n: weights.get(n, 0.0) for n in have})


def with_new_variant(current: dict[str, float], name: str, weight: float | None) -> dict[str, float]:
    """The weights after deploying ``name``: all traffic (``weight`` None: blue-green, the old variants stay at 0
    so a rollback is instant) or ``weight`` for it and the rest scaled to keep their ratio."""
    if weight is None:
        return {**{k: 0.0 for k in current if k != name}, name: 1.0}
    if not 0 < weight <= 1:
        raise ValidationError(f"weight must be in (0, 1], got {weight}")
    others = {k: w for k, w in current.items() if k != name}
    total = sum(others.values())
    scaled = {k: (w / total) * (1 - weight) if total else 0.0 for k, w in others.items()}
    return normalize({**scaled, name: weight})


def pick(weights: dict[str, float], rng: random.Random | None = None) -> str:
    """A variant drawn by weight (what the managed routers do per request)."""
    live = {k: w for k, w in weights.items() if w > 0}
    if not live:
        raise ValidationError("no variant has traffic")
    names = list(live)
    return (rng or random).choices(names, [live[n] for n in names])[0]


def answer(response, variant: str) -> dict:
    """A server's JSON answer (an httpx response) plus the variant that served it; its errors as skewless errors
    (a 400 names the row and field, as the server does)."""
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text}
    if response.status_code >= 400:
        msg = f"{response.status_code} from variant {variant}: {body.get('message', body)}"
        if response.status_code == 400:
            raise ValidationError(msg)
        raise StoreUnavailable(msg, endpoint=str(response.url))
    return {**body, "variant": variant}


class Target(ABC):
    kind: str

    @abstractmethod
    def deploy(self, model: str, version: int, endpoint: str, *, weight: float | None = None) -> Endpoint: ...

    @abstractmethod
    def invoke(self, endpoint: str, instances: list[dict] | dict, *, variant: str | None = None) -> dict: ...

    @abstractmethod
    def endpoints(self) -> list[Endpoint]: ...

    @abstractmethod
    def describe(self, endpoint: str) -> Endpoint: ...

    @abstractmethod
    def set_weights(self, endpoint: str, weights: dict[str, float]) -> Endpoint: ...

    @abstractmethod
    def rollback(self, endpoint: str) -> Endpoint: ...

    @abstractmethod
    def delete(self, endpoint: str) -> None: ...


def get_target(kind: str, store, **options) -> Target:
    """The target called ``kind``; cloud SDKs are imported only for the one chosen."""
    if kind == "local":
        from .local import LocalTarget

        return LocalTarget(store, **options)
    if kind == "sagemaker":
        from .sagemaker import SageMakerTarget

        return SageMakerTarget(store, **options)
    if kind == "eas":
        from .eas import EasTarget

        return EasTarget(store, **options)
    raise ConfigError(f"unknown deploy target {kind!r}; known: {', '.join(TARGETS)}")


__all__ = ["Endpoint", "TARGETS", "Target", "Variant", "get_target", "normalize", "pick", "variant_name"]

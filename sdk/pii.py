"""Personal data: the one place that decides whether a PII value is shown, and how it is masked or redacted.

A field is personal data when declared so (``Field(..., pii=True)`` or ``classification="pii"``/``"sensitive"``;
an ``Entity(..., pii=True)`` makes its join keys personal data in every view keyed by it: ``FeatureView.pii_names``).

**Display outputs** — the web UI, CLI output, log lines and error messages — show a PII value as ``***`` (``MASK``)
unless the caller is a principal granted ``read_pii`` on the view (``may_unmask``). An *open* registry (no
permissions declared) has no principal who holds it, so there PII is always masked: the tag is the declaration
that these values must not spread, whoever looks. Statistics of a PII feature keep their counts (rows, nulls,
distinct) and mask every value-like figure: min, max, mean, stddev, quantiles, top values, histogram.

**Data reads** (``get_online_features``, ``get_historical_features``, the feature server's answers) return the
values: they are gated by ``read_online`` / ``read_offline``, and a training set or a model needs them.

**Prediction logs** store a PII feature as the service's ``log_pii`` says (``log_value``): ``redact`` writes
``<redacted>``, ``hash`` writes ``hmac-sha256:<hex>`` keyed by ``SKEWLESS_PII_HASH_KEY`` (equal values, equal
hashes: counts and joins between logs still work, the value is not recoverable without the key), ``keep`` the
value. A logged value is recognisable as redacted or hashed (``is_redacted``), never as a mismatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from typing import Any, Iterable

from . import permissions as perms
from .errors import ConfigError, NotFoundError
from .statistics import FeatureStatistics

MASK = "***"
REDACTED = "<redacted>"
HASH_PREFIX = "hmac-sha256:"
HASH_KEY_ENV = "SKEWLESS_PII_HASH_KEY"
UNMASK_ACTION = "read_pii"


# -- who sees what ----------------------------------------------------------------------------------------------
def may_unmask(state, principal: str | None, view: str) -> bool:
    """Whether ``principal`` sees the PII values of ``view``: only a principal granted ``read_pii`` on it, in a
    registry that declares permissions (an open registry masks for everyone: see the module's rule)."""
    return perms.governed(state) and perms.allowed(state, principal, UNMASK_ACTION, ("view", view))


class Masking:
    """What one caller may not see, per view: built once per call from a registry state and the principal."""

    def __init__(self, state, principal: str | None):
        self.state, self.principal = state, principal
        self._hidden: dict[str, frozenset[str]] = {}

    def hidden(self, view: str) -> frozenset[str]:
        """The names (features and join keys) of ``view`` to mask for this caller (empty: show everything)."""
        out = self._hidden.get(view)
        if out is None:
            try:
                names = self.state.get("feature_view", view).pii_names
            except NotFoundError:  # not a view (a transform's name): nothing declared, nothing masked
                names = frozenset()
            out = self._hidden[view] = (frozenset() if not names or may_unmask(self.state, self.principal, view)
                                        else frozenset(names))
        return out

    def hides(self, ref: str) -> bool:
        """``view:feature`` masked for this caller."""
        view, _, name = ref.partition(":")
        return name in self.hidden(view)

    def keys(self, views: Iterable[str]) -> frozenset[str]:
        """The names masked in any of ``views``: what an entity row's keys, shown once for several views, hide."""
        out: set[str] = set()
        for v in views:
            out |= self.hidden(v)
        return frozenset(out)


# -- masking values ---------------------------------------------------------------------------------------------
def mask(value: Any) -> Any:
    """``MASK`` for a value, None stays None (a missing value is no personal data, and says it is missing)."""
    return None if value is None else MASK


def mask_list(values: list) -> list:
    return [mask(v) for v in values]


def show(value: Any, pii: bool, limit: int | None = None) -> str:
    """A value as an error message or a log line quotes it: its repr (cut at ``limit`` characters), or ``MASK`` for
    PII."""
    if pii:
        return MASK
    r = repr(value)
    return r if limit is None or len(r) <= limit else r[:limit - 10] + f"... ({len(r)} chars)"


def mask_frame(df, hidden: Iterable[str]):
    """A pandas frame with the hidden columns' values masked (a copy when some are; the frame itself otherwise)."""
    cols = [c for c in df.columns if c in set(hidden)]
    if not cols:
        return df
    df = df.copy()
    for c in cols:
        df[c] = [mask(v) if v == v else v for v in df[c].astype(object)]  # NaN (v != v) stays missing
    return df


@dataclasses.dataclass
class MaskedStatistics(FeatureStatistics):
    """Statistics of personal data as shown: counts kept (rows, nulls, distinct); min/max/mean/stddev, quantiles and
    top values are ``MASK``, and the sketches are dropped so no chart draws them."""

    masked = True

    def __post_init__(self) -> None:
        self._had_kll, self._had_frequent = self.kll is not None, self.frequent is not None
        some = self.count > self.nulls
        self.min = self.max = self.mean = self.stddev = MASK if some else None
        self.kll = self.frequent = None

    def quantile(self, q: float):
        return MASK if self._had_kll and self.count > self.nulls else None

    def top(self, k: int = 10) -> list[tuple[str, int]]:
        return [(MASK, self.count - self.nulls)] if self._had_frequent and self.count > self.nulls else []

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self._had_kll:
            out["quantiles"] = {f"p{p:02d}": self.quantile(p / 100) for p in (1, 5, 25, 50, 75, 95, 99)}
        if self._had_frequent:
            out["top"] = [{"value": v, "count": c} for v, c in self.top()]
        out["masked"] = True
        return out


def mask_statistics(stats: FeatureStatistics) -> MaskedStatistics:
    """A PII feature's statistics for display (``MaskedStatistics``)."""
    return MaskedStatistics(**{f.name: getattr(stats, f.name) for f in dataclasses.fields(FeatureStatistics)})


def mask_view_statistics(features: dict, hidden: Iterable[str]) -> dict:
    """name (or ``view:feature`` ref, judged by its feature part) -> statistics, the hidden ones masked."""
    hidden = set(hidden)
    return {n: mask_statistics(f) if n.rpartition(":")[2] in hidden and not getattr(f, "masked", False) else f
            for n, f in features.items()}


# -- prediction logs ------------------------------------------------------------------------------------------------
def hash_key(env=None) -> bytes:
    """The key of ``log_pii="hash"``: ``SKEWLESS_PII_HASH_KEY`` (a ConfigError when unset: an unkeyed hash of an
    e-mail or a phone number is reversed by hashing every candidate)."""
    key = (os.environ if env is None else env).get(HASH_KEY_ENV)
    if not key:
        raise ConfigError(f"log_pii='hash' needs a secret key in {HASH_KEY_ENV} (the same on every server whose "
                          "logs are joined): without one the hash of a phone number is found by trying them all")
    return key.encode()


def log_value(value: Any, policy: str, key: bytes | None = None) -> Any:
    """What a prediction log stores for a PII value under ``policy`` (``FeatureService.log_pii``); None stays None."""
    if value is None or policy == "keep":
        return value
    if policy == "hash":
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return HASH_PREFIX + hmac.new(key or hash_key(), text.encode(), hashlib.sha256).hexdigest()
    return REDACTED


def is_redacted(value: Any) -> bool:
    """A logged value that stands for a PII value (redacted or hashed): a replay or an audit comparing logged
    values with recomputed ones skips it rather than counting a mismatch."""
    return isinstance(value, str) and (value == REDACTED or value.startswith(HASH_PREFIX))



__all__ = ["HASH_KEY_ENV", "MASK", "MaskedStatistics", "Masking", "REDACTED", "UNMASK_ACTION", "is_redacted", "log_value", "mask",
           "mask_frame", "mask_list", "mask_statistics", "may_unmask", "show"]

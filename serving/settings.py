"""Every environment variable the model server reads, parsed and checked in one place, at startup.

A managed platform starts the image with nothing but its environment, so a typo there must stop the server before
it listens, naming the variable and what it accepts, rather than surface on the first request (or never: a
``SKEWLESS_MAX_BODY_BYTES=6MB`` once fell back to nothing). ``read`` checks them all and raises one ``ConfigError``
listing every bad one. The variables (``ServeConfig`` field in brackets):

    SKEWLESS_REPO                 folder with skewless.yaml                                  [repo]
    SKEWLESS_MODEL_DIR            an unpacked artifact                                       [model_dir]
    SKEWLESS_MODEL                a registered model's name                                  [model]
    SKEWLESS_MODEL_VERSION        its version, an integer >= 1 (only with SKEWLESS_MODEL)    [version]
    SKEWLESS_MODEL_STAGE          or the version in this stage (only with SKEWLESS_MODEL)    [stage]
    SKEWLESS_CONTRACT             a comma-separated list of the contracts (app.CONTRACTS), or both  [contract]
    SAGEMAKER_BIND_TO_PORT        SageMaker's port, 1-65535                                  (resolved_port)
    SKEWLESS_PORT                 the port when SageMaker's contract is not served, 1-65535  (resolved_port)
    SKEWLESS_SERVING_TOKEN        the Authorization token; set means non-empty               [token]
    SKEWLESS_SERVICE_NAME         the EAS service name: letters, digits, _ . -               [extra["service"]]
    SKEWLESS_HOST                 the address to listen on (no spaces)                       [host]
    SKEWLESS_MAX_BODY_BYTES       an integer >= 1                                            [max_body_bytes]
    SKEWLESS_LOG_FLUSH_SECONDS    seconds > 0                                                [log_flush_seconds]
    SKEWLESS_MISSING_FEATURES     serve | flag | reject                                      [missing_features]
    SKEWLESS_PREDICT_TIMEOUT      seconds >= 0 (0: none)                                     [predict_timeout]
    SKEWLESS_LOG_LEVEL            DEBUG | INFO | WARNING | ERROR                             [log_level]
    SKEWLESS_MONITOR_SECONDS      seconds >= 0 between skew gauge refreshes (0: off)         [monitor_seconds]
    SKEWLESS_MONITOR_LOOKBACK_SECONDS  seconds > 0 of prediction log the gauges cover        [monitor_lookback]
    SKEWLESS_AUDIT_SECONDS        seconds >= 0 between skew audits of the log (0: off)       [audit_seconds]
    SKEWLESS_AUDIT_LOOKBACK_SECONDS  seconds > 0 of prediction log each audit samples          [audit_lookback]

Read elsewhere, and checked there at startup too: ``SKEWLESS_PREDICTION_LOG_DIR`` (the prediction log's journal
folder: ``prediction_log``, which creates it when the server is built) and the standard ``OTEL_*`` variables of
tracing (``tracing.from_env``; the OpenTelemetry SDK parses its own). ``SKEWLESS_KILL_AT`` is a test hook
(``skewless.faults``), not a setting.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, Mapping

from skewless.errors import ConfigError

from .app import CONTRACTS
from .artifact import MISSING_POLICIES

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class _Bad(ValueError):
    """A value a parser refuses; its text is what the variable accepts."""


def parse_contracts(value: str) -> tuple[str, ...]:
    """``both`` (SageMaker and EAS) or a comma-separated list of ``app.CONTRACTS``, in order, without repeats."""
    text = value.strip().lower()
    if text == "both":
        return ("sagemaker", "eas")
    names = [n.strip() for n in text.split(",")]
    if not all(n in CONTRACTS for n in names):
        raise _Bad(f"a comma-separated list of {', '.join(CONTRACTS)}, or both")
    return tuple(dict.fromkeys(names))


def _integer(lo: int, hi: int | None = None) -> Callable[[str], int]:
    what = f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"

    def parse(value: str) -> int:
        try:
            n = int(value.strip())
        except ValueError:
            raise _Bad(what) from None
        if n < lo or hi is not None and n > hi:
            raise _Bad(what)
        return n
    return parse


def _seconds(*, zero: bool) -> Callable[[str], float]:
    what = "a number of seconds >= 0 (0: no limit)" if zero else "a number of seconds > 0"

    def parse(value: str) -> float:
        try:
            s = float(value.strip())
        except ValueError:
            raise _Bad(what) from None
        if not math.isfinite(s) or s < 0 or s == 0 and not zero:
            raise _Bad(what)
        return s
    return parse


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        v = value.strip().upper() if upper else value.strip().lower()
        if v not in options:
            raise _Bad(" | ".join(options))
        return v
    return parse


def _text(what: str, pattern: re.Pattern | None = None) -> Callable[[str], str]:
    def parse(value: str) -> str:
        v = value.strip()
        if not v or (pattern.fullmatch(v) is None if pattern else any(c.isspace() for c in v)):
            raise _Bad(what)
        return v
    return parse


def _path(value: str) -> str:
    if not value.strip():
        raise _Bad("a folder path (not empty)")
    return value


def _token(value: str) -> str:
    if not value:  # an empty secret is a deployment that lost it, not a wish to serve without a token
        raise _Bad("a non-empty token (unset it to serve without one)")
    return value


_PORT = _integer(1, 65535)
# variable -> (ServeConfig field, parser). Ports are fields of their own here: which one binds depends on the
# contracts (ServeConfig.resolved_port); both are checked whenever set.
PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SKEWLESS_REPO": ("repo", _path),
    "SKEWLESS_MODEL_DIR": ("model_dir", _path),
    "SKEWLESS_MODEL": ("model", _text("a registered model's name (no spaces)")),
    "SKEWLESS_MODEL_VERSION": ("version", _integer(1)),
    "SKEWLESS_MODEL_STAGE": ("stage", _text("a stage name (no spaces), e.g. production")),
    "SKEWLESS_CONTRACT": ("contract", lambda v: (parse_contracts(v), v.strip().lower())[1]),
    "SAGEMAKER_BIND_TO_PORT": ("sagemaker_port", _PORT),
    "SKEWLESS_PORT": ("skewless_port", _PORT),
    "SKEWLESS_SERVING_TOKEN": ("token", _token),
    "SKEWLESS_SERVICE_NAME": ("service", _text("an EAS service name: letters, digits, _ . - (one path segment)",
                                               _SERVICE_NAME)),
    "SKEWLESS_HOST": ("host", _text("an address to listen on, e.g. 127.0.0.1 or 0.0.0.0 (no spaces)")),
    "SKEWLESS_MAX_BODY_BYTES": ("max_body_bytes", _integer(1)),
    "SKEWLESS_LOG_FLUSH_SECONDS": ("log_flush_seconds", _seconds(zero=False)),
    "SKEWLESS_MISSING_FEATURES": ("missing_features", _choice(MISSING_POLICIES)),
    "SKEWLESS_PREDICT_TIMEOUT": ("predict_timeout", _seconds(zero=True)),
    "SKEWLESS_LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "SKEWLESS_MONITOR_SECONDS": ("monitor_seconds", _seconds(zero=True)),
    "SKEWLESS_MONITOR_LOOKBACK_SECONDS": ("monitor_lookback", _seconds(zero=False)),
    "SKEWLESS_AUDIT_SECONDS": ("audit_seconds", _seconds(zero=True)),
    "SKEWLESS_AUDIT_LOOKBACK_SECONDS": ("audit_lookback", _seconds(zero=False)),
}


def read(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{field: value} for every variable of ``PARSERS`` that is set in ``env`` (default ``os.environ``); one
    ConfigError naming each bad variable, its value and what it accepts. ``overrides`` (the CLI's options, None
    where not given) take part in the checks of combinations (a version needs a model, either from either)."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    errors: list[str] = []
    for name, (field, parse) in PARSERS.items():
        if name not in env:
            continue
        # An empty value is unset for everything but the token (see _token): `-e SKEWLESS_REPO=` in a template.
        if env[name] == "" and name != "SKEWLESS_SERVING_TOKEN":
            continue
        try:
            out[field] = parse(env[name])
        except _Bad as exc:
            errors.append(f"{name}={_shown(name, env[name])}: expected {exc}")
    given = {**out, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if "model" not in given:
        errors += [f"{name} is set but SKEWLESS_MODEL is not: it chooses a version of a registered model"
                   for name, field in (("SKEWLESS_MODEL_VERSION", "version"), ("SKEWLESS_MODEL_STAGE", "stage"))
                   if field in out]
    elif "version" in given and "stage" in given and ("version" in out or "stage" in out):
        errors.append("a version (SKEWLESS_MODEL_VERSION or --version) and a stage (SKEWLESS_MODEL_STAGE or "
                      "--stage) are both given: give one")
    if errors:
        raise ConfigError("bad serving settings in the environment:\n  " + "\n  ".join(errors))
    return out


def _shown(name: str, value: str) -> str:
    if name == "SKEWLESS_SERVING_TOKEN":
        return "''" if not value else "<hidden>"
    v = repr(value)
    return v if len(v) <= 60 else v[:50] + f"... ({len(value)} chars)"

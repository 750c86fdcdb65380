"""Serving's own errors, and the one place errors become HTTP answers (status and JSON body).

The server raises the SDK's errors (``skewless.errors``) plus the ones below, all ``SkewlessError``s, so callers
catch one tree (``MissingFeatures`` is a ``ValidationError``). ``http_status`` maps an error to its status by the
first matching class of ``_STATUS`` (subclasses before their bases); a ``ValidationError`` that names a field
(``column``) is 422, one that does not 400; any other exception is 500. ``error_body`` is the JSON answer:
``{"error": <class>, "message": <first line>}`` plus ``column``/``row``/``features`` when known, and for an exception
that is not a ``SkewlessError`` (a bug) only its type, since its message may hold internals.
"""

from __future__ import annotations

from skewless.errors import (ConfigError, ConflictError, DefinitionError, EngineError, NotFoundError,
                             PermissionDenied, SkewlessError, StoreUnavailable, TransformError, ValidationError)


class Unauthorized(SkewlessError):
    """The request lacks the token the server requires (``Authorization``; every route but the health checks)."""


class PayloadTooLarge(SkewlessError):
    """The request body is larger than the server accepts (``SKEWLESS_MAX_BODY_BYTES``; 413, connection closed)."""


class UnsupportedMediaType(SkewlessError):
    """The request's ``Content-Type`` is none the server reads (415; ``codecs`` lists them)."""


class NotAcceptable(SkewlessError):
    """No media type of the request's ``Accept`` is one the server answers in (406); decided before predicting."""


class Overloaded(SkewlessError):
    """The request queue is full: the caller should back off and retry (429 with ``Retry-After``)."""


class NotReady(SkewlessError):
    """The model is not loaded yet, or failed to load."""


class TransformMismatch(NotReady):
    """The feature registry's copy of a transform the model takes an output of has another hash than the one the
    model artifact pins (other code than it was trained with): the server is not ready, and says which."""


class PredictionError(SkewlessError):
    """The model itself raised while predicting (its message is kept: it usually names the bad input)."""


class MissingFeatures(ValidationError):
    """A row's required features read NOT_FOUND or EXPIRED and the model's policy is ``reject`` (422): the request
    was well formed, but the model would have predicted from defaults. ``features`` names them."""

    def __init__(self, message: str, *, row: int | None = None, features: list[str] | None = None):
        super().__init__(message, row=row)
        self.features = list(features or [])


class PredictTimeout(SkewlessError):
    """The prediction did not finish within the server's per-request timeout (504; the server goes on serving)."""


# Ordered: the first matching class wins (subclasses before their bases).
_STATUS: list[tuple[type[BaseException], int]] = [
    (Unauthorized, 401),
    (PermissionDenied, 403),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (NotAcceptable, 406),
    (MissingFeatures, 422),
    (ValidationError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (Overloaded, 429),
    (NotReady, 503),  # TransformMismatch included
    (PredictTimeout, 504),
    (StoreUnavailable, 503),
    (PredictionError, 500),
    (TransformError, 500),  # the transform's code failed on a row (a bug to fix there, not in the request)
    (EngineError, 500),
    (DefinitionError, 500),
    (ConfigError, 500),
]


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ValidationError) and exc.column is not None:
        return 422  # the body parsed, but a named value does not fit its field (e.g. a key beyond Int64)
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: BaseException) -> dict:
    """The JSON body of an error answer: the error's type and, for skewless errors, its reason."""
    if isinstance(exc, SkewlessError):
        body = {"error": type(exc).__name__, "message": str(exc).splitlines()[0] if str(exc) else ""}
        if isinstance(exc, ValidationError):
            body.update({k: v for k, v in (("column", exc.column), ("row", exc.row)) if v is not None})
        if isinstance(exc, TransformError):
            body.update({k: v for k, v in (("transform", exc.transform), ("row", exc.row)) if v is not None})
        if isinstance(exc, MissingFeatures):
            body["features"] = exc.features
        return body
    return {"error": "InternalError", "message": type(exc).__name__}


__all__ = ["MissingFeatures", "NotAcceptable", "NotReady", "Overloaded", "PayloadTooLarge", "PredictTimeout",
           "PredictionError", "TransformMismatch", "Unauthorized", "UnsupportedMediaType", "error_body", "http_status"]

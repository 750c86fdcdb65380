"""The skewless exception tree — every error the SDK raises on purpose is one of these.

    SkewlessError                 base class; catch this to catch everything skewless raises on purpose
    ├── ConfigError               skewless.yaml missing/invalid, unknown URL scheme, missing extra
    │   │                         (the message names what to install)
    │   └── TerraformError        a terraform command failed (defined in skewless.terraform_run)
    ├── DefinitionError           an entity / feature view / feature service is invalid or refers to something unknown
    ├── ValidationError           data handed to ingest or retrieval is malformed (names the column and first bad row)
    ├── ConflictError             a conditional commit lost a race (e.g. two concurrent `apply` runs); re-read and retry
    ├── NotFoundError             a named object, version or snapshot does not exist
    │   ├── StreamPositionExpired a stream position to resume from is no longer retained (records were trimmed)
    │   ├── StatisticsUnavailable a history version has no write-time statistics (written before them, or with
    │   │                         them off)
    │   └── SnapshotExpired       a history version a snapshot asks for is past the view's retention (vacuumed, or
    │                             purged by ``forget``): it cannot be rebuilt as it was
    ├── EngineError               an offline engine could not run a query (e.g. out of memory); says what to tune
    ├── TransformError            an on-demand transform raised, or returned an output of the wrong type or shape
    │                             (names the transform and the row; nothing is silently nulled)
    ├── PermissionDenied          the calling principal may not do this action on this resource (skewless.permissions);
    │                             nothing was done, the denial is in the audit log (HTTP 403)
    ├── StoreUnavailable          a backing store (file system, object store, database) cannot be reached
    └── JobFailed                 a job submitted to a cluster (``skewless submit``) ended FAILED; names the run
        └── JobCancelled          ... ended CANCELLED (by Ctrl-C here, or by someone else)

The model server adds its own in ``skewless.serving.errors`` (each a ``SkewlessError``; the whole tree with HTTP
statuses: docs/errors.md).

Messages never carry credentials: URLs in them are redacted on construction (sdk/redact.py).

Vendor errors are translated at the edge with ``raise SomeSkewlessError(...) from exc`` so the original stays
attached as ``__cause__``.
"""

from __future__ import annotations

from .redact import redact


class SkewlessError(Exception):
    """Base class of all errors skewless raises on purpose. Credentials in a URL of the message are masked here,
    once for every error (``redact``): a message may quote a store URL, or a library's error that holds one."""

    def __init__(self, *args):
        super().__init__(*(redact(a) for a in args))


class ConfigError(SkewlessError):
    """Invalid or missing configuration, unknown adapter URL scheme, or a missing optional extra."""


class DefinitionError(SkewlessError):
    """An object definition is invalid, or refers to an object that does not exist."""


class ValidationError(SkewlessError):
    """Input data is malformed. ``column`` and ``row`` name the first offending cell when known."""

    def __init__(self, message: str, *, column: str | None = None, row: int | None = None):
        super().__init__(message)
        self.column = column
        self.row = row


class LeakageError(ValidationError):
    """A training-set request with a split reads the output of a stage (skewless.stages) that was fit on rows of the
    request's test split: the test rows' information reached the features through that stage. ``stage``,
    ``split`` and the overlap (``rows``, ``first`` and ``last`` row time, ISO 8601) name it; ``rows`` is None when
    the overlap could not be checked (nothing recorded of the fit). Override only with ``allow_leakage=[stage]``."""

    def __init__(self, message: str, *, stage: str, split: str, rows: int | None, first: str | None = None,
                 last: str | None = None):
        super().__init__(message)
        self.stage, self.split, self.rows, self.first, self.last = stage, split, rows, first, last


class ConflictError(SkewlessError):
    """A conditional write lost to a concurrent writer; nothing was written."""


class NotFoundError(SkewlessError):
    """A named object, version or snapshot does not exist."""


class StreamPositionExpired(NotFoundError):
    """A stream position to resume from is older than the stream's retention: the records between it and the oldest
    retained one cannot be read. ``shard`` and ``position`` name it. Never skipped silently: resume past it only by
    an explicit reset of the consumer's positions."""

    def __init__(self, message: str, *, shard: str | None = None, position: str | None = None):
        super().__init__(message)
        self.shard = shard
        self.position = position


class StatisticsUnavailable(NotFoundError):
    """A history version exists but has no write-time statistics (skewless.statistics): it, or an append before
    it, was written before skewless recorded statistics or with ``statistics: false``. ``view`` and ``version``
    name it."""

    def __init__(self, message: str, *, view: str, version: int | None):
        super().__init__(message)
        self.view = view
        self.version = version


class SnapshotExpired(NotFoundError):
    """A history version asked for (a training set's snapshot) is older than the view's history retention, or was
    purged by ``forget``: its files may be gone, so rebuilding it would silently read something else. ``view`` and
    ``version`` name it; ``oldest`` is the oldest version still readable (older versions a live snapshot pinned
    may be kept too)."""

    def __init__(self, message: str, *, view: str, version: int, oldest: int | None):
        super().__init__(message)
        self.view = view
        self.version = version
        self.oldest = oldest


class EngineError(SkewlessError):
    """An offline engine failed to run a query for a reason other than bad input (e.g. out of memory)."""


class TransformError(SkewlessError):
    """An on-demand transform failed on a row: it raised, or returned an output of the wrong type or shape.
    ``transform`` and ``row`` name it (``row`` is None when no single row can be blamed)."""

    def __init__(self, message: str, *, transform: str, row: int | None = None):
        super().__init__(message)
        self.transform = transform
        self.row = row


class PermissionDenied(SkewlessError):
    """The calling principal may not do ``action`` on ``resource`` (``skewless.permissions.check``). Raised before
    anything is written; the denial is recorded in the audit log. ``principal`` is None for an anonymous caller."""

    def __init__(self, message: str, *, principal: str | None, action: str, resource: str):
        super().__init__(message)
        self.principal = principal
        self.action = action
        self.resource = resource


class StoreUnavailable(SkewlessError):
    """A backing store cannot be reached. ``endpoint`` names it."""

    def __init__(self, message: str, *, endpoint: str | None = None):
        super().__init__(message)
        self.endpoint = redact(endpoint) if endpoint else endpoint


class JobFailed(SkewlessError):
    """A job submitted to a cluster (``skewless submit``: EMR Serverless) ended without success. ``job_run_id``,
    ``state`` and ``details`` (the service's reason) name it; ``log_tail`` holds the end of the driver's log when it
    could be read."""

    def __init__(self, message: str, *, job_run_id: str, state: str, details: str | None = None,
                 log_tail: str | None = None):
        super().__init__(message)
        self.job_run_id = job_run_id
        self.state = state
        self.details = redact(details) if details else details
        self.log_tail = redact(log_tail) if log_tail else log_tail


class JobCancelled(JobFailed):
    """A submitted job ended CANCELLED: by Ctrl-C in the submitting process (which cancels the run before it
    stops), or by someone else."""

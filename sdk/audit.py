"""The audit log: who applied, ingested, deployed, changed permissions, or was denied — append-only.

Where it lives: beside the registry's versions, in the same store (local folder, ``s3://``, ``oss://``), one JSON
object per record at ``audit/<YYYY-MM-DD>/<time µs>-<random>.json``. Each is created with the store's
create-if-absent (the registry versions' own primitive: ``link``, S3 ``If-None-Match: *``, OSS
``x-oss-forbid-overwrite``), so a record is written whole once and never rewritten; nothing in skewless deletes
one. Keys sort by time, so a read lists them in order; ``--since`` skips the days before it by key.

A record: ``time`` (UTC ISO 8601, µs), ``principal`` (None: anonymous), ``action`` (``apply``, ``ingest``,
``deploy``, ``permission_change``, or the action that was denied), ``resource`` (``*``, ``view:NAME``, ...),
``outcome`` (``allowed`` | ``denied``), ``detail`` (free text: the registry version, rows, the denial's reason).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from .errors import ConflictError, ValidationError

PREFIX = "audit/"
OUTCOMES = ("allowed", "denied")


@dataclass(frozen=True)
class AuditRecord:
    time: str
    principal: str | None
    action: str
    resource: str
    outcome: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class AuditLog:
    """Append and read audit records in a ``RegistryStore`` (``put_record`` / ``record_keys`` / ``read_record``)."""

    def __init__(self, store):
        self.store = store

    def append(self, principal: str | None, action: str, resource: str, outcome: str, detail: str = "",
               *, at: datetime | None = None) -> AuditRecord:
        if outcome not in OUTCOMES:
            raise ValidationError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
        at = at or datetime.now(timezone.utc)
        rec = AuditRecord(at.isoformat(timespec="microseconds"), principal, action, resource, outcome, detail)
        data = json.dumps(rec.to_dict(), sort_keys=True).encode()
        stamp = at.strftime("%Y-%m-%d") + "/" + at.strftime("%Y%m%dT%H%M%S%f")
        for _ in range(5):  # a clash of 64 random bits at the same µs: try another name, never overwrite
            try:
                self.store.put_record(f"{PREFIX}{stamp}-{secrets.token_hex(8)}.json", data)
                return rec
            except ConflictError:
                continue
        raise ConflictError("could not find a free audit record name")  # pragma: no cover - 2^-64 five times

    def records(self, *, since: datetime | None = None, principal: str | None = None, action: str | None = None,
                outcome: str | None = None) -> list[AuditRecord]:
        """Records oldest first, filtered: at or after ``since``, by ``principal``, ``action``, ``outcome``."""
        keys = self.store.record_keys(PREFIX)
        if since is not None:
            since = since.astimezone(timezone.utc)
            day = PREFIX + since.strftime("%Y-%m-%d")
            keys = [k for k in keys if k[:len(day)] >= day]  # whole earlier days skipped without reading them
        out = []
        for key in keys:
            rec = AuditRecord(**json.loads(self.store.read_record(key)))
            if since is not None and datetime.fromisoformat(rec.time) < since:
                continue
            if principal is not None and rec.principal != principal:
                continue
            if action is not None and rec.action != action:
                continue
            if outcome is not None and rec.outcome != outcome:
                continue
            out.append(rec)
        return out

"""Where registry versions live. One document per version, each written once and never changed.

A commit creates version ``n + 1`` only if it does not exist yet ("create if absent"), so two writers that both
read version ``n`` cannot both succeed: the loser gets ``ConflictError`` and nothing of it is visible. Object
stores implement the same contract with conditional PUTs (S3 ``If-None-Match: *``, OSS ``x-oss-forbid-overwrite``).
"""

from __future__ import annotations

import abc
import os
import re
import tempfile
from pathlib import Path

from ..errors import ConflictError, NotFoundError, StoreUnavailable

_VERSION_FILE = re.compile(r"^v(\d{10})\.json$")


def version_name(version: int) -> str:
    return f"v{version:010d}.json"


class RegistryStore(abc.ABC):
    """Storage contract for registry versions (the registry conformance suite checks every implementation)."""

    url: str

    @abc.abstractmethod
    def versions(self) -> list[int]:
        """All committed versions, ascending."""

    def latest(self) -> int:
        """The newest committed version, 0 when the registry is empty."""
        vs = self.versions()
        return vs[-1] if vs else 0

    @abc.abstractmethod
    def read(self, version: int) -> bytes:
        """The document of ``version``; NotFoundError when it does not exist."""

    @abc.abstractmethod
    def create(self, version: int, data: bytes) -> None:
        """Atomically publish ``data`` as ``version`` if and only if that version does not exist yet.

        Raises ConflictError when it does. Readers never see a partially written document."""

    # -- records: small documents beside the versions, each written once (the audit log, skewless.audit) -------
    def put_record(self, key: str, data: bytes) -> None:
        """Publish ``data`` at ``key`` (``audit/…``, relative to the registry's root) if absent, whole or not at
        all; never overwritten (ConflictError when it exists)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no records (the audit log)")

    def replace_record(self, key: str, data: bytes) -> None:
        """Overwrite the record at ``key`` (or create it) with ``data``, whole: a reader sees the old bytes or the
        new, never a mix. Only for records whose content a later step must shrink (``forget`` removing an
        entity's rows from a training set's rows record, skewless.forget); audit records are never replaced."""
        raise NotImplementedError(f"{type(self).__name__} keeps no records (the audit log)")

    def record_keys(self, prefix: str) -> list[str]:
        """The keys of the records under ``prefix``, sorted."""
        raise NotImplementedError(f"{type(self).__name__} keeps no records (the audit log)")

    def read_record(self, key: str) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} keeps no records (the audit log)")


class LocalRegistryStore(RegistryStore):
    """Registry versions as files in a folder. Publishing is ``link(tmp, vN.json)``: atomic and exclusive."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.url = f"file://{self.path}"

    def versions(self) -> list[int]:
        try:  # listed first, its absence checked only on failure: a push lists it every time (one stat less)
            names = os.listdir(self.path)
        except OSError as exc:
            if not self.path.exists():
                return []
            raise StoreUnavailable(f"cannot list registry folder {self.path}: {exc}", endpoint=str(self.path)) from exc
        return sorted(int(m.group(1)) for n in names if (m := _VERSION_FILE.match(n)))

    def read(self, version: int) -> bytes:
        try:
            return (self.path / version_name(version)).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"registry version {version} does not exist in {self.path}") from None

    def create(self, version: int, data: bytes) -> None:
        self._create_exclusive(self.path / version_name(version), data,
                               f"registry version {version} was committed by someone else first; re-read and retry")

    def put_record(self, key: str, data: bytes) -> None:
        self._create_exclusive(self.path / key, data, f"record {key} exists already")  # never replaced

    def replace_record(self, key: str, data: bytes) -> None:
        target = self.path / key
        tmp = self._write_temp(target, data)
        try:
            os.replace(tmp, target)  # atomic on POSIX: the old file or the new one, never a half-written one
        except BaseException:
            os.unlink(tmp)
            raise

    @staticmethod
    def _write_temp(target: Path, data: bytes) -> str:
        """A synced temporary file holding ``data`` beside ``target`` (hidden from ``record_keys``)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    @classmethod
    def _create_exclusive(cls, target: Path, data: bytes, conflict: str) -> None:
        """``target`` with ``data``, whole (written, synced, then hard-linked into place) and only when absent:
        ConflictError(``conflict``) when it exists."""
        tmp = cls._write_temp(target, data)
        try:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise ConflictError(conflict) from None
        finally:
            os.unlink(tmp)

    def record_keys(self, prefix: str) -> list[str]:
        root = self.path / prefix
        if not root.exists():
            return []
        return sorted(str(p.relative_to(self.path)) for p in root.rglob("*") if p.is_file()
                      and not p.name.startswith(".tmp-"))

    def read_record(self, key: str) -> bytes:
        try:
            return (self.path / key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"record {key} does not exist in {self.path}") from None

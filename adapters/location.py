"""Where an object-store adapter keeps things: ``<scheme>://bucket/prefix`` (S3, OSS share the shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from skewless.errors import ConfigError


@dataclass(frozen=True)
class BucketLocation:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty
    scheme: ClassVar[str] = ""

    @classmethod
    def parse(cls, url: str):
        parts = urlsplit(url)
        if parts.scheme != cls.scheme or not parts.netloc:
            raise ConfigError(f"expected {cls.scheme}://bucket/prefix, got {url!r}")
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, *names: str) -> str:
        return "/".join(p for p in (self.prefix, *names) if p)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

"""Alibaba OSS offline store (Delta Lake tables) and registry (one object per version), ``oss://bucket/prefix``,
through ``oss2`` and the native OSS protocol.

Options (skewless.yaml ``offline.storage_options`` / ``registry.options``), all optional:
    endpoint            e.g. ``https://oss-cn-hangzhou.aliyuncs.com`` (or ``-internal`` inside a VPC), the local
                        cloud's ``http://127.0.0.1:5056``; default: the public endpoint of ``region``
    region              e.g. ``cn-hangzhou``; default: read from an ``oss-<region>.aliyuncs.com`` endpoint. Requests
                        are signed with OSS's V4 signatures, which need it.
    access_key_id / access_key_secret / security_token   explicit keys (prefer the environment; use ${VAR})
    ram_role            the ECS RAM role to take credentials from (the instance metadata service)
    connect_timeout, read_timeout (seconds), max_attempts   bounded retries with backoff of what may pass
                        (unreachable endpoint, 5xx answers); defaults 3, 30, 3

Credentials, first found: the options; ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
(+ ``ALIBABA_CLOUD_SECURITY_TOKEN``); oss2's ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET`` (+ ``OSS_SESSION_TOKEN``);
the ECS RAM role named by ``ram_role`` or ``ALIBABA_CLOUD_ECS_METADATA`` (temporary keys, refreshed by oss2). They stay
inside oss2's credentials provider: never logged, never put into an error message. oss2's own debug log prints request
headers (the security token among them) and its info log every refused conditional write, so its logger is kept
at WARNING unless the application set it explicitly.

The registry publishes version ``n`` as one PUT with ``x-oss-forbid-overwrite: true``: OSS creates the object only
if absent (else ``409 FileAlreadyExists``), so of two writers of the same version exactly one wins. The offline
store is in ``oss_delta.py``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import oss2
import requests
import urllib3

from skewless.errors import ConfigError, ConflictError, NotFoundError, StoreUnavailable
from skewless.registry.store import _VERSION_FILE, RegistryStore, version_name
from skewless.adapters.location import BucketLocation

_KNOWN = {"endpoint", "region", "access_key_id", "access_key_secret", "security_token", "ram_role",
          "connect_timeout", "read_timeout", "max_attempts"}
_ECS_METADATA = "http://100.100.100.200/latest/meta-data/ram/security-credentials/"
_ENDPOINT_REGION = re.compile(r"^oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")
# Failures that may pass: never reached or never answered (oss2 wraps requests' errors in RequestError; a body read
# breaks as requests'/urllib3's own), a body that does not match its CRC.
_TRANSIENT = (oss2.exceptions.RequestError, oss2.exceptions.InconsistentError, requests.RequestException,
              urllib3.exceptions.HTTPError)
_CREDENTIAL_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "SecurityTokenExpired",
                     "InvalidSecurityToken", "InvalidObjectState"}

if logging.getLogger("oss2").level == logging.NOTSET:
    logging.getLogger("oss2").setLevel(logging.WARNING)


class OSSLocation(BucketLocation):
    scheme = "oss"


def _credentials_provider(options: dict):
    env = os.environ.get
    if options.get("access_key_id") or options.get("access_key_secret"):
        if not (options.get("access_key_id") and options.get("access_key_secret")):
            raise ConfigError("OSS options need both access_key_id and access_key_secret")
        return oss2.credentials.StaticCredentialsProvider(
            options["access_key_id"], options["access_key_secret"], options.get("security_token") or "")
    if env("ALIBABA_CLOUD_ACCESS_KEY_ID") and env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        return oss2.credentials.StaticCredentialsProvider(
            env("ALIBABA_CLOUD_ACCESS_KEY_ID"), env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            env("ALIBABA_CLOUD_SECURITY_TOKEN") or "")
    if env("OSS_ACCESS_KEY_ID") and env("OSS_ACCESS_KEY_SECRET"):
        return oss2.credentials.EnvironmentVariableCredentialsProvider()  # read at each use
    role = options.get("ram_role") or env("ALIBABA_CLOUD_ECS_METADATA")
    if role:
        return oss2.credentials.EcsRamRoleCredentialsProvider(_ECS_METADATA + role, max_retries=2, timeout=3)
    raise ConfigError("no Alibaba Cloud credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                      "ALIBABA_CLOUD_ACCESS_KEY_SECRET (or OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET), the options "
                      "access_key_id/access_key_secret, or an ECS RAM role (option ram_role)")


class OSSSession:
    """One place that turns the options into an ``oss2.Bucket`` with bounded retries and typed errors."""

    def __init__(self, options: dict | None, bucket: str):
        options = dict(options or {})
        unknown = set(options) - _KNOWN
        if unknown:
            raise ConfigError(f"unknown OSS options {sorted(unknown)}; known: {sorted(_KNOWN)}")
        endpoint, region = options.get("endpoint"), options.get("region")
        if not region and endpoint:
            m = _ENDPOINT_REGION.match(urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").hostname
                                       or "")
            region = m.group(1) if m else None
        if not region:
            raise ConfigError("OSS needs a region (option region, e.g. cn-hangzhou): requests are signed with V4 "
                              "signatures, which name it")
        self.endpoint = endpoint or f"https://oss-{region}.aliyuncs.com"
        self.region, self.bucket_name = region, bucket
        self.max_attempts = max(1, int(options.get("max_attempts", 3)))
        timeout = (float(options.get("connect_timeout", 3)), float(options.get("read_timeout", 30)))
        self.bucket = oss2.Bucket(oss2.ProviderAuthV4(_credentials_provider(options)), self.endpoint, bucket,
                                  connect_timeout=timeout, region=region)

    def retrying(self, fn, *args, **kw):
        """``fn(*args, **kw)`` with bounded retries (backoff) of what may pass; oss2's errors come out as they are."""
        for attempt in range(self.max_attempts):
            try:
                return fn(*args, **kw)
            except _TRANSIENT:
                if attempt == self.max_attempts - 1:
                    raise
            except oss2.exceptions.ServerError as exc:
                if exc.status < 500 or attempt == self.max_attempts - 1:
                    raise
            time.sleep(min(0.1 * 2 ** attempt, 2.0))

    def call(self, what: str, fn, *args, **kw):
        """``retrying``, with OSS's errors as skewless errors."""
        try:
            return self.retrying(fn, *args, **kw)
        except (oss2.exceptions.OssError, *_TRANSIENT) as exc:
            raise self.translate(exc, what) from exc

    def translate(self, exc: Exception, what: str) -> Exception:
        """An oss2 error as the skewless error it means (raise the result ``from exc``)."""
        status = getattr(exc, "status", None)
        if isinstance(exc, _TRANSIENT):
            return StoreUnavailable(f"{what}: OSS endpoint {self.endpoint} is unreachable ({type(exc).__name__})",
                                    endpoint=self.endpoint)
        if isinstance(exc, oss2.exceptions.ServerError):
            if exc.code == "NoSuchBucket":
                return ConfigError(f"{what}: bucket {self.bucket_name!r} does not exist (NoSuchBucket)")
            if exc.code in _CREDENTIAL_CODES or status == 403:
                return ConfigError(f"{what}: OSS refused the credentials ({exc.code or status})")
            return StoreUnavailable(f"{what}: OSS error {exc.code or status} from {self.endpoint}",
                                    endpoint=self.endpoint)
        if isinstance(exc, oss2.exceptions.ClientError):  # before any request: e.g. the credentials provider failed
            return ConfigError(f"{what}: OSS client error (credentials or configuration): "
                               f"{getattr(exc, 'body', '') or type(exc).__name__}")
        return StoreUnavailable(f"{what}: {type(exc).__name__}", endpoint=self.endpoint)

    def put_if_absent(self, key: str, data: bytes, what: str) -> bool:
        """Create ``key`` with ``data`` unless it exists (``x-oss-forbid-overwrite``). True: created; False: it
        existed. After an attempt whose answer was lost, a ``FileAlreadyExists`` may be that attempt's own write,
        so the object is read back: the same bytes mean ours (a commit holds unique file names and a timestamp)."""
        sent = False
        for attempt in range(self.max_attempts):
            try:
                self.bucket.put_object(key, data, headers={"x-oss-forbid-overwrite": "true"})
                return True
            except oss2.exceptions.ServerError as exc:
                if exc.status == 409 and exc.code == "FileAlreadyExists":
                    return sent and self.call(what, lambda: self.bucket.get_object(key).read()) == data
                if exc.status < 500 or attempt == self.max_attempts - 1:
                    raise self.translate(exc, what) from exc
                sent = True
            except _TRANSIENT as exc:
                if attempt == self.max_attempts - 1:
                    raise self.translate(exc, what) from exc
                sent = True
            time.sleep(min(0.1 * 2 ** attempt, 2.0))
        raise AssertionError("unreachable")

    def keys(self, prefix: str, delimiter: str = "", start_after: str = "") -> list[tuple[str, str]]:
        """(key, etag) of the objects under ``prefix``, in key order (the whole listing is retried, not a page)."""
        def listing():
            return [(o.key, o.etag) for o in oss2.ObjectIteratorV2(self.bucket, prefix=prefix, delimiter=delimiter,
                                                                    start_after=start_after, max_keys=1000)
                    if not o.is_prefix()]
        return self.call(f"listing oss://{self.bucket_name}/{prefix}", listing)

    def delete_prefix(self, prefix: str, what: str) -> None:
        keys = [k for k, _ in self.keys(prefix)]
        for i in range(0, len(keys), 1000):  # OSS deletes at most 1000 objects per request
            self.call(what, self.bucket.batch_delete_objects, keys[i:i + 1000])


class OSSRegistryStore(RegistryStore):
    """Registry versions as objects ``<prefix>/v0000000001.json``, each created once with x-oss-forbid-overwrite."""

    def __init__(self, url: str, options: dict | None = None):
        self.loc = OSSLocation.parse(url)
        self.url = self.loc.url
        self.oss = OSSSession(options, self.loc.bucket)

    def versions(self) -> list[int]:
        prefix = self.loc.key("") + "/" if self.loc.prefix else ""
        found = (_VERSION_FILE.match(key[len(prefix):]) for key, _ in self.oss.keys(prefix, delimiter="/"))
        return sorted(int(m.group(1)) for m in found if m)

    def read(self, version: int) -> bytes:
        key = self.loc.key(version_name(version))
        try:
            return self.oss.retrying(lambda: self.oss.bucket.get_object(key).read())
        except oss2.exceptions.NoSuchKey:
            raise NotFoundError(f"registry version {version} does not exist in {self.url}") from None
        except (oss2.exceptions.OssError, *_TRANSIENT) as exc:
            raise self.oss.translate(exc, f"reading registry version {version}") from exc

    def create(self, version: int, data: bytes) -> None:
        # One PUT: OSS makes the object visible whole or not at all.
        if not self.oss.put_if_absent(self.loc.key(version_name(version)), data,
                                      f"committing registry version {version}"):
            raise ConflictError(f"registry version {version} was committed by someone else first; re-read and retry")

    def put_record(self, key: str, data: bytes) -> None:
        if not self.oss.put_if_absent(self.loc.key(key), data, f"writing record {key}"):
            raise ConflictError(f"record {key} exists already")

    def replace_record(self, key: str, data: bytes) -> None:
        # a plain PUT (no forbid-overwrite): OSS replaces the object whole; retried, as it is idempotent
        self.oss.call(f"replacing record {key}", self.oss.bucket.put_object, self.loc.key(key), data)

    def record_keys(self, prefix: str) -> list[str]:
        root = self.loc.key("") + "/" if self.loc.prefix else ""
        return sorted(k[len(root):] for k, _ in self.oss.keys(root + prefix))

    def read_record(self, key: str) -> bytes:
        try:
            return self.oss.retrying(lambda: self.oss.bucket.get_object(self.loc.key(key)).read())
        except oss2.exceptions.NoSuchKey:
            raise NotFoundError(f"record {key} does not exist in {self.url}") from None
        except (oss2.exceptions.OssError, *_TRANSIENT) as exc:
            raise self.oss.translate(exc, f"reading record {key}") from exc


def registry_from_url(url: str, repo_path: Path, options: dict) -> OSSRegistryStore:
    return OSSRegistryStore(url, options)

"""S3 offline store (Delta Lake tables) and registry (one object per version), ``s3://bucket/prefix``.

Options (skewless.yaml ``offline.storage_options`` / ``registry.options``), all optional:
    endpoint_url        an S3-compatible endpoint (LocalStack, moto, MinIO); default: AWS's (or $AWS_ENDPOINT_URL)
    region              default: the standard chain's ($AWS_REGION, the profile), else us-east-1
    profile             a named profile from ~/.aws
    access_key_id / secret_access_key / session_token   explicit keys (prefer the chain; use ${VAR} if you must)
    connect_timeout, read_timeout (seconds), max_attempts   bounded retries with backoff (botocore "standard");
                        read_timeout also bounds each request of a Delta commit (uploads go in parts)

Credentials come from the standard AWS chain (environment, profile, web identity, instance/task role) through
boto3, resolved at each use so temporary credentials refresh. They are handed to delta-rs and pyarrow in memory
and never logged or put into an error message.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
from pyarrow import fs as pafs

from skewless.errors import ConfigError, ConflictError, NotFoundError, StoreUnavailable
from skewless.offline.delta import DeltaOfflineStore
from skewless.registry.store import _VERSION_FILE, RegistryStore, version_name
from skewless.adapters.location import BucketLocation

_KNOWN = {"endpoint_url", "region", "profile", "access_key_id", "secret_access_key", "session_token",
          "connect_timeout", "read_timeout", "max_attempts"}
# What an unreachable or refusing endpoint looks like from botocore.
_UNREACHABLE = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)


class S3Location(BucketLocation):
    scheme = "s3"


class S3Session:
    """One place that turns the options into boto3 clients, delta-rs storage options and a pyarrow FileSystem."""

    def __init__(self, options: dict | None):
        options = dict(options or {})
        unknown = set(options) - _KNOWN
        if unknown:
            raise ConfigError(f"unknown S3 options {sorted(unknown)}; known: {sorted(_KNOWN)}")
        self.endpoint_url = options.get("endpoint_url")
        self._session = boto3.session.Session(
            profile_name=options.get("profile"), aws_access_key_id=options.get("access_key_id"),
            aws_secret_access_key=options.get("secret_access_key"), aws_session_token=options.get("session_token"))
        self.region = options.get("region") or self._session.region_name or "us-east-1"
        # Kept apart from the botocore Config: creating a client rewrites Config.retries in place
        # (max_attempts -> total_max_attempts), and delta-rs / pyarrow need the number after that too.
        self.max_attempts = int(options.get("max_attempts", 3))
        self._config = botocore.config.Config(
            region_name=self.region, connect_timeout=float(options.get("connect_timeout", 3)),
            read_timeout=float(options.get("read_timeout", 30)),
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"} if self.endpoint_url else None)
        self._local = threading.local()

    @property
    def endpoint(self) -> str:
        """For error messages: where requests go (never credentials)."""
        return self.endpoint_url or f"s3.{self.region}.amazonaws.com"

    def client(self):
        # boto3 clients are thread-safe but creating one is not; one per thread keeps it simple.
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
        return c

    def _credentials(self):
        creds = self._session.get_credentials()
        if creds is None:
            raise ConfigError("no AWS credentials found in the standard chain (environment, profile, role); "
                              "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role")
        return creds.get_frozen_credentials()

    def delta_options(self) -> dict[str, str]:
        c = self._credentials()
        opts = {"AWS_REGION": self.region, "AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key,
                # Commits are conditional PUTs (If-None-Match), which S3 and both emulators support: no lock table.
                "AWS_CONDITIONAL_PUT": "etag", "connect_timeout": f"{int(self._config.connect_timeout)}s",
                "max_retries": str(self.max_attempts),
                # Bounds the whole retry loop (delta-rs' default is 180 s): a dead endpoint fails within this.
                "retry_timeout": f"{int(self._config.read_timeout)}s",
                "timeout": f"{int(self._config.read_timeout)}s"}
        if c.token:
            opts["AWS_SESSION_TOKEN"] = c.token
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
            opts["AWS_ALLOW_HTTP"] = "true" if self.endpoint_url.startswith("http://") else "false"
            opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        return opts

    def arrow_filesystem(self) -> pafs.S3FileSystem:
        c = self._credentials()
        kw = {}
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            kw = {"endpoint_override": parts.netloc, "scheme": parts.scheme or "https", "force_virtual_addressing": False}
        return pafs.S3FileSystem(access_key=c.access_key, secret_key=c.secret_key, session_token=c.token,
                                 region=self.region, connect_timeout=self._config.connect_timeout,
                                 request_timeout=self._config.read_timeout,
                                 retry_strategy=pafs.AwsStandardS3RetryStrategy(self.max_attempts),
                                 **kw)

    def translate(self, exc: Exception, what: str) -> Exception:
        """A botocore error as the skewless error it means (raise the result ``from exc``)."""
        if isinstance(exc, _UNREACHABLE):
            return StoreUnavailable(f"{what}: S3 endpoint {self.endpoint} is unreachable ({type(exc).__name__})",
                                    endpoint=self.endpoint)
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return ConfigError(f"{what}: no AWS credentials found in the standard chain")
        if isinstance(exc, botocore.exceptions.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket",):
                return ConfigError(f"{what}: bucket does not exist ({code})")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                return ConfigError(f"{what}: S3 refused the credentials ({code})")
            return StoreUnavailable(f"{what}: S3 error {code or status}", endpoint=self.endpoint)
        return StoreUnavailable(f"{what}: {type(exc).__name__}", endpoint=self.endpoint)


def _client_errors():
    return (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


class S3RegistryStore(RegistryStore):
    """Registry versions as objects ``<prefix>/v0000000001.json``. Publishing is a PUT with ``If-None-Match: *``:
    S3 creates the object only if absent, so of two writers of the same version exactly one wins."""

    def __init__(self, url: str, options: dict | None = None):
        self.loc = S3Location.parse(url)
        self.url = self.loc.url
        self.s3 = S3Session(options)

    def versions(self) -> list[int]:
        out: list[int] = []
        prefix = self.loc.key("") + "/" if self.loc.prefix else ""
        try:
            for page in self.s3.client().get_paginator("list_objects_v2").paginate(
                    Bucket=self.loc.bucket, Prefix=prefix, Delimiter="/"):
                for obj in page.get("Contents", []):
                    m = _VERSION_FILE.match(obj["Key"][len(prefix):])
                    if m:
                        out.append(int(m.group(1)))
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"listing registry {self.url}") from exc
        return sorted(out)

    def read(self, version: int) -> bytes:
        try:
            return self.s3.client().get_object(Bucket=self.loc.bucket, Key=self.loc.key(version_name(version)))[
                "Body"].read()
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError(f"registry version {version} does not exist in {self.url}") from None
            raise self.s3.translate(exc, f"reading registry version {version}") from exc
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"reading registry version {version}") from exc

    def create(self, version: int, data: bytes) -> None:
        self._put_if_absent(self.loc.key(version_name(version)), data, f"committing registry version {version}",
                            f"registry version {version} was committed by someone else first; re-read and retry")

    def put_record(self, key: str, data: bytes) -> None:
        self._put_if_absent(self.loc.key(key), data, f"writing record {key}", f"record {key} exists already")

    def replace_record(self, key: str, data: bytes) -> None:
        # a plain PUT: S3 replaces the object whole (readers see the old object or the new one)
        what = f"replacing record {key}"
        try:
            self.s3.client().put_object(Bucket=self.loc.bucket, Key=self.loc.key(key), Body=data)
        except _client_errors() as exc:
            raise self.s3.translate(exc, what) from exc

    def _put_if_absent(self, key: str, data: bytes, what: str, conflict: str) -> None:
        """One conditional PUT (S3 makes the object visible whole or not at all); ConflictError(``conflict``) when
        the key exists (412) or a concurrent conditional write to it is in flight (409)."""
        try:
            self.s3.client().put_object(Bucket=self.loc.bucket, Key=key, Body=data, IfNoneMatch="*",
                                        ContentType="application/json")
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or \
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                raise ConflictError(conflict) from None
            raise self.s3.translate(exc, what) from exc
        except _client_errors() as exc:
            raise self.s3.translate(exc, what) from exc

    def record_keys(self, prefix: str) -> list[str]:
        root = self.loc.key("") + "/" if self.loc.prefix else ""
        out: list[str] = []
        try:
            for page in self.s3.client().get_paginator("list_objects_v2").paginate(
                    Bucket=self.loc.bucket, Prefix=root + prefix):
                out += [obj["Key"][len(root):] for obj in page.get("Contents", [])]
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"listing records {prefix}") from exc
        return sorted(out)

    def read_record(self, key: str) -> bytes:
        try:
            return self.s3.client().get_object(Bucket=self.loc.bucket, Key=self.loc.key(key))["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError(f"record {key} does not exist in {self.url}") from None
            raise self.s3.translate(exc, f"reading record {key}") from exc
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"reading record {key}") from exc


class S3OfflineStore(DeltaOfflineStore):
    """Feature histories as Delta tables under ``s3://bucket/prefix/<view>``; commits are conditional PUTs."""

    def __init__(self, url: str, options: dict | None = None):
        self.loc = S3Location.parse(url)
        self.s3 = S3Session(options)
        super().__init__(self.loc.url, None)

    @property
    def storage_options(self) -> dict[str, str]:  # fresh each time: temporary credentials refresh
        return self.s3.delta_options()

    @storage_options.setter
    def storage_options(self, value) -> None:  # the base class assigns it; ours is derived
        pass

    def _files_of(self, view, dt):
        files = super()._files_of(view, dt)
        from dataclasses import replace

        return replace(files, storage_options=None, filesystem=self.s3.arrow_filesystem())

    def _log_entry(self, view: str, version: int) -> bytes | None:
        try:
            with self.s3.arrow_filesystem().open_input_stream(
                    f"{self.loc.bucket}/{self.loc.key(view, '_delta_log', f'{version:020d}.json')}") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"reading the history log of {view!r}: {str(exc).splitlines()[0]}",
                                   endpoint=self.s3.endpoint) from exc

    def _stored_files(self, view: str) -> dict[str, float]:
        prefix = self.loc.key(view) + "/"
        try:
            return {o["Key"][len(prefix):]: o["LastModified"].timestamp()
                    for page in self.s3.client().get_paginator("list_objects_v2").paginate(
                        Bucket=self.loc.bucket, Prefix=prefix) for o in page.get("Contents", [])}
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"listing the history of {view!r}") from exc

    def _delete_files(self, view: str, paths: list[str]) -> list[str]:
        """The vacuum's deletes, with boto3: of ``paths`` (relative to the history's prefix), those still in the
        bucket (one listing), at most 1000 per request."""
        stored = self._stored_files(view)
        there = [p for p in paths if p in stored]
        objects = [{"Key": self.loc.key(view, p)} for p in there]
        try:
            for i in range(0, len(objects), 1000):
                done = self.s3.client().delete_objects(Bucket=self.loc.bucket,
                                                       Delete={"Objects": objects[i:i + 1000], "Quiet": True})
                if done.get("Errors"):
                    raise StoreUnavailable(f"vacuuming the history of {view!r}: S3 refused to delete "
                                           f"{len(done['Errors'])} object(s) ({done['Errors'][0].get('Code')})",
                                           endpoint=self.s3.endpoint)
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"vacuuming the history of {view!r}") from exc
        return there

    def drop(self, view: str) -> None:
        prefix = self.loc.key(view) + "/"
        client = self.s3.client()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.loc.bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=self.loc.bucket, Delete={"Objects": keys, "Quiet": True})
        except _client_errors() as exc:
            raise self.s3.translate(exc, f"dropping history of {view!r}") from exc


def offline_from_url(url: str, repo_path: Path, options: dict) -> S3OfflineStore:
    return S3OfflineStore(url, options)


def registry_from_url(url: str, repo_path: Path, options: dict) -> S3RegistryStore:
    return S3RegistryStore(url, options)


def source_from_url(url: str, repo_path: Path, options: dict):
    """Where a batch source's (or an entity table's, or a training set's) objects under ``s3://bucket/key`` are:
    pyarrow's S3 filesystem for files, delta-rs' storage options for Delta tables."""
    from skewless.sources import Place

    loc = S3Location.parse(url)
    s3 = S3Session(options)
    return Place(s3.arrow_filesystem(), f"{loc.bucket}/{loc.prefix}".rstrip("/"), url, delta_uri=url,
                 delta_options=s3.delta_options())

"""EMR Serverless as a job target (``submit.target: emr-serverless``): ``skewless submit`` through boto3.

Settings (skewless.yaml ``submit:``, written by ``skewless config from-terraform`` from the AWS stack):
    application_id       the EMR Serverless application (Terraform: module aws-emr-serverless)
    execution_role_arn   the job runtime role
    log_uri              s3:// prefix of the job logs (set on every run's monitoringConfiguration)
    jobs_uri             s3:// prefix the entry point is staged under (the role may read it)
    region               default: the standard chain's
    options              the EMR Serverless client's: endpoint_url, profile, access_key_id/secret_access_key
    storage_options      the S3 client's (staging, logs); default: offline.storage_options when offline is s3://
    spark_submit_parameters   extra ``--conf`` text, e.g. a packed venv: ``--conf spark.archives=s3://...#environment
                         --conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python ...``
    execution_timeout_minutes  (default 720, EMR's)
    poll_seconds         how often ``wait`` asks for the state (default 10)

A run: the entry point script (``emr_entry.py`` of this package) is uploaded once per version under ``jobs_uri``;
``start_job_run`` names it as ``sparkSubmit.entryPoint`` with the ``JobSpec`` as its argument; ``wait`` polls
``get_job_run`` until SUCCESS, FAILED or CANCELLED, reports each new state, and reads the driver's stdout from the
log URI (EMR's layout ``<log_uri>applications/<app>/jobs/<run>/SPARK_DRIVER/stdout.gz``) for the job's result.
FAILED or CANCELLED raise ``JobFailed`` / ``JobCancelled`` with the service's reason and the end of the driver's
stderr. Ctrl-C while waiting cancels the run (``cancel_job_run``) before the interrupt goes on.
"""

from __future__ import annotations

import gzip
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

from skewless.config import Config
from skewless.errors import (ConfigError, JobCancelled, JobFailed, NotFoundError, SkewlessError,
                             StoreUnavailable)
from skewless.jobs import DONE_STATES, ERROR_MARK, JobOutcome, JobSpec, ProgressFn, result_of
from skewless.adapters.aws.s3 import S3Location, S3Session

ENTRY = Path(__file__).with_name("emr_entry.py")
_REQUIRED = ("application_id", "execution_role_arn", "log_uri", "jobs_uri")
_KNOWN = {"target", "region", "options", "storage_options", "spark_submit_parameters", "execution_timeout_minutes",
          "poll_seconds", *_REQUIRED}
_CLIENT_OPTIONS = {"endpoint_url", "profile", "access_key_id", "secret_access_key", "session_token"}
_TAIL = 4000  # characters of the driver's stderr kept on a JobFailed


def _package_version() -> str:
    try:
        return version("skewless")
    except PackageNotFoundError:  # a source checkout without metadata
        return "0"


def _s3_prefix(value: str, key: str) -> S3Location:
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise ConfigError(f"submit.{key} must be an s3:// URI, got {value!r}")
    return S3Location.parse(value.rstrip("/"))


class EmrServerlessSubmitter:
    def __init__(self, config: Config):
        s = dict(config.submit)
        unknown = set(s) - _KNOWN
        if unknown:
            raise ConfigError(f"unknown submit settings {sorted(unknown)} for emr-serverless; known: {sorted(_KNOWN)}")
        missing = [k for k in _REQUIRED if not s.get(k)]
        if missing:
            raise ConfigError(f"submit lacks {', '.join(missing)} (terraform output skewless_config.submit; "
                              "set with `skewless config from-terraform --set submit.KEY=VALUE`)")
        opts = dict(s.get("options") or {})
        if set(opts) - _CLIENT_OPTIONS:
            raise ConfigError(f"unknown submit.options {sorted(set(opts) - _CLIENT_OPTIONS)}; "
                              f"known: {sorted(_CLIENT_OPTIONS)}")
        self.config = config
        self.settings = s
        self.application_id = s["application_id"]
        self.logs_at = _s3_prefix(s["log_uri"], "log_uri")
        self.jobs_at = _s3_prefix(s["jobs_uri"], "jobs_uri")
        self.poll_seconds = float(s.get("poll_seconds", 10))
        storage = s.get("storage_options")
        if storage is None:
            storage = config.offline.options if config.offline.url.startswith("s3://") else {}
        self.s3 = S3Session({"region": s.get("region"), **storage} if s.get("region") else storage)
        session = boto3.session.Session(profile_name=opts.get("profile"),
                                        aws_access_key_id=opts.get("access_key_id"),
                                        aws_secret_access_key=opts.get("secret_access_key"),
                                        aws_session_token=opts.get("session_token"))
        self.endpoint = opts.get("endpoint_url")
        self.client = session.client(
            "emr-serverless", endpoint_url=self.endpoint,
            config=botocore.config.Config(region_name=s.get("region") or session.region_name or "us-east-1",
                                          connect_timeout=5, read_timeout=30,
                                          retries={"max_attempts": 5, "mode": "standard"}))

    # -- calls, with errors translated ---------------------------------------------------------------------------
    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "")
            if code == "ResourceNotFoundException":
                raise NotFoundError(f"{what}: {message or code}") from exc
            if code in ("ValidationException", "AccessDeniedException", "UnrecognizedClientException",
                        "InvalidSignatureException", "ExpiredTokenException", "ConflictException"):
                raise ConfigError(f"{what}: EMR Serverless refused it ({code}: {message})") from exc
            raise StoreUnavailable(f"{what}: EMR Serverless error {code}: {message}",
                                   endpoint=self.endpoint) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ConfigError(f"{what}: no AWS credentials found in the standard chain") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreUnavailable(f"{what}: EMR Serverless is unreachable ({type(exc).__name__})",
                                   endpoint=self.endpoint or "emr-serverless") from exc

    def stage_entry_point(self) -> str:
        """The entry script's s3:// URI under jobs_uri, uploaded when that version's copy is not there yet."""
        key = self.jobs_at.key(f"skewless-{_package_version()}/emr_entry.py")
        body = ENTRY.read_bytes()
        s3 = self.s3.client()
        try:
            try:
                if s3.get_object(Bucket=self.jobs_at.bucket, Key=key)["Body"].read() == body:
                    return f"s3://{self.jobs_at.bucket}/{key}"
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
            s3.put_object(Bucket=self.jobs_at.bucket, Key=key, Body=body)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.s3.translate(exc, f"staging the entry point at s3://{self.jobs_at.bucket}/{key}") from exc
        return f"s3://{self.jobs_at.bucket}/{key}"

    def request(self, spec: JobSpec, entry_point: str, name: str | None = None) -> dict:
        """The start_job_run arguments for ``spec`` (no call made)."""
        driver = {"entryPoint": entry_point, "entryPointArguments": ["--job", spec.to_json()]}
        if self.settings.get("spark_submit_parameters"):
            driver["sparkSubmitParameters"] = self.settings["spark_submit_parameters"]
        req = {"applicationId": self.application_id, "executionRoleArn": self.settings["execution_role_arn"],
               "name": name or f"skewless-{spec.kind}", "clientToken": uuid.uuid4().hex,
               "jobDriver": {"sparkSubmit": driver},
               "configurationOverrides": {"monitoringConfiguration": {"s3MonitoringConfiguration": {
                   "logUri": self.settings["log_uri"].rstrip("/") + "/"}}},
               "tags": {"skewless:job": spec.kind}}
        if self.settings.get("execution_timeout_minutes"):
            req["executionTimeoutMinutes"] = int(self.settings["execution_timeout_minutes"])
        return req

    def start(self, spec: JobSpec, name: str | None = None) -> str:
        res = self._call("start_job_run", self.client.start_job_run, **self.request(spec, self.stage_entry_point(),
                                                                                      name))
        return res["jobRunId"]

    def state(self, job_run_id: str) -> tuple[str, str | None]:
        run = self._call(f"get_job_run {job_run_id}", self.client.get_job_run, applicationId=self.application_id,
                         jobRunId=job_run_id)["jobRun"]
        return run["state"], run.get("stateDetails") or None

    def cancel(self, job_run_id: str) -> None:
        self._call(f"cancel_job_run {job_run_id}", self.client.cancel_job_run, applicationId=self.application_id,
                   jobRunId=job_run_id)

    def logs(self, job_run_id: str, stream: str = "stdout") -> str | None:
        """The driver's ``stdout`` or ``stderr`` of a run, or None when it is not (yet) in the log URI."""
        key = self.logs_at.key(f"applications/{self.application_id}/jobs/{job_run_id}/SPARK_DRIVER/{stream}.gz")
        try:
            body = self.s3.client().get_object(Bucket=self.logs_at.bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
                return None
            raise self.s3.translate(exc, f"reading the job log s3://{self.logs_at.bucket}/{key}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self.s3.translate(exc, f"reading the job log s3://{self.logs_at.bucket}/{key}") from exc
        try:
            return gzip.decompress(body).decode("utf-8", "replace")
        except OSError:  # not gzip: written plain
            return body.decode("utf-8", "replace")

    def wait(self, job_run_id: str, progress: ProgressFn | None = None) -> JobOutcome:
        """Poll until the run ends; each new state goes to ``progress``. Ctrl-C cancels the run, then re-raises."""
        last = None
        try:
            while True:
                state, details = self.state(job_run_id)
                if (state, details) != last:
                    last = (state, details)
                    if progress:
                        progress(state, details)
                if state in DONE_STATES:
                    break
                time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            try:
                self.cancel(job_run_id)
            except SkewlessError:  # refused because the run ended meanwhile: nothing left to cancel
                if self.state(job_run_id)[0] not in DONE_STATES:
                    raise
            raise
        if state == "SUCCESS":
            return JobOutcome(job_run_id, state, result_of(self.logs(job_run_id)))
        tail = (self.logs(job_run_id, "stderr") or "")[-_TAIL:] or None
        cls = JobCancelled if state == "CANCELLED" else JobFailed
        cause = next((line[len(ERROR_MARK):] for line in reversed((tail or "").splitlines())
                      if line.startswith(ERROR_MARK)), None)
        raise cls(f"job run {job_run_id} on EMR Serverless application {self.application_id} ended {state}"
                  + (f": {details}" if details else "") + (f"\nthe job reported: {cause}" if cause else ""),
                  job_run_id=job_run_id, state=state, details=details, log_tail=tail)


def submitter(config: Config) -> EmrServerlessSubmitter:
    """The plugin table's ``submit`` factory for ``emr-serverless``."""
    return EmrServerlessSubmitter(config)

"""EMR Serverless for tests: moto's control plane in this process, with the job runs executed here in local mode.

API subset (moto 5.2's EMR Serverless, over HTTP on a port of its own, with S3 on the same port for the entry point
and the logs): create/get/list/start/stop_application, start_job_run, get_job_run, list_job_runs, cancel_job_run.
moto records a run as SUCCESS the moment it is started and runs nothing; the real service goes SUBMITTED ->
(PENDING, SCHEDULED) -> RUNNING -> SUCCESS | FAILED | CANCELLED. So this harness makes moto record new runs as
SUBMITTED and plays the service's part for each one (``serve`` runs it in a thread): RUNNING, then the run's
``sparkSubmit.entryPoint`` downloaded from S3 and run with its ``entryPointArguments`` as a Python subprocess (no
Spark: the job runs with whatever engine its config names), its stdout/stderr gzipped to EMR's log layout under the
run's ``logUri`` (``applications/<app>/jobs/<run>/SPARK_DRIVER/{stdout,stderr}.gz``), then SUCCESS, or FAILED with
EMR's kind of stateDetails. A run cancelled while it executes has its process killed and stays CANCELLED.
``sparkSubmitParameters`` are recorded, not applied.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

ACCOUNT, REGION = "123456789012", "us-east-1"
DUMMY = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": REGION}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalEmrServerless:
    def __init__(self, env: dict[str, str] | None = None, python: str = sys.executable):
        self.env = env or {}
        self.python = python
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self.executed: list[str] = []  # run ids, in the order they were executed

    # -- the server --------------------------------------------------------------------------------------------
    def start(self) -> "LocalEmrServerless":
        from moto.emrserverless import models
        from moto.server import ThreadedMotoServer

        self._saved_status, models.JOB_STATUS = models.JOB_STATUS, "SUBMITTED"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        from moto.emrserverless import models

        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        if self._server:
            self._server.stop()
        models.JOB_STATUS = self._saved_status

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, **DUMMY)

    def _backend(self):
        from moto.backends import get_backend

        return get_backend("emr-serverless")[ACCOUNT][REGION]

    def _run_object(self, app_id: str, run_id: str):
        return self._backend().get_job_run(app_id, run_id)

    # -- the service's part ---------------------------------------------------------------------------------------
    def serve(self, every: float = 0.05) -> "LocalEmrServerless":
        """Execute submitted runs in a thread until ``stop``."""
        def loop():
            while not self._stop.wait(every):
                self.run_pending()
        self._thread = threading.Thread(target=loop, name="local-emr-serverless", daemon=True)
        self._thread.start()
        return self

    def run_pending(self) -> list[str]:
        done = []
        for app_id, runs in list(self._backend().job_runs.items()):
            for run in list(runs):
                if run.state == "SUBMITTED":
                    self._execute(app_id, run)
                    done.append(run.id)
        return done

    def running(self) -> list[str]:
        """Ids of the runs whose process is alive."""
        return [run_id for run_id, proc in self._procs.items() if proc.poll() is None]

    def _execute(self, app_id: str, run) -> None:
        run.state = "RUNNING"
        self.executed.append(run.id)
        driver = (run.job_driver or {}).get("sparkSubmit", {})
        s3 = self.client("s3")
        entry = urlsplit(driver["entryPoint"])
        with tempfile.TemporaryDirectory(prefix="local-emr-") as tmp:
            script = Path(tmp) / Path(entry.path).name
            s3.download_file(entry.netloc, entry.path.lstrip("/"), str(script))
            proc = subprocess.Popen([self.python, str(script), *driver.get("entryPointArguments", [])], cwd=tmp,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env={**os.environ, **self.env})
            self._procs[run.id] = proc
            while True:
                try:
                    out, err = proc.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if run.state == "CANCELLED" or self._stop.is_set():
                        proc.kill()
        self._write_logs(app_id, run, out, err)
        if run.state == "CANCELLED":
            return
        if proc.returncode == 0:
            run.state = "SUCCESS"
        else:
            run.state = "FAILED"
            run.state_details = f"Job failed, please check complete logs in configured logging destination. " \
                                f"ExitCode: {proc.returncode}."

    def _write_logs(self, app_id: str, run, out: bytes, err: bytes) -> None:
        monitoring = (run.configuration_overrides or {}).get("monitoringConfiguration", {})
        log_uri = monitoring.get("s3MonitoringConfiguration", {}).get("logUri")
        if not log_uri:
            return
        where = urlsplit(log_uri)
        prefix = where.path.strip("/")
        s3 = self.client("s3")
        for stream, body in (("stdout", out), ("stderr", err)):
            key = "/".join(p for p in (prefix, "applications", app_id, "jobs", run.id, "SPARK_DRIVER",
                                       f"{stream}.gz") if p)
            s3.put_object(Bucket=where.netloc, Key=key, Body=gzip.compress(body or b""))

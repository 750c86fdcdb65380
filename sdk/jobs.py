"""Jobs by name: what ``skewless submit`` sends to a cluster, and the entry point that runs it there.

A job is a ``JobSpec``: its kind (``training-set``, ``materialize``, ``materialize-incremental``), the repo's
skewless.yaml as text and the job's arguments. The entry point (``python -m skewless.jobs --job JSON``, or the
script a target stages, e.g. ``skewless/adapters/aws/emr_entry.py`` for EMR Serverless) rebuilds the feature store
from that text and runs the job through the ordinary SDK with the engine the config names: nothing here knows
DuckDB from Spark. It prints one ``SKEWLESS_JOB_RESULT {json}`` line on stdout, which the submitter reads back from
the driver's log.

The config travels as written: ``${VAR}`` references stay references, so secrets never enter a job's arguments
(the cluster's environment must provide them). Local relative paths are made absolute (``portable_config``), which
only helps where the cluster sees the same files (local mode); a real cluster needs object-store URLs.

A target implements ``Submitter`` and is chosen by ``submit.target`` in skewless.yaml through the plugin table's
``submit`` role, so the core and the CLI never import a cloud SDK.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import yaml

from .config import DEFAULT_URLS, FILE_NAME
from .errors import ConfigError, SkewlessError, ValidationError

KINDS = ("training-set", "materialize", "materialize-incremental")
RESULT_MARK = "SKEWLESS_JOB_RESULT "
ERROR_MARK = "SKEWLESS_JOB_ERROR "
# Terminal states of a job run; the others are in progress. The names are EMR Serverless's, which targets map to.
DONE_STATES = ("SUCCESS", "FAILED", "CANCELLED")

ProgressFn = Callable[[str, str | None], None]  # (state, details)


@dataclass
class JobSpec:
    kind: str
    config: str  # the repo's skewless.yaml, ${VAR} references unexpanded
    args: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValidationError(f"unknown job kind {self.kind!r}; known: {', '.join(KINDS)}")
        if not isinstance(self.config, str) or not self.config.strip():
            raise ValidationError("a job needs the repo's skewless.yaml text")
        if not isinstance(self.args, dict):
            raise ValidationError("a job's args must be a mapping")
        need = {"training-set": ("entities", "features", "destination"), "materialize": ("start", "end"),
                "materialize-incremental": ("end",)}[self.kind]
        missing = [k for k in need if not self.args.get(k)]
        if missing:
            raise ValidationError(f"a {self.kind} job needs {', '.join(missing)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"the job spec is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) - {"kind", "config", "args"}:
            raise ValidationError("the job spec must be an object with kind, config and args")
        return cls(doc.get("kind"), doc.get("config"), doc.get("args") or {})


@dataclass
class JobOutcome:
    job_run_id: str
    state: str
    result: dict | None  # what the entry point reported (None when its log could not be read)


class Submitter(Protocol):
    """A place jobs run (the plugin table's ``submit`` role; a factory takes the loaded ``Config``)."""

    def start(self, spec: JobSpec, name: str | None = None) -> str: ...  # the job run's id

    def wait(self, job_run_id: str, progress: ProgressFn | None = None) -> JobOutcome: ...  # raises JobFailed

    def cancel(self, job_run_id: str) -> None: ...

    def logs(self, job_run_id: str, stream: str = "stdout") -> str | None: ...


def submitter(repo: str | os.PathLike):
    """The repo's job target (skewless.yaml ``submit:``), through the plugin table."""
    from . import plugins
    from .config import load

    cfg = load(repo)
    if not cfg.submit:
        raise ConfigError(f"{Path(repo) / FILE_NAME} has no submit: section (where jobs run); "
                          "`skewless config from-terraform` writes it for a stack with a job target")
    return plugins.load("submit", cfg.submit["target"])(cfg)


def portable_config(repo: str | os.PathLike) -> str:
    """The repo's skewless.yaml as a job carries it: ``${VAR}`` kept as written, local relative paths made absolute,
    without the ``submit:`` section (a job does not submit; its client settings stay on the submitting side)."""
    repo = Path(repo)
    path = repo / FILE_NAME if repo.is_dir() else repo
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    base = path.parent.resolve()
    doc.pop("submit", None)

    def absolute(url: str) -> str:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + str(base / url[len("sqlite:///"):])
        if "://" in url or url.startswith("${") or Path(url).is_absolute():
            return url
        return str(base / url)

    for key, default in DEFAULT_URLS.items():
        if doc.get(key) is None:
            doc[key] = default
        elif isinstance(doc[key], dict) and "url" not in doc[key]:
            doc[key]["url"] = default
        node = doc[key]
        if isinstance(node, str):
            doc[key] = absolute(node)
        elif isinstance(node, dict) and isinstance(node.get("url"), str):
            node["url"] = absolute(node["url"])
    return yaml.safe_dump(doc, sort_keys=False)


def run(spec: JobSpec) -> dict:
    """Run ``spec`` here, with the engine its config names; what it did, as JSON-ready values."""
    from .store import FeatureStore
    from .timeutil import utc

    with tempfile.TemporaryDirectory(prefix="skewless-job-") as tmp:
        (Path(tmp) / FILE_NAME).write_text(spec.config)
        store = FeatureStore(tmp)
        a = spec.args
        if spec.kind == "training-set":
            job = store.get_historical_features(a["entities"], a["features"],
                                                full_feature_names=bool(a.get("full_feature_names")),
                                                point_in_time=a.get("point_in_time", "event"),
                                                labels=a.get("labels"), split=a.get("split"))
            job.to_parquet(a["destination"])
            return {"kind": spec.kind, "destination": a["destination"], "snapshot": job.snapshot,
                    "engine": store.config.engine}
        views = a.get("views") or None
        if spec.kind == "materialize":
            results = store.materialize(utc(a["start"], "start"), utc(a["end"], "end"), views)
        else:
            results = store.materialize_incremental(utc(a["end"], "end"), views,
                                                    allow_rewind=bool(a.get("allow_rewind")))
        return {"kind": spec.kind, "engine": store.config.engine,
                "views": [{"view": r.view, "rows": r.rows, "resumed_from": r.resumed_from} for r in results]}


def main(argv: list[str] | None = None) -> int:
    """The entry point: ``--job JSON`` (or ``--job-file PATH``). Exit 0 with a result line, or 1 with an error
    line naming the skewless error (anything else is a bug and keeps its traceback)."""
    parser = argparse.ArgumentParser(prog="skewless-job", description="Run one skewless job (see skewless.jobs).")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--job", help="the JobSpec as JSON")
    group.add_argument("--job-file", help="a file holding the JobSpec as JSON")
    ns = parser.parse_args(argv)
    try:
        text = ns.job if ns.job is not None else Path(ns.job_file).read_text()
        result = run(JobSpec.from_json(text))
    except SkewlessError as exc:
        print(f"{ERROR_MARK}{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr,
              flush=True)
        return 1
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)
    return 0


def result_of(log: str | None) -> dict | None:
    """The entry point's result line in a driver's stdout (the last one), or None."""
    for line in reversed((log or "").splitlines()):
        if line.startswith(RESULT_MARK):
            try:
                return json.loads(line[len(RESULT_MARK):])
            except json.JSONDecodeError:
                return None
    return None


if __name__ == "__main__":  # pragma: no cover - exercised as a subprocess
    sys.exit(main())

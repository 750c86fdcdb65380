"""Running the server: configuration (arguments or the environment, since a managed platform starts the image
as ``<image> serve`` with nothing else), structured logs, and uvicorn.

Environment: every variable is parsed and checked at startup by ``settings.read`` (its docstring lists them all,
with what each accepts); a bad one stops the server with a ConfigError naming it. Most have a ``skewless model
serve`` option, which wins over the variable.

    SKEWLESS_REPO             folder with skewless.yaml (default: <model dir>/repo if present, else .)
    SKEWLESS_MODEL_DIR        an unpacked artifact (default: /opt/ml/model, SageMaker's)
    SKEWLESS_MODEL, SKEWLESS_MODEL_VERSION | SKEWLESS_MODEL_STAGE     or: fetch it from the model registry
    SKEWLESS_CONTRACT         sagemaker (default) | eas | v2 | both (sagemaker,eas), or a comma-separated list of
                              them, e.g. sagemaker,v2 (v2: the Open Inference Protocol's /v2 routes, serving/v2.py)
    SAGEMAKER_BIND_TO_PORT    SageMaker's port (default 8080); SKEWLESS_PORT: the port without SageMaker's contract
                              (EAS's, default 8000)
    SKEWLESS_SERVING_TOKEN    when set, every route but /ping, /ready, /live needs ``Authorization: [Bearer ]<token>``
                              (the prediction routes, /v2 but /v2/health, /metrics, /openapi.json, /docs); EAS
                              requires one
    SKEWLESS_SERVICE_NAME     the EAS service name in /api/predict/<service> (default: the model's name; a deployed
                              EAS service is often named per version, e.g. credit_v2)
    SKEWLESS_HOST             the address to listen on (default 127.0.0.1; the image sets 0.0.0.0, as SageMaker and
                              PAI-EAS reach the container from outside; deploy targets' local runtimes: loopback)
    SKEWLESS_MAX_BODY_BYTES   the largest request body accepted (default 6 MB, SageMaker's limit): 413 past it
    SKEWLESS_LOG_FLUSH_SECONDS    how often the prediction log is committed (default 1; always at shutdown)
    SKEWLESS_MISSING_FEATURES serve | flag | reject: what a prediction does when a required feature view reads
                              NOT_FOUND/EXPIRED for a row (default: the model's own setting, else serve)
    SKEWLESS_PREDICT_TIMEOUT  seconds a request may take, queueing included (default 60, SageMaker's invocation
                              limit; 0 = none): past it 504, and the server goes on serving
    SKEWLESS_LOG_LEVEL        DEBUG | INFO (default) | WARNING | ERROR (environment only)
    SKEWLESS_PREDICTION_LOG_DIR   the prediction log's journal folder (see ``prediction_log``)
    SKEWLESS_MONITOR_SECONDS  how often the skew gauges are recomputed (default 60; 0 = off; see ``monitor``)
    SKEWLESS_MONITOR_LOOKBACK_SECONDS   how much of the prediction log they cover (default 3600)
    OTEL_*                    OpenTelemetry tracing, off unless these turn it on (see ``tracing``)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from skewless.errors import ConfigError
from skewless.redact import redact

from . import settings, tracing
from .app import AppOptions, create_app
from .artifact import MANIFEST, ModelArtifact
from .model import ServedModel
from .model_registry import MODEL_REGISTRY_SIDECAR

SAGEMAKER_MODEL_DIR = "/opt/ml/model"


@dataclass
class ServeConfig:
    repo: str | None = None
    model_dir: str | None = None
    model: str | None = None
    version: int | None = None
    stage: str | None = None
    contract: str = "sagemaker"
    host: str = "127.0.0.1"  # loopback unless asked: the image sets SKEWLESS_HOST=0.0.0.0
    port: int | None = None
    token: str | None = None
    max_batch_rows: int = 256
    max_queue: int = 1024
    limit_concurrency: int = 4096  # connections; beyond it uvicorn answers 503 at once
    log_flush_seconds: float = 1.0
    predict_timeout: float | None = 60.0
    max_body_bytes: int = 6 * 1024 * 1024
    missing_features: str | None = None  # serve | flag | reject; None: the model's own (its manifest)
    log_level: str = "INFO"
    monitor_seconds: float = 60.0
    monitor_lookback: float = 3600.0
    audit_seconds: float = 0.0
    audit_lookback: float = 3600.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "ServeConfig":
        """The environment's settings (all checked at once: ``settings.read``), then ``overrides`` (the CLI's
        options) where not None."""
        values = settings.read(overrides=overrides)
        cfg = cls()
        for name, value in values.items():
            if name == "service":
                cfg.extra["service"] = value
            elif name not in ("sagemaker_port", "skewless_port"):  # read by resolved_port, once contracts are known
                setattr(cfg, name, value)
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        cfg.predict_timeout = cfg.predict_timeout or None  # 0 turns it off, from the environment or an override
        cfg.contracts()  # an override's contract is checked at startup too
        return cfg

    def contracts(self) -> tuple[str, ...]:
        try:
            return settings.parse_contracts(self.contract)
        except ValueError as exc:
            raise ConfigError(f"SKEWLESS_CONTRACT (or --contract) {self.contract!r}: expected {exc}") from None

    def resolved_port(self) -> int:
        """The port given, else the environment's: SAGEMAKER_BIND_TO_PORT (default 8080) when SageMaker's contract
        is served, else SKEWLESS_PORT (default 8000)."""
        if self.port is not None:
            return self.port
        ports = settings.read({k: v for k, v in os.environ.items() if k in ("SAGEMAKER_BIND_TO_PORT", "SKEWLESS_PORT")})
        if "sagemaker" in self.contracts():
            return ports.get("sagemaker_port", 8080)
        return ports.get("skewless_port", 8000)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log collectors (CloudWatch, SLS) index without parsing rules."""

    _SKIP = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        doc.update({k: v for k, v in vars(record).items() if k not in self._SKIP})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, default=str))  # a store URL in a message or traceback: no credentials


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("skewless.serving", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False


def build(cfg: ServeConfig):
    """(FeatureStore, ServedModel, Starlette app) for ``cfg``; nothing is listening yet."""
    from skewless import FeatureStore

    model_dir = cfg.model_dir
    if model_dir is None and not cfg.model and (Path(SAGEMAKER_MODEL_DIR) / MANIFEST).exists():
        model_dir = SAGEMAKER_MODEL_DIR
    repo = cfg.repo
    if repo is None:
        repo = str(Path(model_dir) / "repo") if model_dir and (Path(model_dir) / "repo").is_dir() else "."
    store = FeatureStore(repo)
    version = 0
    if cfg.model:
        from .model_registry import ModelRegistry

        try:
            artifact = ModelRegistry(store).download(cfg.model, cfg.version, stage=cfg.stage, dest=model_dir)
        except OSError as exc:  # e.g. a platform's read-only model mount given as the download folder
            raise ConfigError(f"cannot write registered model {cfg.model!r} into {model_dir or 'a temporary folder'}"
                              f": {exc.strerror or exc}; give a writable SKEWLESS_MODEL_DIR, or none") from exc
        version = json.loads((artifact.path / MODEL_REGISTRY_SIDECAR).read_text())["version"]
    elif model_dir:
        artifact = ModelArtifact(model_dir)
        sidecar = Path(model_dir) / MODEL_REGISTRY_SIDECAR
        if sidecar.exists():
            version = json.loads(sidecar.read_text())["version"]
    else:
        raise ConfigError(f"no model to serve: give a model folder (SKEWLESS_MODEL_DIR, default "
                          f"{SAGEMAKER_MODEL_DIR}) or a registered model (SKEWLESS_MODEL)")
    model = ServedModel(artifact, store, version=version, missing_features=cfg.missing_features,
                        log_writer_options={"flush_seconds": cfg.log_flush_seconds})
    app = create_app(model, AppOptions(contracts=cfg.contracts(), token=cfg.token, max_batch_rows=cfg.max_batch_rows,
                                       max_queue=cfg.max_queue, predict_timeout=cfg.predict_timeout,
                                       max_body_bytes=cfg.max_body_bytes, monitor_seconds=cfg.monitor_seconds,
                                       monitor_lookback=cfg.monitor_lookback, audit_seconds=cfg.audit_seconds,
                                       audit_lookback=cfg.audit_lookback,
                                       tracing=tracing.from_env(model.name, model.version), **cfg.extra))
    return store, model, app


def uvicorn_config(app, cfg: ServeConfig):
    import uvicorn

    from .http_protocol import protocol_class

    # Our own JSON logs; uvicorn's access log costs a formatted line per request on the hot path. One socket write
    # per answer (http_protocol) when httptools is there, as uvicorn's "auto" would pick it.
    return uvicorn.Config(app, host=cfg.host, port=cfg.resolved_port(), log_config=None, access_log=False,
                          limit_concurrency=cfg.limit_concurrency, timeout_graceful_shutdown=30,
                          lifespan="on", http=protocol_class() or "auto")


def run(cfg: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT; then answer what is queued and flush the prediction log."""
    import uvicorn

    # One OpenMP thread unless the operator says otherwise (before the model's libraries load): a request is a few
    # rows, and an OpenMP team spins after every parallel region, fighting the event loop for the cores (with
    # HistGradientBoosting on 2 cores it halved p50 and doubled req/s: bench/results/figures_in_code.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The GIL hand-off interval 0.5 ms instead of CPython's 5 ms: the prediction log's writer thread (rows to Arrow,
    # Parquet, the Delta commit) runs Python for stretches, and a request arriving then waited up to a whole interval
    # for the event loop to get the GIL back. That wait was the p99 at 1 connection (logreg1 + Redis + log: 5.3-6.1
    # ms at 5 ms, 2.6-3.0 ms at 0.5 ms; req/s at 16 connections the same; bench/results/serving_i14_final2.md).
    sys.setswitchinterval(0.0005)
    configure_logging(cfg.log_level)
    _, model, app = build(cfg)
    logging.getLogger("skewless.serving").info(
        "starting", extra={"model": model.name, "version": model.version, "contracts": cfg.contracts(),
                           "port": cfg.resolved_port()})
    uvicorn.Server(uvicorn_config(app, cfg)).run()

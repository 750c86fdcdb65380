"""The model server's settings from the environment, checked in one place (serving/settings.py) at startup: each
bad value stops the server with a ConfigError naming the variable, the value and what it accepts, all bad ones at
once. On the code before issue 14, ``SKEWLESS_PREDICT_TIMEOUT=abc`` died with a bare ValueError traceback,
``SKEWLESS_LOG_FLUSH_SECONDS=-1`` or ``SAGEMAKER_BIND_TO_PORT=http`` were taken (the port failing only when binding),
``SKEWLESS_MISSING_FEATURES`` was checked only once the model was built, and an empty token served without one."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import skewless as sk
from skewless.serving import settings
from skewless.serving.app import CONTRACTS
from skewless.serving.server import ServeConfig


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name in settings.PARSERS:
            monkeypatch.delenv(name)
    return monkeypatch


BAD = [
    ("SKEWLESS_MODEL_VERSION", "latest", "an integer >= 1"),
    ("SKEWLESS_MODEL_VERSION", "0", "an integer >= 1"),
    ("SKEWLESS_CONTRACT", "kserve", "a comma-separated list of sagemaker, eas, v2, or both"),
    ("SKEWLESS_CONTRACT", "sagemaker,,eas", "a comma-separated list of sagemaker, eas, v2, or both"),
    ("SAGEMAKER_BIND_TO_PORT", "http", "an integer from 1 to 65535"),
    ("SKEWLESS_PORT", "70000", "an integer from 1 to 65535"),
    ("SKEWLESS_SERVICE_NAME", "credit/v2", "an EAS service name: letters, digits, _ . - (one path segment)"),
    ("SKEWLESS_HOST", "0.0.0.0 8080", "an address to listen on"),
    ("SKEWLESS_MAX_BODY_BYTES", "6MB", "an integer >= 1"),
    ("SKEWLESS_MAX_BODY_BYTES", "-5", "an integer >= 1"),
    ("SKEWLESS_LOG_FLUSH_SECONDS", "0", "a number of seconds > 0"),
    ("SKEWLESS_LOG_FLUSH_SECONDS", "soon", "a number of seconds > 0"),
    ("SKEWLESS_MISSING_FEATURES", "ignore", "serve | flag | reject"),
    ("SKEWLESS_PREDICT_TIMEOUT", "abc", "a number of seconds >= 0 (0: no limit)"),
    ("SKEWLESS_PREDICT_TIMEOUT", "-1", "a number of seconds >= 0 (0: no limit)"),
    ("SKEWLESS_PREDICT_TIMEOUT", "inf", "a number of seconds >= 0 (0: no limit)"),
    ("SKEWLESS_LOG_LEVEL", "verbose", "DEBUG | INFO | WARNING | ERROR"),
    ("SKEWLESS_MODEL", "my model", "a registered model's name (no spaces)"),
    ("SKEWLESS_MONITOR_SECONDS", "-1", "a number of seconds >= 0 (0: no limit)"),
    ("SKEWLESS_MONITOR_LOOKBACK_SECONDS", "0", "a number of seconds > 0"),
    ("SKEWLESS_MONITOR_LOOKBACK_SECONDS", "1h", "a number of seconds > 0"),
]


@pytest.mark.parametrize("name, value, accepts", BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_each_bad_value_is_named_with_what_it_accepts(env, name, value, accepts):
    env.setenv(name, value)
    if name in ("SKEWLESS_MODEL_VERSION",):
        env.setenv("SKEWLESS_MODEL", "credit")
    with pytest.raises(sk.ConfigError) as err:
        ServeConfig.from_env()
    assert f"{name}={value!r}: expected {accepts}" in str(err.value)


def test_the_token_if_set_must_not_be_empty_and_is_never_echoed(env):
    env.setenv("SKEWLESS_SERVING_TOKEN", "")
    with pytest.raises(sk.ConfigError, match=re.escape("SKEWLESS_SERVING_TOKEN='': expected a non-empty token")):
        ServeConfig.from_env()
    env.setenv("SKEWLESS_SERVING_TOKEN", "s3cret value")
    env.setenv("SKEWLESS_PORT", "x")
    with pytest.raises(sk.ConfigError) as err:
        ServeConfig.from_env()
    assert "s3cret" not in str(err.value)
    env.delenv("SKEWLESS_PORT")
    assert ServeConfig.from_env().token == "s3cret value"


def test_every_bad_variable_is_reported_at_once_and_combinations_are_checked(env):
    env.setenv("SKEWLESS_PREDICT_TIMEOUT", "abc")
    env.setenv("SKEWLESS_MAX_BODY_BYTES", "6MB")
    env.setenv("SKEWLESS_MODEL_STAGE", "production")  # without SKEWLESS_MODEL it chooses nothing
    with pytest.raises(sk.ConfigError) as err:
        ServeConfig.from_env()
    lines = str(err.value).splitlines()
    assert lines[0] == "bad serving settings in the environment:"
    assert [line.split("=")[0].split()[0].strip() for line in lines[1:]] == [
        "SKEWLESS_MAX_BODY_BYTES", "SKEWLESS_PREDICT_TIMEOUT", "SKEWLESS_MODEL_STAGE"]
    env.delenv("SKEWLESS_PREDICT_TIMEOUT")
    env.delenv("SKEWLESS_MAX_BODY_BYTES")
    env.setenv("SKEWLESS_MODEL", "credit")
    env.setenv("SKEWLESS_MODEL_VERSION", "3")
    with pytest.raises(sk.ConfigError, match=re.escape("a version (SKEWLESS_MODEL_VERSION or --version) and a stage")):
        ServeConfig.from_env()
    # The CLI's options count too: `--model credit` makes the environment's version choose from it...
    env.delenv("SKEWLESS_MODEL")
    env.delenv("SKEWLESS_MODEL_STAGE")
    assert (ServeConfig.from_env(model="credit").model, ServeConfig.from_env(model="credit").version) == ("credit", 3)
    # ...and a `--stage` beside the environment's version is one choice too many.
    with pytest.raises(sk.ConfigError, match="are both given"):
        ServeConfig.from_env(model="credit", stage="production")


def test_good_values_are_parsed(env):
    env.setenv("SKEWLESS_CONTRACT", " EAS, sagemaker ,eas")
    env.setenv("SKEWLESS_PORT", "8001")
    env.setenv("SAGEMAKER_BIND_TO_PORT", "9001")
    env.setenv("SKEWLESS_MAX_BODY_BYTES", "1048576")
    env.setenv("SKEWLESS_LOG_FLUSH_SECONDS", "0.25")
    env.setenv("SKEWLESS_MISSING_FEATURES", "Flag")
    env.setenv("SKEWLESS_PREDICT_TIMEOUT", "0")
    env.setenv("SKEWLESS_LOG_LEVEL", "debug")
    env.setenv("SKEWLESS_SERVICE_NAME", "credit_v2")
    env.setenv("SKEWLESS_REPO", "")  # empty: unset (a template's `-e SKEWLESS_REPO=`)
    env.setenv("SKEWLESS_MODEL", "credit")
    env.setenv("SKEWLESS_MODEL_STAGE", "production")
    env.setenv("SKEWLESS_MONITOR_SECONDS", "0")
    env.setenv("SKEWLESS_MONITOR_LOOKBACK_SECONDS", "600")
    cfg = ServeConfig.from_env()
    assert (cfg.monitor_seconds, cfg.monitor_lookback) == (0.0, 600.0)
    assert cfg.contracts() == ("eas", "sagemaker") and cfg.resolved_port() == 9001
    assert (cfg.max_body_bytes, cfg.log_flush_seconds, cfg.missing_features, cfg.predict_timeout, cfg.log_level) == (
        1048576, 0.25, "flag", None, "DEBUG")
    assert (cfg.repo, cfg.model, cfg.stage, cfg.extra) == (None, "credit", "production", {"service": "credit_v2"})
    env.setenv("SKEWLESS_CONTRACT", "eas")
    assert ServeConfig.from_env().resolved_port() == 8001
    env.setenv("SKEWLESS_CONTRACT", "both")
    assert ServeConfig.from_env().contracts() == ("sagemaker", "eas")


def test_contracts_are_parsed_against_the_apps_list(env):
    """Every contract app.CONTRACTS serves is accepted alone and in any list; `both` is SageMaker and EAS."""
    for name in CONTRACTS:
        assert settings.parse_contracts(name) == (name,)
    assert settings.parse_contracts(",".join(reversed(CONTRACTS))) == tuple(reversed(CONTRACTS))
    # A CLI override (`--contract`) is checked at startup too, naming the variable and the option.
    with pytest.raises(sk.ConfigError, match=re.escape("SKEWLESS_CONTRACT (or --contract) 'grpc': expected")):
        ServeConfig.from_env(contract="grpc")


def test_the_entry_point_stops_before_listening_and_names_the_variable(env, tmp_path):
    """The image's entry point (`python -m skewless.serving serve`): exit 1 with the one-line error, no traceback."""
    run_env = {k: v for k, v in os.environ.items() if k not in settings.PARSERS}
    run_env.update(SKEWLESS_PREDICT_TIMEOUT="abc", SKEWLESS_LOG_FLUSH_SECONDS="-1", SKEWLESS_REPO=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "skewless.serving", "serve"], env=run_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "SKEWLESS_PREDICT_TIMEOUT='abc': expected a number of seconds >= 0" in out.stderr
    assert "SKEWLESS_LOG_FLUSH_SECONDS='-1': expected a number of seconds > 0" in out.stderr
    assert "Traceback" not in out.stderr

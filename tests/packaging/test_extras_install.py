"""Each cloud extra installs alone and opens every scheme it claims (issue 13): the wheel is built once from this
tree, then ``skewless[redis]``, ``skewless[aws]`` and ``skewless[alibaba]`` each go into a fresh venv of their own
(from that wheel and PyPI's packages pinned by constraints.txt; pip's cache makes it quick), concurrently. In each
venv a script opens the extra's schemes through the public SDK (``FeatureStore`` on a skewless.yaml, so the plugin
table picks the adapters) against the local cloud's real services, and checks what the extra must not bring.

- redis:   ``redis://`` (ingest pushes online, ``get_online_features`` reads it back); ``rediss://`` builds a TLS
  store. The cloud schemes name the extra that provides them.
- aws:     registry and offline store on ``s3://`` (LocalStack), online ``redis://``: one repo, apply + ingest +
  online read + a point-in-time training set; ``rediss://``. No oss2 / pyodps; ``oss://`` names ``alibaba``.
- alibaba: registry and offline store on ``oss://`` (the OSS shim) with online ``tair://`` (the Tair emulator,
  TairHash); the offline store and engine on ``maxcompute://`` (the MaxCompute emulator). No boto3; ``s3://``
  names ``aws``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.paths import ROOT

EXTRAS = ("redis", "aws", "alibaba")
BUCKET = "skewless-extras"

# Run inside each venv: argv[1] is a JSON {"extra", "work", "redis", "s3", "oss", "tair", "maxcompute"}.
PROBE = textwrap.dedent('''
    import importlib.util, json, sys
    from datetime import datetime, timezone
    from pathlib import Path

    import pandas as pd
    import yaml

    import skewless as sk
    from skewless import plugins
    from skewless.errors import ConfigError

    cfg = json.loads(sys.argv[1])
    extra, work = cfg["extra"], Path(cfg["work"])
    opened = []
    T0 = pd.Timestamp("2024-01-01", tz="UTC")


    def round_trip(name, doc, *, pit=True):
        """apply + ingest (which pushes online) + an online read + a point-in-time training set."""
        path = work / name
        path.mkdir(parents=True)
        (path / "skewless.yaml").write_text(yaml.safe_dump({"project": "extras", **doc}))
        store = sk.FeatureStore(path)
        ent = sk.Entity("ent", join_keys=["k"])
        view = sk.FeatureView("v", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])
        store.apply([ent, view])
        store.ingest("v", pd.DataFrame({"k": [1, 2], "event_timestamp": [T0, T0], "x": [1.5, 2.5]}))
        got = store.get_online_features(["v:x"], [{"k": 2}, {"k": 1}, {"k": 3}])
        assert got.values["x"] == [2.5, 1.5, None], got.values
        if pit:
            ents = pd.DataFrame({"k": [1, 2], "event_timestamp": [T0 + pd.Timedelta("1h")] * 2})
            table = store.get_historical_features(ents, ["v:x"]).to_arrow()
            assert sorted(table.column("x").to_pylist()) == [1.5, 2.5], table
        opened.append(name)
        return store


    def hint(role, url):
        """The install hint for a scheme this venv lacks."""
        try:
            plugins.load(role, url)
        except ConfigError as exc:
            return str(exc)
        raise AssertionError(f"{url} opened in the {extra} venv")


    prefix = cfg["prefix"]
    if extra in ("redis", "aws"):
        online = {"url": cfg["redis"], "options": {"key_prefix": prefix}}
        if extra == "redis":
            round_trip("redis", {"registry": "data/registry", "offline": "data/offline", "online": online})
        else:
            s3 = {"endpoint_url": cfg["s3"], "region": "us-east-1", "access_key_id": "test",
                  "secret_access_key": "test"}
            base = f"s3://{cfg['bucket']}/{prefix}"
            store = round_trip("s3+redis", {"registry": {"url": f"{base}/registry", "options": s3},
                                            "offline": {"url": f"{base}/offline", "engine": "duckdb",
                                                        "storage_options": s3}, "online": online})
            assert type(store.online).__module__ == "skewless.adapters.redis.store"
        import redis
        tls = plugins.load("online", "rediss://127.0.0.1:1/0")("rediss://127.0.0.1:1/0", None, {})
        assert tls._pool.connection_class is redis.SSLConnection  # TLS; building it never connects
        opened.append("rediss")
    if extra == "alibaba":
        oss = {"endpoint": cfg["oss"], "region": "cn-hangzhou", "access_key_id": "test", "access_key_secret": "test"}
        base = f"oss://{cfg['bucket']}/{prefix}"
        store = round_trip("oss+tair", {"registry": {"url": f"{base}/registry", "options": oss},
                                        "offline": {"url": f"{base}/offline", "engine": "duckdb",
                                                    "storage_options": oss},
                                        "online": {"url": cfg["tair"], "options": {"key_prefix": prefix}}})
        assert store.online.uses_tairhash  # the emulator's TairHash, not the plain Redis layout
        mc = cfg["maxcompute"]
        opts = {k: mc[k] for k in ("endpoint", "tunnel_endpoint", "access_id", "secret_access_key")}
        round_trip("maxcompute", {"registry": "data/registry", "online": "sqlite:///data/online.db",
                                  "offline": {"url": f"maxcompute://{mc['project']}", "engine": "maxcompute",
                                              "storage_options": {**opts, "table_prefix": f"t{prefix}_"}}})

    installed = {m: importlib.util.find_spec(m) is not None for m in ("boto3", "oss2", "odps", "redis", "hiredis")}
    hints = {}
    if extra != "aws":
        hints["s3"] = hint("offline", "s3://b/p")
    if extra != "alibaba":
        hints["oss"] = hint("offline", "oss://b/p")
        hints["maxcompute"] = hint("engine", "maxcompute")
    print(json.dumps({"opened": opened, "installed": installed, "hints": hints}))
''')


def _pip_install(py: Path, *args: str) -> None:
    """This interpreter's pip installing into ``py``'s venv (``--python``: no pip of its own to set up there);
    ``--no-compile``: the probe imports a few modules, byte-compiling every file of pandas/pyarrow costs more."""
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "--disable-pip-version-check", "-q",
                           "install", "--no-compile", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True,
                   capture_output=True, text=True, timeout=600)
    (whl,) = out.glob("skewless-*.whl")
    return whl


@pytest.fixture(scope="module")
def venvs(wheel, tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """extra -> (its venv's python, seconds its install took); the three installed concurrently."""
    base = tmp_path_factory.mktemp("venvs")

    def make(extra: str) -> tuple[Path, float]:
        t = time.monotonic()
        venv.EnvBuilder(with_pip=False).create(base / extra)
        py = base / extra / "bin" / "python"
        _pip_install(py, "-c", str(ROOT / "constraints.txt"), f"{wheel}[{extra}]")
        return py, time.monotonic() - t
    with ThreadPoolExecutor(len(EXTRAS)) as pool:
        return dict(zip(EXTRAS, pool.map(make, EXTRAS)))


@pytest.fixture(scope="module")
def services(redis_url, tair_url, localstack_s3, oss_endpoint, moto_endpoint, maxcompute_endpoint, local_cloud):
    local_cloud.ensure_bucket(BUCKET, localstack_s3)
    local_cloud.ensure_bucket(BUCKET, moto_endpoint)  # the OSS shim's buckets are moto's
    return {"redis": redis_url, "tair": tair_url, "s3": localstack_s3, "oss": oss_endpoint,
            "maxcompute": maxcompute_endpoint, "bucket": BUCKET}


def _probe(py: Path, extra: str, services: dict, work: Path) -> dict:
    cfg = {**services, "extra": extra, "work": str(work), "prefix": uuid.uuid4().hex[:12]}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(py), "-c", PROBE, json.dumps(cfg)], capture_output=True, text=True, timeout=300,
                          cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_redis_extra_opens_redis_alone(venvs, services, tmp_path):
    got = _probe(venvs["redis"][0], "redis", services, tmp_path)
    assert got["opened"] == ["redis", "rediss"]
    assert got["installed"] == {"boto3": False, "oss2": False, "odps": False, "redis": True, "hiredis": True}
    assert 'pip install "skewless[aws]"' in got["hints"]["s3"]
    assert 'pip install "skewless[alibaba]"' in got["hints"]["oss"]
    assert 'pip install "skewless[alibaba]"' in got["hints"]["maxcompute"]


def test_the_aws_extra_opens_s3_and_redis_without_alibaba(venvs, services, tmp_path):
    got = _probe(venvs["aws"][0], "aws", services, tmp_path)
    assert got["opened"] == ["s3+redis", "rediss"]
    assert got["installed"] == {"boto3": True, "oss2": False, "odps": False, "redis": True, "hiredis": True}
    assert 'pip install "skewless[alibaba]"' in got["hints"]["oss"]
    assert 'pip install "skewless[alibaba]"' in got["hints"]["maxcompute"]


def test_the_alibaba_extra_opens_oss_tair_and_maxcompute_without_aws(venvs, services, tmp_path):
    got = _probe(venvs["alibaba"][0], "alibaba", services, tmp_path)
    assert got["opened"] == ["oss+tair", "maxcompute"]
    assert got["installed"] == {"boto3": False, "oss2": True, "odps": True, "redis": True, "hiredis": True}
    assert 'pip install "skewless[aws]"' in got["hints"]["s3"]


def test_installs_take_seconds(venvs):
    """pip's cache makes each fresh venv quick (printed with -s; bounded so a cache miss shows)."""
    for extra, (_, seconds) in venvs.items():
        print(f"skewless[{extra}]: fresh venv + install {seconds:.1f} s")
        assert seconds < 240, (extra, seconds)

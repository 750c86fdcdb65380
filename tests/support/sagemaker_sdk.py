"""The official SageMaker Python SDK (``sagemaker`` 3.x), run as a subprocess from its own venv.

``sagemaker-core`` pins ``protobuf<7`` (and ``mock<5``, ``importlib-metadata<7``), which the project's venv cannot
hold, so the venv is built from the package index on first use in ``$SKEWLESS_CACHE``
(``skewless.process.cached_venv``, as ``tests.support.eas_client`` does for ``eas_prediction``).

SDK 3 has no ``Predictor`` class any more (its ``ModelBuilder`` says so: "Use endpoint.invoke()"): the predictor is
``sagemaker.core.resources.Endpoint`` with a ``serializer`` and ``deserializer`` from ``sagemaker.core.serializers``
/ ``.deserializers``, calling ``sagemaker-runtime`` InvokeEndpoint. It is pointed at the local SageMaker by the
standard per-service endpoint variables of botocore (``AWS_ENDPOINT_URL_SAGEMAKER``,
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``), as a user would point it at any SageMaker-compatible endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from skewless.process import cached_venv

# The SDK 3 package that holds Endpoint, the serializers and deserializers, at the version ``sagemaker==3.27.0``
# pins: the ``sagemaker`` meta-package adds training, serving and MLflow packages (1 GB, ~7 min to build the venv on
# a fresh machine) that these calls never import; sagemaker-core alone builds in ~30 s.
PIN = "sagemaker-core==2.27.0"

# Calls as a user writes them: Endpoint.get, then serializer/deserializer and invoke(content_type=serializer's,
# accept=deserializer's or given). Prints one result per call: the deserialized body, or the ClientError's parts.
_SCRIPT = r"""
import json, sys
import boto3, botocore.exceptions
from sagemaker.core.resources import Endpoint
from sagemaker.core import serializers as S, deserializers as D
a = json.loads(sys.argv[1])
SER = {"json": S.JSONSerializer, "csv": S.CSVSerializer, "jsonlines": S.JSONLinesSerializer,
       "npy": S.NumpySerializer}
DES = {"json": D.JSONDeserializer, "csv": D.CSVDeserializer, "jsonlines": D.JSONLinesDeserializer,
       "string": D.StringDeserializer}
session = boto3.Session(region_name="us-east-1")
endpoint = Endpoint.get(endpoint_name=a["endpoint"], session=session, region="us-east-1")
out = {"status": endpoint.endpoint_status, "results": []}
for call in a["calls"]:
    endpoint.serializer, endpoint.deserializer = SER[call["serializer"]](), DES[call["deserializer"]]()
    accept = call.get("accept") or endpoint.deserializer.ACCEPT[0]
    try:
        r = endpoint.invoke(body=call["data"], content_type=endpoint.serializer.CONTENT_TYPE, accept=accept)
        out["results"].append({"ok": True, "body": r.body, "content_type": r.content_type})
    except botocore.exceptions.ClientError as exc:
        out["results"].append({"ok": False, "code": exc.response["Error"].get("Code"),
                               "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
                               "original_status": exc.response.get("OriginalStatusCode"),
                               "original_message": exc.response.get("OriginalMessage")})
print(json.dumps(out))
"""


def ensure_venv() -> Path:
    """The SDK venv's python, built on first use."""
    return cached_venv("sagemaker-core-2.27.0", sys.executable, [PIN])


def sdk_invoke(python: Path, endpoint_url: str, endpoint: str, calls: list[dict]) -> dict:
    """Run ``calls`` ({serializer, deserializer, data, accept?}) against ``endpoint`` through the SDK; returns
    ``{"status": <the endpoint's status as Endpoint.get read it>, "results": [...]}``."""
    env = {**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint_url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url,
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_MAX_ATTEMPTS": "1"}
    args = json.dumps({"endpoint": endpoint, "calls": calls})
    proc = subprocess.run([str(python), "-c", _SCRIPT, args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

"""Alibaba's official PAI-EAS client (``eas_prediction``), run as a subprocess from its own venv.

It pins ``protobuf<=3.20.3``, which the project's venv cannot hold, so the venv is built from the package index on
first use in ``$SKEWLESS_CACHE`` (``skewless.process.cached_venv``, like LocalStack's), under a lock so parallel
test processes build it once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from skewless.process import cached_venv

PIN = "eas-prediction==0.36"

# One prediction, as a user writes it: PredictClient + set_token + StringRequest; prints the answer or the error.
_SCRIPT = r"""
import json, sys
from eas_prediction import PredictClient, StringRequest
from eas_prediction.exception import PredictException
a = json.loads(sys.argv[1])
client = PredictClient(a["endpoint"], a["service"], custom_url=a.get("custom_url", ""))
client.set_token(a["token"])
client.set_retry_count(1)  # 0 would send nothing; 1 sends once
if a.get("content_type"):
    client.set_content_type(a["content_type"])
client.init()
try:
    out = {"status": 200, "body": client.predict(StringRequest(a["body"])).response_data.decode()}
except PredictException as exc:
    out = {"status": exc.code, "body": exc.message.decode() if isinstance(exc.message, bytes) else exc.message}
print(json.dumps(out))
"""


def ensure_venv() -> Path:
    """The client venv's python, built on first use."""
    return cached_venv("eas-prediction-0.36", sys.executable, [PIN])


def eas_predict(python: Path, endpoint: str, service: str, token: str, body: str, *, custom_url: str = "",
                content_type: str = "") -> tuple[int, str]:
    """(status, body) of one ``PredictClient.predict`` (a PredictException gives its code and message)."""
    args = dict(endpoint=endpoint, service=service, token=token, body=body, custom_url=custom_url,
                content_type=content_type)
    proc = subprocess.run([str(python), "-c", _SCRIPT, json.dumps(args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["status"], out["body"]

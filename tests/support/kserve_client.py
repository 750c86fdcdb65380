"""KServe's official v2 REST client (``kserve.InferenceRESTClient``), run as a subprocess from its own venv.

kserve 0.21.0 pins ``psutil<6``, which the project's venv (psutil 7) cannot hold, so the venv is built from the
package index on first use in ``$SKEWLESS_CACHE`` (``skewless.process.cached_venv``, as tests/support/eas_client.py
does for eas_prediction), under a lock so parallel test processes build it once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from skewless.process import cached_venv

PIN = "kserve==0.21.0"

# What a user writes: RESTConfig(protocol="v2") + InferenceRESTClient; the health checks, then each request of
# the list (InferInput tensors, JSON or binary), printing the outputs or the error's status and body.
_SCRIPT = r"""
import asyncio, json, sys
import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

a = json.loads(sys.argv[1])


async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    headers = {"Authorization": a["token"]} if a.get("token") else None
    out = {"live": await client.is_server_live(a["url"]), "ready": await client.is_server_ready(a["url"]),
           "model_ready": await client.is_model_ready(a["url"], a["model"], headers=headers), "results": []}
    for req in a["requests"]:
        inputs = []
        for t in req["inputs"]:
            tensor = InferInput(t["name"], [len(t["data"])], t["datatype"])
            data = np.array(t["data"], dtype=object if t["datatype"] == "BYTES" else None)
            tensor.set_data_from_numpy(data, binary_data=t.get("binary", False))
            inputs.append(tensor)
        outputs = [RequestedOutput(n) for n in req.get("outputs", [])] or None
        request = InferRequest(a["model"], inputs, request_id=req.get("id"), request_outputs=outputs)
        try:
            # A copy per call: the client adds Inference-Header-Content-Length for binary inputs to the dict given,
            # which a later JSON request would carry (the server then reads a JSON header cut short: 400).
            res = await client.infer(a["url"], request, model_name=a["model"], headers=dict(headers or {}))
        except httpx.HTTPStatusError as exc:
            out["results"].append({"status": exc.response.status_code, "body": exc.response.json()})
            continue
        out["results"].append({"status": 200, "id": res.id, "model_name": res.model_name,
                               "outputs": {o.name: o.as_numpy().tolist() for o in res.outputs}})
    await client.close()
    print(json.dumps(out, default=lambda v: v.decode() if isinstance(v, bytes) else str(v)))


asyncio.run(main())
"""


def ensure_venv() -> Path:
    """The client venv's python, built on first use."""
    return cached_venv("kserve-0.21.0", sys.executable, [PIN])


def kserve_session(python: Path, url: str, model: str, requests: list[dict], token: str = "") -> dict:
    """The health checks and ``requests`` (each ``{"inputs": [{name, datatype, data, binary?}], "outputs"?,
    "id"?}``) through ``InferenceRESTClient``: ``{"live", "ready", "model_ready", "results": [...]}``, each result
    ``{"status": 200, "id", "model_name", "outputs": {name: values}}`` or ``{"status", "body"}``."""
    args = dict(url=url, model=model, requests=requests, token=token)
    proc = subprocess.run([str(python), "-c", _SCRIPT, json.dumps(args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

"""A local SageMaker for deploy tests: moto's control plane plus what moto lacks, and real inference.

    python -m skewless.localcloud.sagemaker_runtime --port P --state DIR --moto http://127.0.0.1:5055 \
        [--runtime podman --registry-auth AUTH.json]

Point both boto3 clients at it (``boto3.client("sagemaker", endpoint_url=...)`` and ``"sagemaker-runtime"``).
It implements exactly this API subset; anything else answers **501** ``NotImplementedError`` naming the operation:

    forwarded to moto unchanged (moto keeps models and endpoint configs):
        CreateModel, DescribeModel, DeleteModel, CreateEndpointConfig, DescribeEndpointConfig, DeleteEndpointConfig,
        ListEndpointConfigs, AddTags, ListTags
    served here (moto's UpdateEndpoint is a 500 and it runs no containers, so endpoints live here):
        CreateEndpoint (also registered in moto, which validates the config), DescribeEndpoint, ListEndpoints,
        UpdateEndpoint, UpdateEndpointWeightsAndCapacities, DeleteEndpoint
    sagemaker-runtime:
        InvokeEndpoint  POST /endpoints/<name>/invocations  (X-Amzn-SageMaker-Target-Variant honoured; Content-Type
                        and Accept passed on; the answer carries X-Amzn-Invoked-Production-Variant and the
                        container's Content-Type; a container error is a 424 ModelError)
    GET /health: the emulator's own liveness

Create/UpdateEndpoint return at once with status Creating/Updating; a background thread fetches each variant's
``ModelDataUrl`` (model.tar.gz) from moto's S3, starts the model server through a deploy runtime (``process`` by
default: ``python -m skewless.serving serve`` with the model's Environment, the image URI recorded only;
``podman``: the container ``Image``, pulled with ``--registry-auth`` when absent, model mounted at /opt/ml/model) and
then reports InService (or Failed with the server's log tail). An update starts the new variants before stopping
the old ones, and a failed update keeps serving the previous config, as SageMaker does.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

from . import emulator_http
from .emulator_http import Reply, arguments, forward, json_reply, serve

MOTO_OPS = {"CreateModel", "DescribeModel", "DeleteModel", "CreateEndpointConfig", "DescribeEndpointConfig",
            "DeleteEndpointConfig", "ListEndpointConfigs", "AddTags", "ListTags"}
OWN_OPS = {"CreateEndpoint", "DescribeEndpoint", "ListEndpoints", "UpdateEndpoint",
           "UpdateEndpointWeightsAndCapacities", "DeleteEndpoint"}
ACCOUNT, REGION = "123456789012", "us-east-1"


def _error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"__type": code, "message": message}, {"x-amzn-ErrorType": code})


class SageMakerEmulator:
    def __init__(self, moto: str, state: Path, runtime: str = "process", registry_auth: Path | None = None):
        host, _, port = moto.split("://", 1)[-1].rstrip("/").partition(":")
        self.moto_url, self.moto = moto.rstrip("/"), (host, int(port or 80))
        self.state = state
        self.runtime_name, self.registry_auth = runtime, registry_auth
        self.runtime = emulator_http.runtime(runtime, state)  # stops any backend: handles carry their names
        self.endpoints: dict[str, dict] = {}
        self.lock = threading.RLock()

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "GET" and path == "/health":
            return json_reply(200, {"status": "ok", "endpoints": sorted(self.endpoints)})
        if method == "POST" and path.startswith("/endpoints/") and path.endswith("/invocations"):
            return self.invoke(path.split("/")[2], headers, body)
        target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
        op = target.removeprefix("SageMaker.")
        if op in MOTO_OPS:
            return forward(*self.moto, method, path, headers, body)
        if op in OWN_OPS:
            return getattr(self, "op_" + op)(headers, json.loads(body or b"{}"))
        what = op or f"{method} {path}"
        return _error(501, "NotImplementedError", f"the local SageMaker emulator does not implement {what}; it "
                      f"implements {sorted(MOTO_OPS | OWN_OPS)} and InvokeEndpoint")

    def _moto(self, op: str, doc: dict, headers: dict[str, str]) -> tuple[int, dict]:
        hdrs = {**headers, "X-Amz-Target": f"SageMaker.{op}", "Content-Type": "application/x-amz-json-1.1"}
        status, _, data = forward(*self.moto, "POST", "/", hdrs, json.dumps(doc).encode())
        return status, json.loads(data or b"{}")

    def _config(self, name: str, headers) -> dict | None:
        status, cfg = self._moto("DescribeEndpointConfig", {"EndpointConfigName": name}, headers)
        return cfg if status == 200 else None

    # -- endpoints ----------------------------------------------------------------------------------------------
    def _describe(self, ep: dict) -> dict:
        out = {k: ep[k] for k in ("EndpointName", "EndpointArn", "EndpointConfigName", "EndpointStatus",
                                  "CreationTime", "LastModifiedTime")}
        out["ProductionVariants"] = [{"VariantName": n, "CurrentWeight": v["weight"], "DesiredWeight": v["weight"],
                                      "CurrentInstanceCount": 1, "DesiredInstanceCount": 1}
                                     for n, v in ep["variants"].items()]
        if ep.get("FailureReason"):
            out["FailureReason"] = ep["FailureReason"]
        return out

    def _get(self, name: str) -> dict | None:
        return self.endpoints.get(name)

    def op_CreateEndpoint(self, headers, req) -> Reply:
        name = req["EndpointName"]
        with self.lock:
            if name in self.endpoints:
                return _error(400, "ValidationException", f'Cannot create already existing endpoint "{name}".')
            status, doc = self._moto("CreateEndpoint", req, headers)  # moto validates and records it
            if status != 200:
                return json_reply(status, doc)
            now = time.time()
            self.endpoints[name] = {"EndpointName": name, "EndpointArn": doc["EndpointArn"], "CreationTime": now,
                                    "LastModifiedTime": now, "EndpointConfigName": req["EndpointConfigName"],
                                    "EndpointStatus": "Creating", "variants": {}}
        self._apply_async(name, req["EndpointConfigName"], headers)
        return json_reply(200, {"EndpointArn": doc["EndpointArn"]})

    def op_UpdateEndpoint(self, headers, req) -> Reply:
        name = req["EndpointName"]
        with self.lock:
            ep = self._get(name)
            if ep is None:
                return _error(400, "ValidationException", f'Could not find endpoint "{name}".')
            if ep["EndpointStatus"] not in ("InService", "Failed"):
                return _error(400, "ValidationException", f'Cannot update in-progress endpoint "{name}".')
            if self._config(req["EndpointConfigName"], headers) is None:
                return _error(400, "ValidationException",
                              f'Could not find endpoint configuration "{req["EndpointConfigName"]}".')
            ep["EndpointStatus"] = "Updating"
        self._apply_async(name, req["EndpointConfigName"], headers)
        return json_reply(200, {"EndpointArn": ep["EndpointArn"]})

    def op_DescribeEndpoint(self, headers, req) -> Reply:
        ep = self._get(req["EndpointName"])
        if ep is None:
            return _error(400, "ValidationException", f'Could not find endpoint "{req["EndpointName"]}".')
        return json_reply(200, self._describe(ep))

    def op_ListEndpoints(self, headers, req) -> Reply:
        return json_reply(200, {"Endpoints": [
            {k: ep[k] for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}
            for ep in self.endpoints.values()]})

    def op_UpdateEndpointWeightsAndCapacities(self, headers, req) -> Reply:
        with self.lock:
            ep = self._get(req["EndpointName"])
            if ep is None:
                return _error(400, "ValidationException", f'Could not find endpoint "{req["EndpointName"]}".')
            desired = {d["VariantName"]: d for d in req["DesiredWeightsAndCapacities"]}
            unknown = set(desired) - set(ep["variants"])
            if unknown:
                return _error(400, "ValidationException", f"The variant(s) {sorted(unknown)} are not present.")
            for n, d in desired.items():
                if "DesiredWeight" in d:
                    ep["variants"][n]["weight"] = float(d["DesiredWeight"])
            ep["LastModifiedTime"] = time.time()
        return json_reply(200, {"EndpointArn": ep["EndpointArn"]})

    def op_DeleteEndpoint(self, headers, req) -> Reply:
        with self.lock:
            ep = self.endpoints.pop(req["EndpointName"], None)
        if ep is None:
            return _error(400, "ValidationException", f'Could not find endpoint "{req["EndpointName"]}".')
        self._moto("DeleteEndpoint", req, headers)
        emulator_http.stop_all(self.runtime, [v["handle"] for v in ep["variants"].values()])
        return json_reply(200, {})

    # -- containers ---------------------------------------------------------------------------------------------
    def _apply_async(self, name: str, config_name: str, headers) -> None:
        threading.Thread(target=self._apply, args=(name, config_name, headers), daemon=True).start()

    def _apply(self, name: str, config_name: str, headers) -> None:
        """Bring the endpoint's backends to ``config_name``: start the new variants, then swap, then stop the old."""
        ep = self.endpoints[name]
        started = {}
        try:
            cfg = self._config(config_name, headers)
            if cfg is None:
                raise RuntimeError(f"endpoint configuration {config_name!r} not found")
            for pv in cfg["ProductionVariants"]:
                old = ep["variants"].get(pv["VariantName"])
                weight = float(pv.get("InitialVariantWeight", 1.0))
                if old and old["model"] == pv["ModelName"]:
                    started[pv["VariantName"]] = {**old, "weight": weight}
                else:
                    handle = self._start(name, pv["VariantName"], pv["ModelName"], headers)
                    started[pv["VariantName"]] = {"model": pv["ModelName"], "handle": handle, "weight": weight,
                                                  "new": True}
        except Exception as exc:  # noqa: BLE001 - reported through DescribeEndpoint, as SageMaker does
            for v in started.values():
                if v.pop("new", False):
                    self.runtime.stop(v["handle"])
            with self.lock:
                ep["FailureReason"] = f"{type(exc).__name__}: {exc}"
                ep["EndpointStatus"] = "InService" if ep["variants"] else "Failed"
            return
        with self.lock:
            old, ep["variants"] = ep["variants"], {n: {k: x for k, x in v.items() if k != "new"}
                                                   for n, v in started.items()}
            ep.update(EndpointConfigName=config_name, EndpointStatus="InService", LastModifiedTime=time.time())
            ep.pop("FailureReason", None)
        keep = {id(v["handle"]) for v in ep["variants"].values()}
        for v in old.values():
            if id(v["handle"]) not in keep:
                self.runtime.stop(v["handle"])

    def _start(self, endpoint: str, variant: str, model: str, headers) -> dict:
        import boto3

        from skewless.serving.artifact import ModelArtifact
        from skewless.serving.deploy.loopback import free_port

        status, doc = self._moto("DescribeModel", {"ModelName": model}, headers)
        if status != 200:
            raise RuntimeError(f"model {model!r}: {doc}")
        container = doc["PrimaryContainer"]
        bucket, _, key = container["ModelDataUrl"].removeprefix("s3://").partition("/")
        s3 = boto3.client("s3", endpoint_url=self.moto_url, region_name=REGION, aws_access_key_id="test",
                          aws_secret_access_key="test")
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        model_dir = self.state / "models" / endpoint / f"{variant}-{model}-{int(time.time() * 1000)}"
        ModelArtifact.from_tar(data, model_dir)  # SageMaker unpacks model.tar.gz into /opt/ml/model
        env = {**container.get("Environment", {}), "SKEWLESS_CONTRACT": "sagemaker"}
        rt = emulator_http.runtime(self.runtime_name, self.state, container["Image"], self.registry_auth)
        return rt.start(model_dir, env, free_port())

    def invoke(self, name: str, headers: dict[str, str], body: bytes) -> Reply:
        ep = self._get(name)
        if ep is None or not ep["variants"]:
            return _error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
        lower = {k.lower(): v for k, v in headers.items()}
        variants = dict(ep["variants"])
        chosen = lower.get("x-amzn-sagemaker-target-variant")
        if chosen and chosen not in variants:
            return _error(400, "ValidationError", f"Variant {chosen} not found for endpoint {name}.")
        if not chosen:
            live = {n: v["weight"] for n, v in variants.items() if v["weight"] > 0}
            if not live:
                return _error(400, "ValidationError", f"Endpoint {name} has no variant with traffic.")
            chosen = random.choices(list(live), list(live.values()))[0]
        port = variants[chosen]["handle"]["port"]
        # Content-Type and Accept reach the container as the caller sent them (the container answers 415/406).
        fwd = {"Content-Type": lower.get("content-type", "application/json")}
        if "accept" in lower:
            fwd["Accept"] = lower["accept"]
        if "x-amzn-sagemaker-custom-attributes" in lower:
            fwd["X-Amzn-SageMaker-Custom-Attributes"] = lower["x-amzn-sagemaker-custom-attributes"]
        status, rh, data = forward("127.0.0.1", port, "POST", "/invocations", fwd, body)
        if status != 200:
            return json_reply(424, {"ErrorCode": "ModelError", "message": f"Received client error ({status}) from "
                                    f"primary with message \"{data.decode(errors='replace')}\"",
                                    "OriginalStatusCode": status, "OriginalMessage": data.decode(errors="replace")},
                              {"x-amzn-ErrorType": "ModelError"})
        return 200, {"Content-Type": rh.get("content-type", "application/json"),
                     "X-Amzn-Invoked-Production-Variant": chosen}, data

    def stop_all(self) -> None:
        emulator_http.stop_all(self.runtime, [v["handle"] for ep in list(self.endpoints.values())
                                              for v in ep["variants"].values()])


def main() -> None:
    args = arguments("A local SageMaker (moto control plane + real inference)",
                     lambda ap: ap.add_argument("--moto", required=True, help="moto server URL"))
    emu = SageMakerEmulator(args.moto, args.state, args.runtime, args.registry_auth)
    serve(emu.dispatch, args.port, emu.stop_all)


def sagemaker_service(port: int, state: Path, moto: str, runtime: str = "process", registry_auth: Path | None = None):
    """The emulator as a ``Service`` (start/stop by PID, like the rest of the local cloud). Stopping it stops its
    model servers; with podman give ``stop`` time for their graceful shutdown."""
    import sys

    from .ports import http_ok
    from skewless.process import Service

    def command() -> list[str]:
        return [sys.executable, "-m", "skewless.localcloud.sagemaker_runtime", "--port", str(port), "--state",
                str(state), "--moto", moto, "--runtime", runtime,
                *(["--registry-auth", str(registry_auth)] if registry_auth else [])]

    return Service("sagemaker-runtime", "127.0.0.1", port, command,
                   lambda s: http_ok(f"http://{s.host}:{s.port}/health") is not None,
                   env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}, start_timeout=30, cwd=state)


if __name__ == "__main__":
    main()

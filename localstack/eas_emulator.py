"""A local PAI-EAS for deploy tests: the EAS control-plane API (2021-07-01, as ``alibabacloud-eas20210701``
calls it) for the subset below, and a gateway that runs the model server behind each service.

    python -m skewless.localcloud.eas_emulator --port P --state DIR [--runtime podman --registry-auth AUTH.json]

Control plane (ROA, JSON; the AK signature is not checked). Exactly this subset; any other request answers
**501** ``NotImplemented`` naming the method and path:

    CreateService    POST   /api/v2/services                      body: the service config JSON; query Labels
    ListServices     GET    /api/v2/services                      query GroupName filters
    DescribeService  GET    /api/v2/services/{cluster}/{name}
    UpdateService    PUT    /api/v2/services/{cluster}/{name}     body: a config merged over the current one
    ReleaseService   PUT    /api/v2/services/{cluster}/{name}/release   body: Weight (0-100) in the group
    DeleteService    DELETE /api/v2/services/{cluster}/{name}

Service config read: ``metadata.name`` (required), ``metadata.group`` (default: the name),
``containers[0].image`` (the ``podman`` runtime runs it, pulled with ``--registry-auth`` when absent; the
``process`` runtime runs ``python -m skewless.serving serve``),
``containers[0].port`` (recorded; the backend gets a free loopback port), ``containers[0].env`` ([{name, value}]),
``metadata.instance/cpu/memory`` (recorded). Services go Creating -> Running (or Failed with the log tail);
an update starts the new backend before stopping the old one.

Data plane (the gateway): ``POST|GET /api/predict/<service>`` needs that service's token in ``Authorization``,
raw, ``Bearer <token>`` or the official client's ``EAS <signature>`` (``skewless.serving.eas_auth``; missing or
wrong: 401) and is forwarded to its backend with its body, Content-Type, Accept and X-Request-Id (the backend's
Content-Type comes back). ``/api/predict/<group>`` (a group name with
no service of that name) accepts the token of any service in the group and routes each request to a Running
member drawn by weight (the answer names it in ``X-Eas-Service``). ``GET /health`` is the emulator's liveness.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
import urllib.parse
from pathlib import Path

from skewless.serving import eas_auth

from . import emulator_http
from .emulator_http import HOST, Reply, arguments, forward, json_reply, serve

REGION = "cn-hangzhou"


def _error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"RequestId": secrets.token_hex(8), "Code": code, "Message": message})


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class EasEmulator:
    def __init__(self, state: Path, runtime: str = "process", port: int = 0, registry_auth: Path | None = None):
        self.state, self.port = state, port
        self.runtime_name, self.registry_auth = runtime, registry_auth
        self.runtime = emulator_http.runtime(runtime, state)  # stops any backend: handles carry their names
        self.services: dict[str, dict] = {}
        self.lock = threading.RLock()

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if method == "GET" and url.path == "/health":
            return json_reply(200, {"status": "ok", "services": sorted(self.services)})
        if parts[:2] == ["api", "predict"] and len(parts) == 3 and method in ("GET", "POST"):
            return self.predict(method, parts[2], headers, body)
        if parts[:2] == ["api", "v2"] and len(parts) >= 3 and parts[2] == "services":
            doc = json.loads(body) if body else {}
            if len(parts) == 3 and method == "POST":
                return self.create(doc, query)
            if len(parts) == 3 and method == "GET":
                return self.list(query)
            if len(parts) == 5 and method == "GET":
                return self.describe(parts[4])
            if len(parts) == 5 and method == "PUT":
                return self.update(parts[4], doc)
            if len(parts) == 6 and parts[5] == "release" and method == "PUT":
                return self.release(parts[4], doc)
            if len(parts) == 5 and method == "DELETE":
                return self.delete(parts[4])
        return _error(501, "NotImplemented", f"the local EAS emulator does not implement {method} {url.path}; it "
                      "implements CreateService, ListServices, DescribeService, UpdateService, ReleaseService, "
                      "DeleteService and /api/predict/<service|group>")

    # -- control plane -------------------------------------------------------------------------------------------
    def _doc(self, svc: dict) -> dict:
        cfg = svc["config"]
        meta = cfg.get("metadata", {})
        endpoint = f"http://{HOST}:{self.port}/api/predict/{svc['name']}"
        return {"ServiceName": svc["name"], "ServiceId": svc["id"], "ServiceGroup": svc["group"],
                "Status": svc["status"], "Message": svc.get("message", ""), "Reason": svc.get("reason", ""),
                "Weight": svc["weight"], "TrafficState": "standalone" if svc["group"] == svc["name"] else "grouping",
                "AccessToken": svc["token"], "ServiceConfig": json.dumps(cfg), "Image": svc["image"],
                "CreateTime": svc["created"], "UpdateTime": svc["updated"], "Region": REGION,
                "CurrentVersion": svc["version"], "LatestVersion": svc["version"],
                "TotalInstance": meta.get("instance", 1), "RunningInstance": 1 if svc["status"] == "Running" else 0,
                "Cpu": meta.get("cpu", 1), "Memory": meta.get("memory", 1000), "InternetEndpoint": endpoint,
                "IntranetEndpoint": endpoint,
                "Labels": [{"LabelKey": k, "LabelValue": v} for k, v in svc["labels"].items()]}

    @staticmethod
    def _validate(cfg: dict) -> str | None:
        name = cfg.get("metadata", {}).get("name")
        if not name:
            return "metadata.name is required"
        containers = cfg.get("containers") or []
        if not containers or not containers[0].get("image"):
            return "containers[0].image is required (this emulator runs custom images only)"
        return None

    def create(self, cfg: dict, query: dict) -> Reply:
        problem = self._validate(cfg)
        if problem:
            return _error(400, "InvalidParameter", problem)
        name = cfg["metadata"]["name"]
        with self.lock:
            if name in self.services:
                return _error(400, "ServiceAlreadyExists", f"service {name} already exists")
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            svc = {"name": name, "id": f"eas-m-{secrets.token_hex(6)}", "group": cfg["metadata"].get("group") or name,
                   "status": "Creating", "weight": 100, "token": secrets.token_urlsafe(24), "config": cfg,
                   "image": cfg["containers"][0]["image"], "created": now, "updated": now, "version": 1,
                   "labels": json.loads(query["Labels"]) if query.get("Labels") else {}, "handle": None}
            self.services[name] = svc
        threading.Thread(target=self._run, args=(svc, cfg), daemon=True).start()
        d = self._doc(svc)
        return json_reply(200, {k: d[k] for k in ("ServiceId", "ServiceName", "Status", "Region", "InternetEndpoint",
                                                  "IntranetEndpoint")} | {"RequestId": secrets.token_hex(8)})

    def list(self, query: dict) -> Reply:
        group = query.get("GroupName")
        found = [self._doc(s) for s in self.services.values() if not group or s["group"] == group]
        return json_reply(200, {"Services": found, "TotalCount": len(found), "PageNumber": 1,
                                "PageSize": max(len(found), 1), "RequestId": secrets.token_hex(8)})

    def describe(self, name: str) -> Reply:
        svc = self.services.get(name)
        if svc is None:
            return _error(404, "ServiceNotFound", f"service {name} not found")
        return json_reply(200, self._doc(svc) | {"RequestId": secrets.token_hex(8)})

    def update(self, name: str, over: dict) -> Reply:
        with self.lock:
            svc = self.services.get(name)
            if svc is None:
                return _error(404, "ServiceNotFound", f"service {name} not found")
            cfg = _merge(svc["config"], over)
            cfg.setdefault("metadata", {})["name"] = name
            problem = self._validate(cfg)
            if problem:
                return _error(400, "InvalidParameter", problem)
            svc["status"] = "Updating"
        threading.Thread(target=self._run, args=(svc, cfg), daemon=True).start()
        return json_reply(200, {"RequestId": secrets.token_hex(8), "Message": f"service {name} is updating"})

    def release(self, name: str, doc: dict) -> Reply:
        svc = self.services.get(name)
        if svc is None:
            return _error(404, "ServiceNotFound", f"service {name} not found")
        weight = doc.get("Weight")
        if weight is None or not 0 <= int(weight) <= 100:
            return _error(400, "InvalidParameter", f"Weight must be 0-100, got {weight!r}")
        svc["weight"] = int(weight)
        return json_reply(200, {"RequestId": secrets.token_hex(8), "Message": f"service {name} weight {weight}"})

    def delete(self, name: str) -> Reply:
        with self.lock:
            svc = self.services.pop(name, None)
        if svc is None:
            return _error(404, "ServiceNotFound", f"service {name} not found")
        if svc["handle"]:
            self.runtime.stop(svc["handle"])
        return json_reply(200, {"RequestId": secrets.token_hex(8), "Message": f"service {name} deleted"})

    def _run(self, svc: dict, cfg: dict) -> None:
        """Start the backend for ``cfg``; only when it answers does it replace the running one."""
        from skewless.serving.deploy.loopback import free_port

        container = cfg["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container.get("env", [])}
        # The gateway's token and the service name the image sees; /ping (both contracts) is the readiness probe.
        env.update(SKEWLESS_SERVING_TOKEN=svc["token"], SKEWLESS_SERVICE_NAME=svc["name"], SKEWLESS_CONTRACT="both")
        try:
            rt = emulator_http.runtime(self.runtime_name, self.state, container["image"], self.registry_auth)
            # No model folder: EAS mounts none (the config's env names the registered model the server fetches).
            # Giving one made podman mount it read-only at /opt/ml/model, where the server then downloaded into.
            handle = rt.start(None, env, free_port())
        except Exception as exc:  # noqa: BLE001 - reported through DescribeService, as EAS does
            with self.lock:
                svc["status"] = "Running" if svc["handle"] else "Failed"
                svc["message"], svc["reason"] = f"{type(exc).__name__}: {exc}", "StartFailed"
            return
        with self.lock:
            old, svc["handle"] = svc["handle"], handle
            if svc["status"] == "Updating":
                svc["version"] += 1
            svc.update(config=cfg, status="Running", message="", reason="",
                       updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            gone = svc["name"] not in self.services  # deleted while starting
        if old:
            self.runtime.stop(old)
        if gone:
            self.runtime.stop(handle)

    # -- gateway -------------------------------------------------------------------------------------------------
    def predict(self, method: str, name: str, headers: dict[str, str], body: bytes) -> Reply:
        svc = self.services.get(name)
        members = [svc] if svc else [s for s in self.services.values() if s["group"] == name]
        if not members:
            return _error(404, "ServiceNotFound", f"no service or group {name}")
        lower = {k.lower(): v for k, v in headers.items()}
        if not eas_auth.authorized(lower.get("authorization", ""), [m["token"] for m in members], method=method,
                                   resource=f"/api/predict/{name}", headers=lower, body=body):
            return json_reply(401, {"error": "Unauthorized", "message": "missing or wrong Authorization token"},
                              {"WWW-Authenticate": "Bearer"})
        live = [m for m in members if m["status"] in ("Running", "Updating") and m["handle"]
                and (svc is not None or m["weight"] > 0)]
        if not live:
            return _error(503, "ServiceUnavailable", f"{name} has no running instance with traffic")
        chosen = live[0] if svc else random.choices(live, [m["weight"] for m in live])[0]
        # Content-Type and Accept as the caller sent them (the server reads CSV and JSON Lines, answers by Accept),
        # whatever the case of their names (a lower-case content-type was dropped: JSON assumed).
        fwd = {"Content-Type": lower.get("content-type", "application/json"), "Authorization": chosen["token"]}
        for name, key in (("Accept", "accept"), ("X-Request-Id", "x-request-id")):
            if key in lower:
                fwd[name] = lower[key]
        status, rh, data = forward(HOST, chosen["handle"]["port"], method, f"/api/predict/{chosen['name']}", fwd, body)
        return status, {"Content-Type": rh.get("content-type", "application/json"), "X-Eas-Service": chosen["name"]}, \
            data

    def stop_all(self) -> None:
        emulator_http.stop_all(self.runtime, [s["handle"] for s in list(self.services.values()) if s["handle"]])


def eas_service(port: int, state: Path, runtime: str = "process", registry_auth: Path | None = None):
    """The emulator as a ``Service`` (start/stop by PID, like the rest of the local cloud). Stopping it stops its
    model servers; with podman give ``stop`` time for their graceful shutdown."""
    import sys

    from .ports import http_ok
    from skewless.process import Service

    def command() -> list[str]:
        return [sys.executable, "-m", "skewless.localcloud.eas_emulator", "--port", str(port), "--state", str(state),
                "--runtime", runtime, *(["--registry-auth", str(registry_auth)] if registry_auth else [])]

    return Service("eas-emulator", HOST, port, command,
                   lambda s: http_ok(f"http://{s.host}:{s.port}/health") is not None, start_timeout=30, cwd=state)


def main() -> None:
    args = arguments("A local PAI-EAS (control-plane subset + token-checking gateway)")
    emu = EasEmulator(args.state, args.runtime, args.port, args.registry_auth)
    serve(emu.dispatch, args.port, emu.stop_all)


if __name__ == "__main__":
    main()

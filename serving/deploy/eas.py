"""The PAI-EAS target (``alibabacloud-eas20210701``): one EAS service per model version, ``<endpoint>_v<version>``,
all in the service group ``<endpoint>``; traffic is the group's ReleaseService weights (blue-green and canary).

    deploy    CreateService (custom image, port, resources, SKEWLESS_* env; the model registry version is fetched by the
              server itself) or UpdateService when that version's service exists; DescribeService polled until
              Running (bounded by ``wait_seconds``); ReleaseService weights for every member
    rollback  delete the newest member and restore the weights it replaced (a label on the service records them:
              no state outside EAS)
    invoke    POST <invoke_url>/api/predict/<group> with a member's token (or /<service> for one variant)

Tested against ``skewless.localcloud.eas_emulator``.
"""

from __future__ import annotations

import json
import time

from skewless.errors import ConfigError, NotFoundError, StoreUnavailable, ValidationError

from . import Endpoint, Target, Variant, answer, full_weights, variant_name, with_new_variant

PREV_WEIGHTS = "skewless.previous-weights"


class EasTarget(Target):
    kind = "eas"

    def __init__(self, store, *, image: str, endpoint: str, region: str = "cn-hangzhou",
                 access_key_id: str = "test", access_key_secret: str = "test", invoke_url: str | None = None,
                 protocol: str = "https", port: int = 8000, cpu: int = 1, memory: int = 2000, instances: int = 1,
                 env: dict[str, str] | None = None, wait_seconds: float = 300.0, poll_seconds: float = 0.5,
                 timeout: float = 30.0):
        try:
            from alibabacloud_eas20210701.client import Client
            from alibabacloud_tea_openapi import models as open_api_models
        except ImportError as exc:
            raise ConfigError('the PAI-EAS target needs the EAS SDK: pip install "skewless[alibaba]"') from exc
        self.store, self.image, self.region, self.port = store, image, region, port
        self.resources = {"cpu": cpu, "memory": memory, "instance": instances}
        self.env, self.wait_seconds, self.poll, self.timeout = env or {}, wait_seconds, poll_seconds, timeout
        self.client = Client(open_api_models.Config(access_key_id=access_key_id, access_key_secret=access_key_secret,
                                                    region_id=region, endpoint=endpoint, protocol=protocol))
        self.invoke_url = (invoke_url or f"{protocol}://{endpoint}").rstrip("/")

    def _call(self, op: str, *args):
        from Tea.exceptions import TeaException, UnretryableException

        try:
            return getattr(self.client, op)(*args).body
        except TeaException as exc:
            msg = f"EAS {op}: {exc.code}: {exc.message}"
            if exc.code in ("ServiceNotFound",) or (exc.data or {}).get("statusCode") == 404:
                raise NotFoundError(msg) from exc
            if exc.code in ("InvalidParameter", "ServiceAlreadyExists"):
                raise ValidationError(msg) from exc
            raise StoreUnavailable(msg, endpoint=self.client._endpoint) from exc
        except UnretryableException as exc:
            raise StoreUnavailable(f"EAS {op}: {exc}", endpoint=self.client._endpoint) from exc

    # -- helpers -----------------------------------------------------------------------------------------------
    def _members(self, endpoint: str) -> list:
        from alibabacloud_eas20210701 import models as m

        services = self._call("list_services", m.ListServicesRequest(group_name=endpoint, page_size=100)).services
        return [s for s in services or [] if s.service_group == endpoint]

    def _describe_service(self, name: str):
        return self._call("describe_service", self.region, name)

    def _wait(self, name: str):
        deadline = time.monotonic() + self.wait_seconds
        while True:
            s = self._describe_service(name)
            if s.status == "Running" and not s.message:
                return s
            if s.status == "Failed" or (s.status == "Running" and s.message):
                raise StoreUnavailable(f"EAS service {name} failed: {s.message}", endpoint=self.client._endpoint)
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"EAS service {name} still {s.status} after {self.wait_seconds:.0f}s",
                                       endpoint=self.client._endpoint)
            time.sleep(self.poll)

    def _config(self, model: str, version: int, endpoint: str, name: str) -> dict:
        env = {"SKEWLESS_REPO": str(self.store.config.repo_path), "SKEWLESS_MODEL": model,
               "SKEWLESS_MODEL_VERSION": str(int(version)), **self.env}
        return {"metadata": {"name": name, "group": endpoint, **self.resources},
                "containers": [{"image": self.image, "command": "python -m skewless.serving serve", "port": self.port,
                                "env": [{"name": k, "value": v} for k, v in sorted(env.items())]}]}

    def _release(self, weights: dict[str, float]) -> None:
        from alibabacloud_eas20210701 import models as m

        for name, w in sorted(weights.items()):
            self._call("release_service", self.region, name, m.ReleaseServiceRequest(weight=int(round(w * 100))))

    def _service(self, endpoint: str, variant: str) -> str:
        return f"{endpoint}_{variant}"

    @staticmethod
    def _view(endpoint: str, members: list) -> Endpoint:
        if not members:
            raise NotFoundError(f"no EAS service group {endpoint!r}")
        total = sum(s.weight or 0 for s in members) or 1
        variants = [Variant(s.service_name.rsplit("_", 1)[-1], int(s.service_name.rsplit("_v", 1)[-1]),
                            (s.weight or 0) / total) for s in members]
        status = "InService" if all(s.status == "Running" for s in members) else \
            ",".join(sorted({s.status for s in members}))
        return Endpoint(endpoint, "eas", status, sorted(variants, key=lambda v: v.version))

    # -- operations --------------------------------------------------------------------------------------------
    def deploy(self, model: str, version: int, endpoint: str, *, weight: float | None = None) -> Endpoint:
        from alibabacloud_eas20210701 import models as m

        members = self._members(endpoint)
        current = {s.service_name: (s.weight or 0) / (sum(x.weight or 0 for x in members) or 1) for s in members}
        name = self._service(endpoint, variant_name(version))
        new = with_new_variant(current, name, weight)
        cfg = json.dumps(self._config(model, version, endpoint, name))
        if name in current:  # that version is already a member: roll its config forward in place
            self._call("update_service", self.region, name, m.UpdateServiceRequest(body=cfg))
        else:
            labels = {PREV_WEIGHTS: json.dumps(current, separators=(",", ":"))}
            self._call("create_service", m.CreateServiceRequest(body=cfg, labels=labels))
        self._wait(name)
        self._release(new)
        return self.describe(endpoint)

    def set_weights(self, endpoint: str, weights: dict[str, float]) -> Endpoint:
        members = {s.service_name.rsplit("_", 1)[-1]: s.service_name for s in self._members(endpoint)}
        full = full_weights(endpoint, weights, members)
        self._release({members[v]: w for v, w in full.items()})
        return self.describe(endpoint)

    def rollback(self, endpoint: str) -> Endpoint:
        members = self._members(endpoint)
        if not members:
            raise NotFoundError(f"no EAS service group {endpoint!r}")
        # CreateTime has one-second resolution: the version number breaks ties (v10 after v9, not before v2)
        newest = max(members, key=lambda s: (s.create_time or "", int(s.service_name.rsplit("_v", 1)[-1])))
        labels = {lb.label_key: lb.label_value for lb in newest.labels or []}
        previous = json.loads(labels.get(PREV_WEIGHTS) or "{}")
        self._call("delete_service", self.region, newest.service_name)
        if not previous:
            return Endpoint(endpoint, "eas", "Deleted")
        self._release(previous)
        return self.describe(endpoint)

    def delete(self, endpoint: str) -> None:
        for s in self._members(endpoint):
            self._call("delete_service", self.region, s.service_name)

    def describe(self, endpoint: str) -> Endpoint:
        return self._view(endpoint, self._members(endpoint))

    def endpoints(self) -> list[Endpoint]:
        from alibabacloud_eas20210701 import models as m

        services = self._call("list_services", m.ListServicesRequest(page_size=100)).services or []
        groups = sorted({s.service_group for s in services if s.service_group})
        return [self._view(g, [s for s in services if s.service_group == g]) for g in groups]

    def token(self, endpoint: str) -> str:
        members = self._members(endpoint)
        if not members:
            raise NotFoundError(f"no EAS service group {endpoint!r}")
        return self._describe_service(members[0].service_name).access_token

    def invoke(self, endpoint: str, instances, *, variant: str | None = None) -> dict:
        import httpx

        path = self._service(endpoint, variant) if variant else endpoint
        token = self._describe_service(path).access_token if variant else self.token(endpoint)
        body = instances if isinstance(instances, dict) else {"instances": instances}
        try:
            r = httpx.post(f"{self.invoke_url}/api/predict/{path}", json=body, headers={"Authorization": token},
                           timeout=self.timeout)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"EAS {path}: {exc}", endpoint=self.invoke_url) from exc
        served = r.headers.get("x-eas-service", path)
        return answer(r, served.rsplit("_", 1)[-1] if "_v" in served else served)

"""The local target: each variant is a model server started by a runtime (``process`` or ``podman``) on a loopback
port, and ``invoke`` routes each request to a variant drawn by weight, like the managed routers.

State (variants, their runtime handles, the deploy history for rollback) is one JSON file in ``state_dir``, so a
CLI call can route to or stop servers an earlier call started.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from skewless.errors import NotFoundError, StoreUnavailable

from . import Endpoint, Target, Variant, answer, full_weights, pick, variant_name, with_new_variant
from .loopback import HOST, free_port, tail
from .runtime import get_runtime, runtime_for


class LocalTarget(Target):
    kind = "local"

    def __init__(self, store, *, state_dir: str | Path | None = None, runtime: str = "process",
                 runtime_options: dict | None = None, env: dict[str, str] | None = None, timeout: float = 30.0):
        self.store = store
        self.state = Path(state_dir) if state_dir else Path(store.config.repo_path) / ".skewless" / "deploy-local"
        self.runtime_name = runtime
        self.runtime_options = runtime_options or {}  # e.g. {"image": ...} for podman
        self.env = env or {}
        self.timeout = timeout

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def _file(self) -> Path:
        return self.state / "endpoints.json"

    def _load(self) -> dict:
        try:
            return json.loads(self._file.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, doc: dict) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self._file)  # a crash never leaves a half-written state file

    def _get(self, doc: dict, endpoint: str) -> dict:
        if endpoint not in doc:
            raise NotFoundError(f"no local endpoint {endpoint!r}")
        return doc[endpoint]

    @staticmethod
    def _view(name: str, ep: dict) -> Endpoint:
        return Endpoint(name, "local", "InService",
                        [Variant(n, v["version"], v["weight"]) for n, v in sorted(ep["variants"].items())],
                        model=ep.get("model"))

    # -- operations --------------------------------------------------------------------------------------------
    def deploy(self, model: str, version: int, endpoint: str, *, weight: float | None = None) -> Endpoint:
        from skewless.serving import ModelRegistry

        doc = self._load()
        ep = doc.get(endpoint) or {"model": model, "variants": {}, "history": []}
        name = variant_name(version)
        current = {n: v["weight"] for n, v in ep["variants"].items()}
        weights = with_new_variant(current, name, weight)  # validated before anything starts
        if name not in ep["variants"]:
            model_dir = self.state / endpoint / name
            ModelRegistry(self.store).download(model, version, dest=model_dir)
            env = {"SKEWLESS_REPO": str(self.store.config.repo_path), "SKEWLESS_CONTRACT": "sagemaker", **self.env}
            handle = get_runtime(self.runtime_name, **self.runtime_options).start(model_dir, env, free_port())
            ep["variants"][name] = {"version": int(version), "weight": 0.0, "handle": handle}
        ep["history"].append(current)
        for n, w in weights.items():
            ep["variants"][n]["weight"] = w
        doc[endpoint] = ep
        self._save(doc)
        return self._view(endpoint, ep)

    def set_weights(self, endpoint: str, weights: dict[str, float]) -> Endpoint:
        doc = self._load()
        ep = self._get(doc, endpoint)
        return self._apply_weights(doc, endpoint, full_weights(endpoint, weights, ep["variants"]))

    def _apply_weights(self, doc: dict, endpoint: str, weights: dict[str, float]) -> Endpoint:
        ep = doc[endpoint]
        for n, w in weights.items():
            ep["variants"][n]["weight"] = w
        self._save(doc)
        return self._view(endpoint, ep)

    def rollback(self, endpoint: str) -> Endpoint:
        doc = self._load()
        ep = self._get(doc, endpoint)
        if not ep["history"]:
            raise NotFoundError(f"endpoint {endpoint!r} has no earlier deployment to roll back to")
        previous = ep["history"].pop()
        if not previous:  # the first deploy created the endpoint: undoing it deletes it
            self.delete(endpoint)
            return Endpoint(endpoint, "local", "Deleted")
        for n in [n for n in ep["variants"] if n not in previous]:
            self._stop(ep["variants"].pop(n))
        return self._apply_weights(doc, endpoint, previous)

    def delete(self, endpoint: str) -> None:
        doc = self._load()
        ep = self._get(doc, endpoint)
        for v in ep["variants"].values():
            self._stop(v)
        del doc[endpoint]
        self._save(doc)

    def _stop(self, variant: dict) -> None:
        runtime_for(variant["handle"]).stop(variant["handle"])

    def describe(self, endpoint: str) -> Endpoint:
        return self._view(endpoint, self._get(self._load(), endpoint))

    def endpoints(self) -> list[Endpoint]:
        return [self._view(n, ep) for n, ep in sorted(self._load().items())]

    def invoke(self, endpoint: str, instances, *, variant: str | None = None) -> dict:
        import httpx

        ep = self._get(self._load(), endpoint)
        name = variant or pick({n: v["weight"] for n, v in ep["variants"].items()})
        if name not in ep["variants"]:
            raise NotFoundError(f"endpoint {endpoint!r} has no variant {name!r}")
        handle = ep["variants"][name]["handle"]
        url = f"http://{HOST}:{handle['port']}/invocations"
        body = instances if isinstance(instances, dict) else {"instances": instances}
        try:
            r = httpx.post(url, json=body, timeout=self.timeout)
        except httpx.TransportError as exc:
            logs = tail(runtime_for(handle).logs(handle))
            raise StoreUnavailable(f"variant {name} of {endpoint!r} does not answer: {exc}\n{logs}",
                                   endpoint=url) from exc
        return answer(r, name)


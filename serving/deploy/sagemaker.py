"""The SageMaker target (boto3): one SageMaker Model per (endpoint, model version), one EndpointConfig per deploy,
production variants ``v<version>`` for A/B and canary, UpdateEndpointWeightsAndCapacities for traffic.

    deploy    model.tar.gz -> S3 (ModelDataUrl); CreateModel (image URI from the options, SKEWLESS_* env);
              CreateEndpointConfig with the current variants plus the new one; CreateEndpoint or UpdateEndpoint;
              DescribeEndpoint polled until InService (bounded by ``wait_seconds``)
    rollback  UpdateEndpoint back to the config the last deploy replaced, then its weights. The predecessor and its
              weights at the time are tags on each config (``skewless:previous-*``): no state outside SageMaker.

Vendor errors become skewless errors at this edge. Tested against ``skewless.localcloud.sagemaker_runtime``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from skewless.errors import NotFoundError, StoreUnavailable, ValidationError

from . import Endpoint, Target, Variant, full_weights, variant_name, with_new_variant

PREV_CONFIG, PREV_WEIGHTS = "skewless:previous-config", "skewless:previous-weights"


class SageMakerTarget(Target):
    kind = "sagemaker"

    def __init__(self, store, *, bucket: str, image: str, role_arn: str, prefix: str = "skewless/models",
                 endpoint_url: str | None = None, runtime_endpoint_url: str | None = None,
                 s3_endpoint_url: str | None = None, region: str = "us-east-1", instance_type: str = "ml.m5.large",
                 env: dict[str, str] | None = None, wait_seconds: float = 300.0, poll_seconds: float = 0.5):
        import boto3

        self.store, self.bucket, self.prefix, self.image, self.role_arn = store, bucket, prefix.strip("/"), image, \
            role_arn
        self.instance_type, self.env, self.wait_seconds, self.poll = instance_type, env or {}, wait_seconds, \
            poll_seconds
        self.sm = boto3.client("sagemaker", endpoint_url=endpoint_url, region_name=region)
        self.rt = boto3.client("sagemaker-runtime", endpoint_url=runtime_endpoint_url or endpoint_url,
                               region_name=region)
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint_url, region_name=region)

    def _call(self, client, op: str, **kw) -> dict:
        import botocore.exceptions

        try:
            return getattr(client, op)(**kw)
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            msg = f"SageMaker {op}: {err.get('Code')}: {err.get('Message')}"
            if "Could not find" in str(err.get("Message")) or "not found" in str(err.get("Message")):
                raise NotFoundError(msg) from exc
            if err.get("Code") in ("ValidationException", "ValidationError", "ModelError"):
                raise ValidationError(msg) from exc
            raise StoreUnavailable(msg, endpoint=client.meta.endpoint_url) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreUnavailable(f"SageMaker {op}: {exc}", endpoint=client.meta.endpoint_url) from exc

    # -- helpers -----------------------------------------------------------------------------------------------
    def _ensure_model(self, model: str, version: int, endpoint: str) -> str:
        from skewless.serving import ModelRegistry

        name = f"{endpoint}-{model}-v{int(version)}"[:63]
        try:
            self._call(self.sm, "describe_model", ModelName=name)
            return name
        except (NotFoundError, ValidationError):
            pass
        with tempfile.TemporaryDirectory() as tmp:
            art = ModelRegistry(self.store).download(model, version, dest=Path(tmp) / "model")
            data = art.to_tar()  # includes the model registry sidecar: the server reports the version it serves
        key = f"{self.prefix}/{model}/v{int(version)}/model.tar.gz"
        self._call(self.s3, "put_object", Bucket=self.bucket, Key=key, Body=data)
        env = {"SKEWLESS_REPO": str(self.store.config.repo_path), "SKEWLESS_CONTRACT": "sagemaker", **self.env}
        self._call(self.sm, "create_model", ModelName=name, ExecutionRoleArn=self.role_arn,
                   PrimaryContainer={"Image": self.image, "ModelDataUrl": f"s3://{self.bucket}/{key}",
                                     "Environment": env})
        return name

    def _exists(self, endpoint: str) -> dict | None:
        try:
            return self._call(self.sm, "describe_endpoint", EndpointName=endpoint)
        except (NotFoundError, ValidationError):
            return None

    def _variant_models(self, config: str) -> dict[str, str]:
        cfg = self._call(self.sm, "describe_endpoint_config", EndpointConfigName=config)
        return {pv["VariantName"]: pv["ModelName"] for pv in cfg["ProductionVariants"]}

    def _tags(self, config: str) -> dict[str, str]:
        arn = self._call(self.sm, "describe_endpoint_config", EndpointConfigName=config)["EndpointConfigArn"]
        return {t["Key"]: t["Value"] for t in self._call(self.sm, "list_tags", ResourceArn=arn).get("Tags", [])}

    def _wait(self, endpoint: str) -> dict:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            d = self._call(self.sm, "describe_endpoint", EndpointName=endpoint)
            status = d["EndpointStatus"]
            if status == "InService":
                if d.get("FailureReason"):  # an update that failed: SageMaker keeps the previous config
                    raise StoreUnavailable(f"endpoint {endpoint!r} update failed: {d['FailureReason']}",
                                           endpoint=self.sm.meta.endpoint_url)
                return d
            if status == "Failed":
                raise StoreUnavailable(f"endpoint {endpoint!r} failed: {d.get('FailureReason')}",
                                       endpoint=self.sm.meta.endpoint_url)
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"endpoint {endpoint!r} still {status} after {self.wait_seconds:.0f}s",
                                       endpoint=self.sm.meta.endpoint_url)
            time.sleep(self.poll)

    @staticmethod
    def _view(d: dict) -> Endpoint:
        variants = [Variant(pv["VariantName"], int(pv["VariantName"].lstrip("v") or 0), float(pv["CurrentWeight"]))
                    for pv in d.get("ProductionVariants", [])]
        total = sum(v.weight for v in variants) or 1.0
        for v in variants:  # SageMaker weights are relative; here they are fractions
            v.weight /= total
        return Endpoint(d["EndpointName"], "sagemaker", d["EndpointStatus"], sorted(variants, key=lambda v: v.name))

    # -- operations --------------------------------------------------------------------------------------------
    def deploy(self, model: str, version: int, endpoint: str, *, weight: float | None = None) -> Endpoint:
        current = self._exists(endpoint)
        weights = self._view(current).weights() if current else {}
        name = variant_name(version)
        new = with_new_variant(weights, name, weight)
        models = self._variant_models(current["EndpointConfigName"]) if current else {}
        models[name] = self._ensure_model(model, version, endpoint)
        # one config per deploy, named by time (SageMaker names are at most 63 characters)
        config = f"{endpoint[:40]}-{time.strftime('%Y%m%d%H%M%S')}-{int(time.time() * 1000) % 1000:03d}"
        tags = [{"Key": PREV_CONFIG, "Value": current["EndpointConfigName"] if current else ""},
                {"Key": PREV_WEIGHTS, "Value": json.dumps(weights, separators=(",", ":"))}]
        self._call(self.sm, "create_endpoint_config", EndpointConfigName=config, Tags=tags, ProductionVariants=[
            {"VariantName": n, "ModelName": models[n], "InitialInstanceCount": 1, "InstanceType": self.instance_type,
             "InitialVariantWeight": w} for n, w in sorted(new.items())])
        if current:
            self._call(self.sm, "update_endpoint", EndpointName=endpoint, EndpointConfigName=config)
        else:
            self._call(self.sm, "create_endpoint", EndpointName=endpoint, EndpointConfigName=config)
        return self._view(self._wait(endpoint))

    def set_weights(self, endpoint: str, weights: dict[str, float]) -> Endpoint:
        full = full_weights(endpoint, weights, self.describe(endpoint).weights())
        self._call(self.sm, "update_endpoint_weights_and_capacities", EndpointName=endpoint,
                   DesiredWeightsAndCapacities=[{"VariantName": n, "DesiredWeight": w} for n, w in full.items()])
        return self._view(self._wait(endpoint))

    def rollback(self, endpoint: str) -> Endpoint:
        current = self._exists(endpoint)
        if current is None:
            raise NotFoundError(f"no SageMaker endpoint {endpoint!r}")
        tags = self._tags(current["EndpointConfigName"])
        previous = tags.get(PREV_CONFIG)
        if not previous:
            raise NotFoundError(f"endpoint {endpoint!r} has no earlier deployment to roll back to")
        self._call(self.sm, "update_endpoint", EndpointName=endpoint, EndpointConfigName=previous)
        self._wait(endpoint)
        weights = json.loads(tags.get(PREV_WEIGHTS) or "{}")
        return self.set_weights(endpoint, weights) if weights else self.describe(endpoint)

    def delete(self, endpoint: str) -> None:
        self._call(self.sm, "delete_endpoint", EndpointName=endpoint)

    def describe(self, endpoint: str) -> Endpoint:
        return self._view(self._call(self.sm, "describe_endpoint", EndpointName=endpoint))

    def endpoints(self) -> list[Endpoint]:
        names = [e["EndpointName"] for e in self._call(self.sm, "list_endpoints").get("Endpoints", [])]
        return [self.describe(n) for n in sorted(names)]

    def invoke(self, endpoint: str, instances, *, variant: str | None = None) -> dict:
        body = instances if isinstance(instances, dict) else {"instances": instances}
        kw = {"TargetVariant": variant} if variant else {}
        r = self._call(self.rt, "invoke_endpoint", EndpointName=endpoint, ContentType="application/json",
                       Accept="application/json", Body=json.dumps(body).encode(), **kw)
        return {**json.loads(r["Body"].read()), "variant": r.get("InvokedProductionVariant")}

"""The issue's end-to-end path with the real image: training set from the store -> train -> package -> build the
image (podman, cached debootstrap base) -> push to the local OCI registry with ECR-style token login -> deploy to
the local target, to the SageMaker emulation and to the PAI-EAS emulation, every model server a container of the
image *pulled back from the registry* (podman, with the token's auth file) -> invoke with loan ids only ->
predictions equal in-process predictions on the historical features (the skew test) -> the prediction log holds
those rows -> shift traffic to a second version -> roll back.

Shares, rather than copies: test_container's fixtures (the trained credit repo, the image build, the registry)
and test_deploy's (the second model version, the emulators, the per-target scenario).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from tests.serving.test_container import credit, image, oci_registry  # noqa: F401 - fixtures, taken by name below
from tests.serving.test_deploy import (deploy_invoke_log_weights_and_rollback, eas_emulation, models,  # noqa: F401 - fixture
                                       sagemaker_emulation)
from tests.serving.test_serving import free_port

from skewless.errors import StoreUnavailable
from skewless.serving.container import build as image_build
from skewless.serving.deploy import get_target
from skewless.serving.deploy.podman import PodmanRuntime


def _running(ref: str) -> int:
    """Containers running the image by the reference they were started with (the registry's, not the build tag)."""
    out = image_build.podman("ps", "--filter", f"ancestor={ref}", "--format", "{{.Image}}")
    return sum(line.strip() == ref for line in out.splitlines())


def test_image_from_the_registry_on_local_sagemaker_and_eas(image, oci_registry, models, moto_endpoint,  # noqa: F811
                                                            tmp_path):
    t_start = time.monotonic()
    store = models["store"]
    user, token = oci_registry.credentials()
    ref = f"{oci_registry.endpoint}/skewless-credit:e2e-{os.getpid()}"
    secs = image_build.push_image(image, ref, user=user, password=token)
    assert not image_build.image_exists(ref)  # what runs below can only come from the registry
    # Without credentials the registry refuses the pull: the containers below ran with the token's login.
    with pytest.raises(StoreUnavailable, match="(?i)unauthorized|authentication required"):
        PodmanRuntime(image=ref, state_dir=tmp_path / "no-auth").start(None, {}, free_port())
    authfile = image_build.login(oci_registry.endpoint, tmp_path / "auth.json", user=user, password=token)
    timings = {"push_s": secs}
    try:
        local = get_target("local", store, state_dir=tmp_path / "local", runtime="podman",
                           runtime_options={"image": ref, "authfile": str(authfile)})
        with sagemaker_emulation(store, moto_endpoint, tmp_path / "sagemaker", image=ref, runtime="podman",
                                 registry_auth=authfile) as sagemaker, \
                eas_emulation(store, tmp_path / "eas", image=ref, runtime="podman", registry_auth=authfile) as eas:
            for kind, target in (("local", local), ("sagemaker", sagemaker), ("eas", eas)):
                t0 = time.monotonic()
                deploy_invoke_log_weights_and_rollback(target, models, f"e2e{kind}{uuid.uuid4().hex[:6]}",
                                                       servers=lambda: _running(ref))
                timings[f"{kind}_s"] = round(time.monotonic() - t0, 1)
                if kind == "local":
                    assert image_build.image_exists(ref)  # pulled by the first container start
    finally:
        subprocess.run([*image_build.PODMAN, "rmi", ref], capture_output=True)
    print(f"\ne2e after the image build: {timings}, total {time.monotonic() - t_start:.1f}s")

"""The `transactions` template's model in the serving image (podman, as tests/serving/test_container.py builds it):
the container reads the aggregations from the mounted repo's online store, runs the registry's transforms, and the
prediction log it flushes on SIGTERM replays through get_historical_features to identical inputs and predictions.

Like test_container.py, this fails (never skips) where podman and its tools are missing."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from skewless.serving import read_log
from skewless.serving.container import build as image_build
from skewless.serving.deploy.podman import PodmanRuntime
from tests.serving.test_container import _require_tools
from tests.serving.test_serving import free_port
from tests.support.agg_oracle import same_value
from tests.support.transactions_repo import predicted, replay, requests, trained

TAG = f"localhost/skewless-test-fraud:{os.getpid()}"


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    _require_tools()
    t = trained(tmp_path_factory.mktemp("container_fraud") / "repo")
    t0 = time.monotonic()
    art = t["artifact"]
    image_build.build_image(TAG, model_dir=art.path, requirements=art.manifest.requirements)
    print(f"\nimage built in {time.monotonic() - t0:.1f}s")
    yield t
    subprocess.run([*image_build.PODMAN, "rmi", "--force", TAG], capture_output=True)


def test_the_container_serves_the_template_and_its_log_replays(fraud):
    rows = requests(fraud, 6, seed=11)
    rt = PodmanRuntime(image=TAG)
    port = free_port()
    handle = rt.start(fraud["artifact"].path, {"SKEWLESS_REPO": str(fraud["repo"]),
                                               "SKEWLESS_LOG_FLUSH_SECONDS": "3600"}, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            r = c.post("/invocations", json={"instances": rows})
            assert r.status_code == 200, r.text
            served = [p["proba_1"] for p in r.json()["predictions"]]
            bad = c.post("/invocations", json={"instances": [{"card_id": 1, "amount": 3.0, "lat": 1.0}]})
            assert bad.status_code == 422 and bad.json()["column"] == "lon"  # a request field missing: typed 422
    finally:
        rt.stop(handle)  # SIGTERM: the log is flushed by the shutdown
    logs = rt.logs(handle)
    assert '"prediction_log_complete": true' in logs, logs[-2000:]
    log = read_log(fraud["store"], "fraud").to_pandas().sort_values("request_row").reset_index(drop=True)
    assert log.card_id.tolist() == [r["card_id"] for r in rows]
    assert (log.txn_stats__count_7d.iloc[:-1] > 0).all() and log.spend__amount_vs_mean.iloc[:-1].notna().all()
    replayed = replay(fraud, log)  # the container's inputs, value for value, from the training-set path
    assert all(same_value(a, b) for a, b in zip(served, predicted(fraud, replayed)))
    assert log.output__proba_1.tolist() == served

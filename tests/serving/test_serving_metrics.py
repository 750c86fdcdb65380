"""The model server's /metrics, scraped from a real server and read with prometheus_client's own parser (what a
Prometheus scrape sees): the process and Python runtime families, the online read's latency per stage, rows per
feature view and status (every series there from the start), and no ``_created`` series. On the code before
issue 14 the process/python families and the online-read histogram were missing and every counter and histogram
child had a ``_created`` twin."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.serving.test_serving import TOKEN, running, trained_credit

from skewless.serving.server import ServeConfig

VIEWS = ("loan_features", "loan_zipcode", "zipcode_features")


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return trained_credit(tmp_path_factory.mktemp("metrics") / "repo", sample=3, random_state=8)


def scrape(client) -> dict:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(family, sample_name: str, **labels) -> float:
    found = [s.value for s in family.samples if s.name == sample_name and s.labels == labels]
    assert len(found) == 1, (sample_name, labels, family.samples)
    return found[0]


def test_metrics_families_statuses_online_read_latency_and_no_created_series(credit):
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), token=TOKEN)
    with running(cfg) as (c, _):
        before = scrape(c)
        # Every (view, status) series exists before the first request: rate() of NOT_FOUND works from the start.
        for view in VIEWS:
            for status in ("PRESENT", "NOT_FOUND", "EXPIRED"):
                assert value(before["skewless_feature_rows"], "skewless_feature_rows_total", view=view,
                             status=status) == 0
        known = [int(x) for x in credit["loans"].loan_id]
        for loan in known:
            assert c.post("/invocations", json={"loan_id": loan}).status_code == 200
        assert c.post("/invocations", json=[{"loan_id": -1}, {"loan_id": -2}]).status_code == 200  # unknown loans
        assert c.get("/metrics", headers={"Authorization": "wrong"}).status_code == 401  # same token as the rest
        fams = scrape(c)

    # The process's and the Python runtime's families, as the default registry exports them.
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds", "python_info", "python_gc_objects_collected",
                 "python_gc_collections"):
        assert name in fams, sorted(fams)
    assert value(fams["process_resident_memory_bytes"], "process_resident_memory_bytes") > 10 * 2**20
    assert value(fams["process_cpu_seconds"], "process_cpu_seconds_total") > 0
    (info,) = fams["python_info"].samples
    assert info.labels["implementation"] == "CPython"

    # One online read per stage and batch, timed: stage 0 reads the loan views, stage 1 the zipcode view by the
    # zipcode read in stage 0.
    reads = fams["skewless_online_read_seconds"]
    assert reads.type == "histogram"
    batches = value(fams["skewless_batch_requests"], "skewless_batch_requests_count")
    assert batches == len(known) + 1
    for stage, views in (("0", "loan_features,loan_zipcode"), ("1", "zipcode_features")):
        assert value(reads, "skewless_online_read_seconds_count", stage=stage, views=views) == batches
        total = value(reads, "skewless_online_read_seconds_sum", stage=stage, views=views)
        assert 0 < total < 5 * batches
        assert value(reads, "skewless_online_read_seconds_bucket", stage=stage, views=views, le="+Inf") == batches

    # Rows per view and status: the unknown loans are NOT_FOUND in every view (stage 1 has no zipcode to read).
    rows = fams["skewless_feature_rows"]
    for view in VIEWS:
        assert value(rows, "skewless_feature_rows_total", view=view, status="PRESENT") == len(known)
        assert value(rows, "skewless_feature_rows_total", view=view, status="NOT_FOUND") == 2
        assert value(rows, "skewless_feature_rows_total", view=view, status="EXPIRED") == 0

    # No _created series, in any family (prometheus_client's parser keeps them as samples of their family).
    created = [s.name for f in fams.values() for s in f.samples if s.name.endswith("_created")]
    assert created == [] and not [n for n in fams if n.endswith("_created")]
    assert value(fams["skewless_requests"], "skewless_requests_total", route="sagemaker", status="200") == len(known) + 1

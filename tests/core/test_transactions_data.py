"""The synthetic card-transactions history: deterministic, and holding the cases aggregations must get right."""

import pyarrow.compute as pc
import pyarrow.parquet as pq

from skewless.transactions_data import generate


def test_same_arguments_same_bytes_and_the_cases_are_there(tmp_path):
    a = generate(tmp_path / "a", n_cards=50, n_events=5_000, seed=3)
    b = generate(tmp_path / "b", n_cards=50, n_events=5_000, seed=3)
    for name in a:
        assert pq.read_table(a[name]).equals(pq.read_table(b[name]))
    txn = pq.read_table(a["transactions"]).to_pandas()
    labels = pq.read_table(a["labels"])
    assert labels.num_rows == 5_000 and set(pc.unique(labels.column("is_fraud")).to_pylist()) == {0, 1}
    # corrections: a second version of some events, same txn_id, created later, amount amended
    versions = txn.groupby("txn_id").agg(n=("amount", "size"), created=("created_timestamp", "nunique"))
    assert (versions.n == 2).sum() > 0 and (versions[versions.n == 2].created == 2).all()
    # every event becomes known after it happened (so the label row's own event is not yet "available")
    assert (txn.created_timestamp > txn.event_timestamp).all()
    assert (txn.created_timestamp - txn.event_timestamp).max().total_seconds() > 3_600  # late arrivals

"""A synthetic card-transactions history: the data of the `transactions` template and of the aggregation
benchmarks.

Deterministic for given arguments (numpy Generators seeded per chunk), chunked so memory stays bounded at benchmark
scale (10M events). What it holds, and why each part is there:

* ``cards``: ``card_id`` Int64 and the card's home (``home_lat``, ``home_lon``), issued (event and created
  timestamp) a day before the history starts — a plain view, read by an on-demand "distance from home" transform.
* ``transactions`` (the event history of an aggregated view): ``txn_id`` String (the event id), ``card_id``,
  ``event_timestamp`` (whole seconds, uniform over ``days`` days), ``created_timestamp`` (0-120 s later; a
  ``late_frac`` share arrives 1-48 h late), ``amount`` Float64 (log-normal per card), ``merchant_category``
  String, ``lat``/``lon`` Float64. A ``correction_frac`` share of events gets a second version: same ``txn_id``,
  amended amount, created a day later (corrections must replace, never add).
* ``labels``: one row per transaction (``card_id``, ``event_timestamp``, ``txn_id``, ``amount``, ``lat``, ``lon``,
  ``is_fraud``): the entity table of a fraud model, with the request fields a served request carries. Fraud is more
  likely when the amount is far above the card's usual amount and far from home — what the template's aggregations
  and transform are meant to find.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
US = 1_000_000
TS = pa.timestamp("us", tz="UTC")
CATEGORIES = np.array(["grocery", "fuel", "travel", "online", "restaurant", "electronics"])
CHUNK = 1_000_000


def _start_us(start: datetime = START) -> int:
    return int(start.timestamp()) * US


def cards(n_cards: int, seed: int = 0, start: datetime = START) -> pa.Table:
    rng = np.random.default_rng([seed, 0])
    issued = pa.array(np.full(n_cards, _start_us(start) - 86_400 * US), TS)
    return pa.table({  # known when issued (created_timestamp): a point_in_time="available" training set sees it
        "card_id": np.arange(1, n_cards + 1, dtype=np.int64), "event_timestamp": issued, "created_timestamp": issued,
        "home_lat": rng.uniform(25.0, 48.0, n_cards), "home_lon": rng.uniform(-122.0, -70.0, n_cards),
    })


def _events(rng, n: int, n_cards: int, days: int, first_id: int, home: np.ndarray, scale: np.ndarray,
            late_frac: float, start_us: int) -> dict:
    card = rng.integers(1, n_cards + 1, n)
    ev = start_us + rng.integers(0, days * 86_400, n) * US
    late = rng.random(n) < late_frac
    delay = np.where(late, rng.integers(3_600, 48 * 3_600, n), rng.integers(1, 120, n)) * US
    far = rng.random(n) < 0.05
    lat = home[card - 1, 0] + np.where(far, rng.normal(0, 8, n), rng.normal(0, 0.2, n))
    lon = home[card - 1, 1] + np.where(far, rng.normal(0, 8, n), rng.normal(0, 0.2, n))
    amount = np.round(rng.lognormal(np.log(scale[card - 1]), 0.6), 2)
    spike = rng.random(n) < 0.02
    amount = np.where(spike, amount * rng.uniform(5, 20, n), amount)
    fraud_p = 0.002 + 0.25 * spike + 0.25 * far
    return {"txn_id": np.char.add("t", np.arange(first_id, first_id + n).astype(str)), "card_id": card,
            "event_timestamp": ev, "created_timestamp": ev + delay, "amount": amount,
            "merchant_category": CATEGORIES[rng.integers(0, len(CATEGORIES), n)], "lat": lat, "lon": lon,
            "is_fraud": (rng.random(n) < fraud_p).astype(np.int64)}


def _tables(cols: dict, rng, correction_frac: float) -> tuple[pa.Table, pa.Table]:
    n = len(cols["card_id"])
    txn = pa.table({
        "txn_id": cols["txn_id"], "card_id": cols["card_id"], "event_timestamp": pa.array(cols["event_timestamp"], TS),
        "created_timestamp": pa.array(cols["created_timestamp"], TS), "amount": cols["amount"],
        "merchant_category": cols["merchant_category"], "lat": cols["lat"], "lon": cols["lon"]})
    fix = np.flatnonzero(rng.random(n) < correction_frac)
    if len(fix):
        amended = txn.take(fix)
        amended = amended.set_column(amended.column_names.index("amount"), "amount",
                                     pa.array(np.round(cols["amount"][fix] * rng.uniform(0.5, 1.5, len(fix)), 2)))
        created = cols["created_timestamp"][fix] + 86_400 * US
        amended = amended.set_column(amended.column_names.index("created_timestamp"), "created_timestamp",
                                     pa.array(created, TS))
        txn = pa.concat_tables([txn, amended])
    labels = pa.table({"card_id": cols["card_id"], "event_timestamp": pa.array(cols["event_timestamp"], TS),
                       "txn_id": cols["txn_id"], "amount": cols["amount"], "lat": cols["lat"], "lon": cols["lon"],
                       "is_fraud": cols["is_fraud"]})
    return txn, labels


def generate(out: str | Path, *, n_cards: int = 500, n_events: int = 20_000, days: int = 30, seed: int = 0,
             late_frac: float = 0.01, correction_frac: float = 0.005, start: datetime = START) -> dict[str, Path]:
    """Write ``cards.parquet``, ``transactions.parquet`` and ``labels.parquet`` to ``out``; returns their paths.

    ``start``: the first day of the history (whole seconds, UTC); the cards' rows are a day before it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card_table = cards(n_cards, seed, start)
    pq.write_table(card_table, out / "cards.parquet")
    home = np.column_stack([card_table.column("home_lat").to_numpy(), card_table.column("home_lon").to_numpy()])
    scale = np.random.default_rng([seed, 1]).lognormal(3.0, 0.7, n_cards)
    paths = {"cards": out / "cards.parquet", "transactions": out / "transactions.parquet",
             "labels": out / "labels.parquet"}
    txn_writer = labels_writer = None
    try:
        for i, first in enumerate(range(0, n_events, CHUNK)):
            rng = np.random.default_rng([seed, 2, i])
            n = min(CHUNK, n_events - first)
            txn, labels = _tables(_events(rng, n, n_cards, days, first, home, scale, late_frac, _start_us(start)), rng,
                                  correction_frac)
            if txn_writer is None:
                txn_writer = pq.ParquetWriter(paths["transactions"], txn.schema)
                labels_writer = pq.ParquetWriter(paths["labels"], labels.schema)
            txn_writer.write_table(txn)
            labels_writer.write_table(labels)
    finally:
        for w in (txn_writer, labels_writer):
            if w is not None:
                w.close()
    return paths

#!/usr/bin/env python3
"""Deterministic synthetic data for the skewless-vs-peers feature-store benchmark.

Needs only numpy + pyarrow.  Generation is chunked (ParquetWriter), so memory
stays bounded (~ chunk_rows * (features_per_view + 3) * 8 bytes, a few hundred
MB at the default chunk size) regardless of --feature-rows.

    python bench/datagen.py OUT_DIR --entity-rows 1000000 --feature-rows 10000000 \
        --views 3 --entities 100000 --features-per-view 10 --seed 0

Writes
    OUT_DIR/entity.parquet   driver_id int64, event_timestamp timestamp[us, UTC], label int64
    OUT_DIR/view_{i}.parquet driver_id int64, event_timestamp timestamp[us, UTC],
                             created_timestamp timestamp[us, UTC], f{i}_{j} float64 ...
    OUT_DIR/meta.json        parameters, schemas, row counts, time range, tie counts

Shape of the data
  * driver_id is uniform over [1, entities].
  * Feature rows are split evenly across views (the first views take the
    remainder).  Event timestamps are whole seconds, uniform over
    [start, start + days); created_timestamp = event_timestamp + U(0, 1 h) at
    microsecond resolution.  Rows are in random (not time-sorted) order.
  * A fraction --tie-frac of each view's rows are exact event-time ties: they
    copy (driver_id, event_timestamp) of another row of the same chunk, carry a
    created_timestamp 1 s .. 1 h later than that row's, and different feature
    values.  Point-in-time joins must pick the row with the latest
    created_timestamp.  (Ties may chain: a tie row can itself be copied.)
  * Entity rows: driver_id uniform over [1, entities], event_timestamp uniform
    over the same range at microsecond resolution, label in {0, 1}.  A
    fraction --boundary-frac of entity rows copy (driver_id, event_timestamp)
    of an actual view_0 row exactly, to exercise the inclusive
    "feature.event_timestamp <= entity.event_timestamp" boundary.  Entity rows
    are in random order.

The output depends only on the arguments (including --seed and --chunk-rows),
not on the machine: every chunk draws from its own numpy Generator seeded with
(seed, stream, chunk index).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GENERATOR_VERSION = 1
US_PER_S = 1_000_000
TS_TYPE = pa.timestamp("us", tz="UTC")

# stream ids for seeding (keep stable: changing them changes the data)
_STREAM_ENTITY = 1_000_000
_STREAM_VIEW = 0  # + view index


def _rng(seed: int, stream: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, chunk])


def _split(total: int, parts: int) -> list[int]:
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


def view_schema(view: int, features_per_view: int) -> pa.Schema:
    fields = [
        pa.field("driver_id", pa.int64(), nullable=False),
        pa.field("event_timestamp", TS_TYPE, nullable=False),
        pa.field("created_timestamp", TS_TYPE, nullable=False),
    ]
    fields += [pa.field(f"f{view}_{j}", pa.float64()) for j in range(features_per_view)]
    return pa.schema(fields)


ENTITY_SCHEMA = pa.schema(
    [
        pa.field("driver_id", pa.int64(), nullable=False),
        pa.field("event_timestamp", TS_TYPE, nullable=False),
        pa.field("label", pa.int64(), nullable=False),
    ]
)


def gen_view_chunk(
    *,
    seed: int,
    view: int,
    chunk: int,
    n: int,
    entities: int,
    start_s: int,
    span_s: int,
    features_per_view: int,
    tie_frac: float,
) -> tuple[pa.Table, int]:
    rng = _rng(seed, _STREAM_VIEW + view, chunk)
    driver = rng.integers(1, entities + 1, size=n, dtype=np.int64)
    ev_s = rng.integers(0, span_s, size=n, dtype=np.int64) + start_s
    ev_us = ev_s * US_PER_S
    cr_us = ev_us + rng.integers(0, 3600 * US_PER_S, size=n, dtype=np.int64)

    n_ties = int(round(n * tie_frac)) if n > 1 else 0
    if n_ties:
        # rows [n - n_ties, n) become ties of random earlier rows [0, n - n_ties)
        src = rng.integers(0, n - n_ties, size=n_ties)
        dst = np.arange(n - n_ties, n)
        driver[dst] = driver[src]
        ev_us[dst] = ev_us[src]
        cr_us[dst] = cr_us[src] + rng.integers(US_PER_S, 3600 * US_PER_S, size=n_ties, dtype=np.int64)
        # shuffle so tie rows are not all at the end of the chunk
        perm = rng.permutation(n)
        driver, ev_us, cr_us = driver[perm], ev_us[perm], cr_us[perm]

    cols = [
        pa.array(driver, pa.int64()),
        pa.array(ev_us, pa.int64()).cast(TS_TYPE),
        pa.array(cr_us, pa.int64()).cast(TS_TYPE),
    ]
    feats = rng.standard_normal((features_per_view, n))
    cols += [pa.array(feats[j]) for j in range(features_per_view)]
    return pa.Table.from_arrays(cols, schema=view_schema(view, features_per_view)), n_ties


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--entity-rows", type=int, default=1_000_000)
    p.add_argument("--feature-rows", type=int, default=10_000_000, help="total over all views")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--entities", type=int, default=100_000, help="distinct driver_id values")
    p.add_argument("--features-per-view", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=float, default=30.0, help="time span of the timestamps")
    p.add_argument("--start", default="2025-01-01T00:00:00+00:00", help="start of the time range (ISO, UTC)")
    p.add_argument("--tie-frac", type=float, default=0.01, help="fraction of feature rows that are exact event-time ties")
    p.add_argument("--boundary-frac", type=float, default=0.01,
                   help="fraction of entity rows whose timestamp equals a view_0 event timestamp of the same key")
    p.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per generated chunk / parquet row group")
    p.add_argument("--compression", default="snappy")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    a = p.parse_args(argv)

    if min(a.entity_rows, a.feature_rows, a.views, a.entities, a.features_per_view, a.chunk_rows) < 1:
        p.error("row counts, views, entities, features-per-view and chunk-rows must be >= 1")
    if not (0 <= a.tie_frac < 1 and 0 <= a.boundary_frac <= 1):
        p.error("--tie-frac must be in [0, 1), --boundary-frac in [0, 1]")

    start_dt = datetime.fromisoformat(a.start)
    if start_dt.tzinfo is None:
        start_dt = start_dt.replace(tzinfo=timezone.utc)
    start_s = int(start_dt.timestamp())
    span_s = max(1, int(a.days * 86400))

    os.makedirs(a.out_dir, exist_ok=True)
    t0 = time.perf_counter()

    view_rows = _split(a.feature_rows, a.views)
    views_meta = []
    boundary_pool: tuple[np.ndarray, np.ndarray] | None = None
    for v in range(a.views):
        path = os.path.join(a.out_dir, f"view_{v}.parquet")
        if os.path.exists(path) and not a.force:
            p.error(f"{path} exists (use --force)")
        if os.path.isdir(path):
            shutil.rmtree(path)
        schema = view_schema(v, a.features_per_view)
        total_ties = 0
        chunks = _split(view_rows[v], -(-view_rows[v] // a.chunk_rows))
        tv = time.perf_counter()
        with pq.ParquetWriter(path, schema, compression=a.compression) as w:
            for c, n in enumerate(chunks):
                tbl, n_ties = gen_view_chunk(
                    seed=a.seed, view=v, chunk=c, n=n, entities=a.entities,
                    start_s=start_s, span_s=span_s, features_per_view=a.features_per_view,
                    tie_frac=a.tie_frac,
                )
                total_ties += n_ties
                if v == 0 and c == 0:
                    boundary_pool = (
                        tbl.column("driver_id").to_numpy(),
                        tbl.column("event_timestamp").cast(pa.int64()).to_numpy(),
                    )
                w.write_table(tbl, row_group_size=a.chunk_rows)
                del tbl
        views_meta.append({
            "name": f"view_{v}",
            "path": f"view_{v}.parquet",
            "rows": view_rows[v],
            "row_groups": len(chunks),
            "tie_rows": total_ties,
            "features": [f"f{v}_{j}" for j in range(a.features_per_view)],
            "schema": {f.name: str(f.type) for f in schema},
            "bytes": os.path.getsize(path),
            "gen_seconds": round(time.perf_counter() - tv, 3),
        })
        print(f"view_{v}: {view_rows[v]} rows, {total_ties} ties, "
              f"{views_meta[-1]['bytes'] / 1e6:.1f} MB, {views_meta[-1]['gen_seconds']} s", file=sys.stderr)

    # entity dataframe
    path = os.path.join(a.out_dir, "entity.parquet")
    if os.path.exists(path) and not a.force:
        p.error(f"{path} exists (use --force)")
    te = time.perf_counter()
    n_boundary = 0
    assert boundary_pool is not None
    ent_chunks = _split(a.entity_rows, -(-a.entity_rows // a.chunk_rows))
    with pq.ParquetWriter(path, ENTITY_SCHEMA, compression=a.compression) as w:
        for c, n in enumerate(ent_chunks):
            rng = _rng(a.seed, _STREAM_ENTITY, c)
            driver = rng.integers(1, a.entities + 1, size=n, dtype=np.int64)
            ts_us = rng.integers(0, span_s * US_PER_S, size=n, dtype=np.int64) + start_s * US_PER_S
            label = rng.integers(0, 2, size=n, dtype=np.int64)
            # boundary rows: copy exact (driver_id, event_timestamp) of view_0 rows
            # (pool = view_0 chunk 0; sample without replacement per chunk, and
            # chunks sample disjoint-by-construction slices of a fixed permutation)
            nb = min(int(round(n * a.boundary_frac)), len(boundary_pool[0]))
            if nb:
                perm = _rng(a.seed, _STREAM_ENTITY + 1, 0).permutation(len(boundary_pool[0]))
                off = (c * nb) % max(1, len(perm) - nb + 1)
                pick = perm[off:off + nb]
                where = rng.choice(n, size=len(pick), replace=False)
                driver[where] = boundary_pool[0][pick]
                ts_us[where] = boundary_pool[1][pick]
                n_boundary += len(pick)
            tbl = pa.Table.from_arrays(
                [pa.array(driver), pa.array(ts_us).cast(TS_TYPE), pa.array(label)],
                schema=ENTITY_SCHEMA,
            )
            w.write_table(tbl, row_group_size=a.chunk_rows)
    entity_meta = {
        "path": "entity.parquet",
        "rows": a.entity_rows,
        "boundary_rows": n_boundary,
        "schema": {f.name: str(f.type) for f in ENTITY_SCHEMA},
        "bytes": os.path.getsize(path),
        "gen_seconds": round(time.perf_counter() - te, 3),
    }
    print(f"entity: {a.entity_rows} rows, {n_boundary} boundary rows, "
          f"{entity_meta['bytes'] / 1e6:.1f} MB", file=sys.stderr)

    end_dt = datetime.fromtimestamp(start_s + span_s, tz=timezone.utc)
    meta = {
        "generator": "bench/datagen.py",
        "generator_version": GENERATOR_VERSION,
        "params": {
            "entity_rows": a.entity_rows,
            "feature_rows": a.feature_rows,
            "views": a.views,
            "entities": a.entities,
            "features_per_view": a.features_per_view,
            "seed": a.seed,
            "days": a.days,
            "tie_frac": a.tie_frac,
            "boundary_frac": a.boundary_frac,
            "chunk_rows": a.chunk_rows,
            "compression": a.compression,
        },
        "entity_key": "driver_id",
        "driver_id_range": [1, a.entities],
        "time_range": {
            "start": datetime.fromtimestamp(start_s, tz=timezone.utc).isoformat(),
            "end_exclusive": end_dt.isoformat(),
        },
        "notes": [
            "feature event_timestamp: whole seconds, uniform in [start, end)",
            "created_timestamp = event_timestamp + U(0, 1h); tie rows: same (driver_id, event_timestamp) "
            "as another row of the view, created_timestamp 1s..1h later, different feature values",
            "entity event_timestamp: microseconds, uniform in [start, end); boundary rows equal a view_0 "
            "event_timestamp of the same driver_id",
            "rows are in random order; no null values",
            "point-in-time semantics expected: latest feature row with event_timestamp <= entity "
            "event_timestamp, ties broken by latest created_timestamp; no TTL",
        ],
        "entity": entity_meta,
        "views": views_meta,
        "total_seconds": round(time.perf_counter() - t0, 3),
    }
    with open(os.path.join(a.out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"done in {meta['total_seconds']} s -> {a.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

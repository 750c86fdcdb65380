"""The dead-letter location: records a stream consumer could not decode or validate, each with its error, as JSON
lines under ``<root>/<view>/``. Never dropped, never blocking the stream: the micro-batch's good records go on.

A file is named by the shard and the position of its first record, so a micro-batch replayed after a crash rewrites
the same file instead of adding a second copy. ``root`` is a local folder (default: ``dead-letter/`` in the repo).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from .source import StreamRecord


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


class DeadLetter:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def write(self, view: str, records: list[tuple[str, StreamRecord]]) -> list[Path]:
        """Write ``records`` ((shard, record) pairs), one file per shard; returns the files."""
        by_shard: dict[str, list[StreamRecord]] = {}
        for shard, rec in records:
            by_shard.setdefault(shard, []).append(rec)
        out = []
        folder = self.root / view
        folder.mkdir(parents=True, exist_ok=True)
        at = datetime.now(timezone.utc).isoformat()
        for shard, recs in by_shard.items():
            # Shard ids and positions are opaque text: hashed into the name, written in full inside.
            key = hashlib.sha256(f"{shard}\0{recs[0].position}".encode()).hexdigest()[:24]
            path = folder / f"{key}.jsonl"
            lines = [json.dumps({"shard": shard, "position": r.position, "error": r.error, "at": at,
                                 "value": r.value,
                                 "raw": base64.b64encode(r.raw).decode() if r.raw is not None else None},
                                default=_plain) for r in recs]
            tmp = path.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, path)  # whole or absent
            out.append(path)
        return out

    def read(self, view: str) -> list[dict]:
        """Every dead-lettered record of ``view`` (for tests and `skewless stream --show-dead-letter`)."""
        folder = self.root / view
        return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()
                if line.strip()]

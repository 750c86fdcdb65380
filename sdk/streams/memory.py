"""An in-memory stream (``memory://NAME``): shards of decoded records in a process, for tests and benchmarks of the
consumer without a stream service. Positions are record indexes as text. A shard can be given as JSON lines in a
folder (``memory:///PATH``: one ``<shard>.jsonl`` per shard), so a subprocess sees the same records."""

from __future__ import annotations

import json
from pathlib import Path

from .source import ReadBatch, StreamRecord, StreamSource


class MemorySource(StreamSource):
    def __init__(self, shards: dict[str, list[dict | bytes]] | None = None, name: str = "memory"):
        self.name = name
        self._shards = shards or {}

    @classmethod
    def from_folder(cls, folder: str | Path) -> "MemorySource":
        shards: dict[str, list] = {}
        for f in sorted(Path(folder).glob("*.jsonl")):
            shards[f.stem] = [line.encode() for line in f.read_text().splitlines() if line]
        return cls(shards, name=str(folder))

    def shards(self) -> list[str]:
        return list(self._shards)

    def read(self, shard: str, after: str | None, max_records: int) -> ReadBatch:
        items = self._shards[shard]
        start = 0 if after is None else int(after) + 1
        stop = min(len(items), start + max_records)
        if not any(isinstance(item, bytes) for item in items[start:stop]):  # decoded already: no per-record branch
            out = [StreamRecord(str(i), item) for i, item in zip(range(start, stop), items[start:stop])]
            return ReadBatch(out, out[-1].position if out else after,
                             behind_latest_ms=0 if stop >= len(items) else None)
        out = []
        for i in range(start, stop):
            item = items[i]
            if isinstance(item, bytes):
                try:
                    value = json.loads(item)
                    if not isinstance(value, dict):
                        raise ValueError("not a JSON object")
                    out.append(StreamRecord(str(i), value))
                except ValueError as exc:
                    out.append(StreamRecord(str(i), None, raw=item, error=f"undecodable JSON: {exc}"))
            else:
                out.append(StreamRecord(str(i), item))
        nxt = out[-1].position if out else after
        return ReadBatch(out, nxt, behind_latest_ms=0 if start + len(out) >= len(items) else None)


def from_url(url: str, repo_path=None, options: dict | None = None) -> MemorySource:
    return MemorySource.from_folder(url.split("://", 1)[1])

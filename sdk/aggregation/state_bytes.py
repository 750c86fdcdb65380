"""Marshal bytes of many tile states at once, built as numpy byte columns (no Python object per tile).

``tile_states`` computes the fields of every fast tile as numpy arrays; this module writes them in ``marshal``'s own
format (version 4 without back-references: ``)`` small tuples, ``i``/``l`` ints, ``g`` binary floats, ``T``/``F``/
``N``), so ``marshal.loads`` gives exactly the tuple ``partials.state_of`` builds and the stored layout, the reads
and the other stores do not change. A row is the concatenation of pieces, each a byte matrix with a length per row
(shorter values are padded in the matrix and cut when rows are packed); pieces that are Python bytes per row (a
``last_k`` tuple, rare) are joined by Arrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BIN = pa.large_binary()
_INT32_LO, _INT32_HI = -(2 ** 31), 2 ** 31
_DIGITS = 5  # 15-bit digits of marshal's long: 5 cover 64 bits


class Rows:
    """The marshal bytes of ``n`` values built piece by piece, left to right."""

    def __init__(self, n: int):
        self.n = n
        self.pieces: list = []  # (matrix (n, w) uint8, lengths (n,) or None: all w) or an Arrow binary array

    def const(self, b: bytes) -> None:
        self.pieces.append((np.broadcast_to(np.frombuffer(b, np.uint8), (self.n, len(b))), None))

    def tuple_head(self, size: int) -> None:
        self.const(bytes((ord(")"), size)) if size < 256 else b"(" + size.to_bytes(4, "little"))

    def ints(self, v: np.ndarray, has: np.ndarray | None = None) -> None:
        """int64 values as Python ints (marshal's TYPE_INT when they fit 32 bits, else TYPE_LONG); None where
        ``has`` is False."""
        v = v.astype(np.int64, copy=False)
        small = (v >= _INT32_LO) & (v < _INT32_HI)
        if has is not None:
            small |= ~has
        if small.all():  # TYPE_INT only: a narrower matrix
            mat = np.empty((self.n, 5), np.uint8)
            mat[:, 0] = ord("i")
            mat[:, 1:] = v.astype("<i4").view(np.uint8).reshape(-1, 4)
            self._opt(mat, None, has)
            return
        neg = v < 0
        mag = np.where(neg, (-(v + 1)).astype(np.uint64) + np.uint64(1), v.astype(np.uint64))
        shifted = [mag >> np.uint64(15 * k) for k in range(_DIGITS)]
        ndig = sum((x > 0).astype(np.int64) for x in shifted)
        width = int(ndig[~small].max())
        mat = np.empty((self.n, 5 + 2 * width), np.uint8)
        mat[:, 0] = np.where(small, ord("i"), ord("l"))
        mat[:, 1:5] = np.where(small[:, None], v.astype("<i4").view(np.uint8).reshape(-1, 4),
                               np.where(neg, -ndig, ndig).astype("<i4").view(np.uint8).reshape(-1, 4))
        digits = np.stack([x[:] & np.uint64(0x7FFF) for x in shifted[:width]], axis=1)
        mat[:, 5:] = digits.astype("<u2").view(np.uint8).reshape(-1, 2 * width)
        self._opt(mat, np.where(small, 5, 5 + 2 * ndig), has)

    def floats(self, v: np.ndarray, has: np.ndarray | None = None) -> None:
        """float64 values (marshal's binary float); None where ``has`` is False."""
        mat = np.empty((self.n, 9), np.uint8)
        mat[:, 0] = ord("g")
        mat[:, 1:] = v.astype("<f8").view(np.uint8).reshape(-1, 8)
        self._opt(mat, None, has)

    def bools(self, b: np.ndarray) -> None:
        self.pieces.append((np.where(b, ord("T"), ord("F")).astype(np.uint8).reshape(-1, 1), None))

    def blobs(self, values: list[bytes]) -> None:
        """Python bytes per row, each a whole marshal value without back-references (``marshal.dumps(x, 2)``)."""
        self.pieces.append(pa.array(values, BIN))

    def _opt(self, mat: np.ndarray, lens: np.ndarray | None, has: np.ndarray | None) -> None:
        if has is not None and not has.all():
            mat[~has, 0] = ord("N")
            lens = np.where(has, mat.shape[1] if lens is None else lens, 1)
        self.pieces.append((mat, lens))

    def build(self) -> pa.Array:
        """The bytes of each row (a large_binary array)."""
        parts, run = [], []
        for p in self.pieces:
            if isinstance(p, tuple):
                run.append(p)
                continue
            if run:
                parts.append(_pack(run, self.n))
                run = []
            parts.append(p)
        if run:
            parts.append(_pack(run, self.n))
        if len(parts) == 1:
            return parts[0]
        return pc.binary_join_element_wise(*parts, pa.scalar(b"", BIN))


def _pack(pieces: list, n: int) -> pa.Array:
    """Matrix pieces side by side, each row cut to its pieces' lengths, as one binary array."""
    mat = np.concatenate([np.ascontiguousarray(m) for m, _ in pieces], axis=1)
    masks, lens = [], np.zeros(n, np.int64)
    for m, ln in pieces:
        w = m.shape[1]
        masks.append(np.ones((n, w), bool) if ln is None else np.arange(w) < ln[:, None])
        lens += w if ln is None else ln
    data = mat[np.concatenate(masks, axis=1)]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    return pa.Array.from_buffers(BIN, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])

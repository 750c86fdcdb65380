"""Marshal bytes of many tile states at once, built as numpy byte columns (no Python object per tile).

``tile_states`` computes the fields of every fast tile as numpy arrays; this module writes them in ``marshal``'s own
format (version 4 without back-references: ``)`` small tuples, ``i``/``l`` ints, ``g`` binary floats, ``T``/``F``/
``N``), so ``marshal.loads`` gives exactly the tuple ``partials.state_of`` builds and the stored layout, the reads
and the other stores do not change. A row is the concatenation of pieces, each a byte matrix with a length per row
(shorter values are padded in the matrix and cut when rows are packed); pieces that are Python bytes per row (a
``last_k`` tuple, rare) are joined by Arrow. A store that frames its own writes (Redis's RESP) adds its pieces
around a batch's state pieces (``decimal``, ``padded``, ``extend``) and packs frame and state in one pass.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BIN = pa.large_binary()
_INT32_LO, _INT32_HI = -(2 ** 31), 2 ** 31
_DIGITS = 5  # 15-bit digits of marshal's long: 5 cover 64 bits
_DIGIT_SHIFTS = np.arange(0, 15 * _DIGITS, 15, dtype=np.uint64)
_DIGIT_TOPS = np.array([1 << (15 * k) for k in range(1, _DIGITS)], np.uint64)  # a value >= 2**(15k): > k digits
_POW10 = 10 ** np.arange(19, dtype=np.uint64)  # ASCII decimals: every uint64 below 10**19 ...
_POW10_TOP = np.uint64(10 ** 19)  # ... and those at or above it (20 digits)


class Rows:
    """The marshal bytes of ``n`` values built piece by piece, left to right."""

    def __init__(self, n: int):
        self.n = n
        self.pieces: list = []  # (matrix (n, w) uint8, lengths (n,) or None: all w) or an Arrow binary array

    def const(self, b: bytes) -> None:
        """The same bytes in every row."""
        self.pieces.append((np.broadcast_to(np.frombuffer(b, np.uint8), (self.n, len(b))), None))

    def decimal(self, v: np.ndarray) -> None:
        """int64 values as ASCII decimal digits (a ``-`` before negative ones), as RESP and field names spell them."""
        lut = _lut(v)
        if lut is not None:  # few distinct values (lengths, counts, levels): each spelled once, rows gathered
            lo, table = lut
            table.decimal(np.arange(lo, lo + table.n, dtype=np.int64))
            mat, lens = table.pieces[0]
            at = v - lo
            self._opt(mat[at], None if lens is None else lens[at], None)
            return
        neg, mag, nd = _magnitude(v)
        lens = nd + neg
        width = int(lens.max()) if self.n else 1
        mat = np.empty((self.n, width), np.uint8)
        q = mag.astype(np.uint32) if self.n and int(mag.max()) < 2 ** 32 else mag  # narrower: faster division
        for j in range(width - 1, -1, -1):  # right-aligned first: a division by a constant per column
            mat[:, j] = q % 10
            q = q // 10
        mat += ord("0")
        if neg.any():
            mat[np.flatnonzero(neg), width - lens[neg]] = ord("-")
        short = np.flatnonzero(lens < width)
        if len(short):  # left-align the shorter values (few: values of one column mostly share their length)
            shift = np.minimum(np.arange(width) + (width - lens[short])[:, None], width - 1)
            mat[short] = np.take_along_axis(mat[short], shift, axis=1)
        self._opt(mat, lens, None)

    def padded(self, mat: np.ndarray, lens: np.ndarray | None) -> None:
        """A piece given as a byte matrix (rows padded) and each row's length (None: the full width)."""
        self._opt(mat, lens, None)

    def extend(self, other: "Rows") -> None:
        """``other``'s pieces (the same rows) after these."""
        assert other.n == self.n
        self.pieces.extend(other.pieces)

    def lengths(self) -> np.ndarray:
        """Each row's length in bytes so far."""
        out = np.zeros(self.n, np.int64)
        for p in self.pieces:
            if isinstance(p, tuple):
                out += p[0].shape[1] if p[1] is None else p[1]
            else:
                out += pc.binary_length(p).to_numpy(zero_copy_only=False)
        return out

    @property
    def packable(self) -> bool:
        """Whether every piece is a byte matrix (no Python bytes to join with Arrow)."""
        return all(isinstance(p, tuple) for p in self.pieces)

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows as one byte matrix, each left-aligned and padded, and their lengths (every piece a matrix)."""
        return _matrix(self.pieces, self.n)

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
            _copy_rows(mat[:, 1:], v.astype("<i4").view(np.uint8).reshape(-1, 4))
            self._opt(mat, None, has)
            return
        neg = v < 0
        mag = np.abs(v).view(np.uint64)  # (|int64 min| wraps to itself: 2**63 as uint64, right)
        mixed = bool(small.any())
        if not mixed and not neg.any():  # one digit count for all (times, batch ids): one head for every row
            lo, hi = (int(np.searchsorted(_DIGIT_TOPS, x, side="right")) + 1 for x in (mag.min(), mag.max()))
            if lo == hi:
                mat = np.empty((self.n, 5 + 2 * hi), np.uint8)
                mat[:, :5] = np.frombuffer(b"l" + hi.to_bytes(4, "little"), np.uint8)
                digits = (mag[:, None] >> _DIGIT_SHIFTS[:hi]) & np.uint64(0x7FFF)
                _copy_rows(mat[:, 5:], digits.astype("<u2").view(np.uint8).reshape(-1, 2 * hi))
                self._opt(mat, None, has)
                return
        ndig = np.searchsorted(_DIGIT_TOPS, mag, side="right") + 1  # 15-bit digits (ints here are >= 2**31)
        width = int(ndig[~small].max() if mixed else ndig.max())
        mat = np.empty((self.n, 5 + 2 * width), np.uint8)
        mat[:, 0] = np.where(small, ord("i"), ord("l")) if mixed else ord("l")
        head = np.where(neg, -ndig, ndig)
        mat[:, 1:5] = (np.where(small, v, head) if mixed else head).astype("<i4").view(np.uint8).reshape(-1, 4)
        digits = (mag[:, None] >> _DIGIT_SHIFTS[:width]) & np.uint64(0x7FFF)  # (digits past ndig: zeros, cut)
        mat[:, 5:] = digits.astype("<u2").view(np.uint8).reshape(-1, 2 * width)
        self._opt(mat, np.where(small, 5, 5 + 2 * ndig) if mixed else 5 + 2 * ndig, has)

    def floats(self, v: np.ndarray, has: np.ndarray | None = None) -> None:
        """float64 values (marshal's binary float); None where ``has`` is False."""
        mat = np.empty((self.n, 9), np.uint8)
        mat[:, 0] = ord("g")
        _copy_rows(mat[:, 1:], v.astype("<f8").view(np.uint8).reshape(-1, 8))
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
        if lens is not None and self.n and (lens == lens[0]).all():  # one length after all: a fixed piece
            mat, lens = mat[:, :int(lens[0])], None
        self.pieces.append((mat, lens))

    def build(self) -> pa.Array:
        """The bytes of each row (a large_binary array)."""
        parts, run = [], []
        for p in self.pieces:
            if isinstance(p, tuple):
                run.append(p)
                continue
            if run:
                parts += _pack(run, self.n)
                run = []
            parts.append(p)
        if run:
            parts += _pack(run, self.n)
        if len(parts) == 1:
            return parts[0]
        return pc.binary_join_element_wise(*parts, pa.scalar(b"", BIN))


def _copy_rows(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[:] = src`` for byte matrices whose rows are contiguous: one item of the row's width per row (a void
    view), not byte by byte (``dst``'s rows are a column range of a wider matrix, so numpy would copy bytes)."""
    w = src.shape[1]
    if w and len(src) and dst.strides[1] == 1 and src.strides[1] == 1:
        dst.view(f"V{w}")[:, 0] = src.view(f"V{w}")[:, 0]
    else:
        dst[:] = src


def _magnitude(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of int64 values: which are negative, their magnitudes (uint64) and decimal digit counts."""
    v = v.astype(np.int64, copy=False)
    neg = v < 0
    mag = np.where(neg, (-(v + 1)).astype(np.uint64) + np.uint64(1), v.astype(np.uint64))
    nd = np.searchsorted(_POW10, mag, side="right").astype(np.int64)  # 1 <= 10**k <= mag: k + 1 digits; 0 for 0
    return neg, mag, np.maximum(nd, 1) + (mag >= _POW10_TOP)


def decimal_width(v: np.ndarray) -> np.ndarray:
    """The length of each int64 value written in decimal (``Rows.decimal``)."""
    lut = _lut(v)
    if lut is not None:
        lo, table = lut
        return decimal_width(np.arange(lo, lo + table.n, dtype=np.int64))[v - lo]
    neg, _, nd = _magnitude(v)
    return nd + neg


def _lut(v: np.ndarray) -> tuple[int, Rows] | None:
    """For values spanning a range of at most an eighth of their number: (its low end, a ``Rows`` of its size), so
    the range is computed once and gathered, instead of every value computed (a division per digit per value)."""
    if len(v) < 64:
        return None
    lo, hi = int(v.min()), int(v.max())
    return (lo, Rows(hi - lo + 1)) if hi - lo < len(v) // 8 else None


_SPLIT_TAIL = 32  # bytes of fixed pieces after the last varying one that are packed apart (``_pack``)
_BLOCK = 4096  # rows packed at a time: the block's matrix stays in cache while every piece is written into it


def _pack(pieces: list, n: int) -> list[pa.Array]:
    """Matrix pieces side by side, each row cut to its pieces' lengths, as binary arrays to be joined row by row
    (``build`` joins every part with Arrow at once). The pieces after the last one of varying length are packed
    apart, without a mask (a fixed width): cutting rows to their lengths is a byte-wise compress whose cost grows
    with the width it runs over, and the varying pieces (a frame's head) come first and are narrow."""
    last = max((i for i, (_, ln) in enumerate(pieces) if ln is not None), default=-1)
    tail = sum(m.shape[1] for m, _ in pieces[last + 1:])
    if last < 0 or tail < _SPLIT_TAIL:
        return [_pack_block(pieces, n)]
    return [_pack_block(pieces[:last + 1], n), _pack_block(pieces[last + 1:], n)]


def _pack_block(pieces: list, n: int) -> pa.Array:
    """``_pack`` in one matrix. Block by block of rows: each piece is a pass over the matrix, so a matrix of all
    rows would go through memory once per piece. Constant pieces (the same bytes in every row) are laid down once
    per block with a template row; the others are copied as one item of their width per row (a void view), not
    byte by byte."""
    lens = np.zeros(n, np.int64)
    for m, ln in pieces:
        lens += m.shape[1] if ln is None else ln
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    fixed = all(ln is None for _, ln in pieces)
    at = np.cumsum([0] + [m.shape[1] for m, _ in pieces]).tolist()
    template = np.zeros(at[-1], np.uint8)
    rows = []  # (column, piece) of the pieces that differ by row
    for (m, _), p in zip(pieces, at):
        if n and m.strides[0] == 0:  # broadcast: one row's bytes
            template[p:p + m.shape[1]] = m[0]
        else:
            rows.append((p, m))
    data = np.empty(int(offsets[-1]), np.uint8)
    for lo in range(0, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        mat = np.empty((hi - lo, at[-1]), np.uint8)
        mat[:] = template
        for p, m in rows:
            w = m.shape[1]
            src = m[lo:hi]
            if w and src.strides[1] == 1:  # each row's bytes contiguous: copied as one item of w bytes
                mat[:, p:p + w].view(f"V{w}")[:, 0] = src.view(f"V{w}")[:, 0]
            else:
                mat[:, p:p + w] = src
        if fixed:  # every row as wide as the matrix: its bytes as they are
            data[offsets[lo]:offsets[hi]] = mat.reshape(-1)
            continue
        keep = np.ones(mat.shape, bool)
        for (m, ln), p in zip(pieces, at):
            if ln is not None:
                w = m.shape[1]
                keep[:, p:p + w] = np.arange(w) < ln[lo:hi, None]
        data[offsets[lo]:offsets[hi]] = mat[keep]
    return pa.Array.from_buffers(BIN, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _matrix(pieces: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrix pieces packed left-aligned into one padded matrix, and the rows' lengths."""
    width = sum(m.shape[1] for m, _ in pieces)
    mat = np.zeros((n, width), np.uint8)
    lens = np.zeros(n, np.int64)
    rows = np.arange(n)
    for m, ln in pieces:
        w = m.shape[1]
        if ln is None:
            if (lens == lens[0]).all() if n else True:
                at = int(lens[0]) if n else 0
                mat[:, at:at + w] = m
            else:
                mat[rows[:, None], lens[:, None] + np.arange(w)] = m
            lens = lens + w
        else:
            cols = lens[:, None] + np.arange(w)
            ok = np.arange(w) < ln[:, None]
            mat[np.broadcast_to(rows[:, None], (n, w))[ok], cols[ok]] = np.broadcast_to(m, (n, w))[ok]
            lens = lens + ln
    return mat, lens

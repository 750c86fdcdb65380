"""An HLL sketch of a whole Arrow string column in a few numpy passes, identical to feeding every value.

DataSketches' ``hll_sketch.update(str)`` hashes the value's UTF-8 bytes with MurmurHash3_x64_128 (seed 9001) and
keeps, per register (the hash's low ``lg_k`` bits), the largest rank (leading zeros of the second half, + 1).
Feeding a million distinct values one Python call at a time costs far more than the rest of an ingest; here the
hashes are computed vectorised, and only one value per register is fed: one with that register's smallest second
half, so its largest rank. Once the sketch is in HLL mode, its registers are exactly those of feeding every value.
Its incremental (HIP) estimate would not be, so the sketch is marked out of order, as DataSketches marks a union of
several sketches: estimates come from the registers alone, the same for both. Small inputs (the sketch could still
be a list of coupons) are fed value by value instead.
"""

from __future__ import annotations

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEED = 9001  # DataSketches' DEFAULT_SEED
_C1, _C2 = np.uint64(0x87C37B91114253D5), np.uint64(0x4CF5AD432745937F)
_MASK = [np.uint64((1 << (8 * t)) - 1) for t in range(8)] + [np.uint64(0xFFFFFFFFFFFFFFFF)]  # low t bytes
_CHUNK = 16_384  # values hashed together (each array 128 KiB: the ~40 passes over them stay in cache)
_OUT_OF_ORDER = 16  # the preamble's flags byte (5): estimates from registers only, as after a union
# Below this many registers set, feed value by value: a sketch that saw fewer coupons may still be in list/set
# mode, where every coupon (26 address bits, not lg_k) counts.
_MIN_REGISTERS = 1024


# The hash runs as whole-array numpy operations, in place with one scratch array (temporaries would double its cost).
def _rotl(x: np.ndarray, r: int, tmp: np.ndarray) -> None:
    np.left_shift(x, np.uint64(r), out=tmp)
    x >>= np.uint64(64 - r)
    x |= tmp


def _fmix(k: np.ndarray, tmp: np.ndarray) -> None:
    for mult in (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)):
        np.right_shift(k, np.uint64(33), out=tmp)
        k ^= tmp
        k *= mult
    np.right_shift(k, np.uint64(33), out=tmp)
    k ^= tmp


def _mix(k: np.ndarray, first: np.uint64, r: int, second: np.uint64, tmp: np.ndarray) -> np.ndarray:
    k *= first
    _rotl(k, r, tmp)
    k *= second
    return k


def _groups(lengths: np.ndarray):
    """(length, rows) of the values of each length, in chunks small enough for the arrays to stay in cache."""
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        for i in range(0, len(rows), _CHUNK):
            yield length, rows[i:i + _CHUNK]


def murmur3(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """MurmurHash3_x64_128 (seed 9001) of each value's bytes of a string array without nulls: (h1, h2)."""
    n = len(arr)
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_type)[arr.offset:arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    # The bytes as overlapping little-endian 64-bit words, one starting at every byte: a value's 8-byte blocks are
    # gathered by their offsets (no per-byte work); zeros after the last value keep every word in range.
    end = int(offsets[-1]) if n else 0
    padded = np.concatenate([data[:end], np.zeros(24, np.uint8)])
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    h1, h2 = np.empty(n, np.uint64), np.empty(n, np.uint64)
    with np.errstate(over="ignore"):
        for length, rows in _groups(lengths):
            starts = offsets[rows]
            a = np.full(len(rows), _SEED, np.uint64)
            b = a.copy()
            tmp = np.empty_like(a)
            full = length // 16
            for i in range(full):
                a ^= _mix(words[starts + 16 * i], _C1, 31, _C2, tmp)
                _rotl(a, 27, tmp)
                a += b
                a *= np.uint64(5)
                a += np.uint64(0x52DCE729)
                b ^= _mix(words[starts + 16 * i + 8], _C2, 33, _C1, tmp)
                _rotl(b, 31, tmp)
                b += a
                b *= np.uint64(5)
                b += np.uint64(0x38495AB5)
            tail, base = length % 16, starts + 16 * full
            if tail > 8:  # the tail's bytes 8.. (the word's bytes past the value masked off)
                b ^= _mix(words[base + 8] & _MASK[tail - 8], _C2, 33, _C1, tmp)
            if tail > 0:
                a ^= _mix(words[base] & _MASK[min(tail, 8)], _C1, 31, _C2, tmp)
            a ^= np.uint64(length)
            b ^= np.uint64(length)
            a += b
            b += a
            _fmix(a, tmp)
            _fmix(b, tmp)
            a += b
            b += a
            h1[rows], h2[rows] = a, b
    return h1, h2


def _mark_out_of_order(sk: "ds.hll_sketch") -> "ds.hll_sketch":
    raw = bytearray(sk.serialize_updatable())
    raw[5] |= _OUT_OF_ORDER
    return ds.hll_sketch.deserialize(bytes(raw))


def prepare(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values an HLL sketch sees: non-null, non-empty (DataSketches ignores empty strings), in one array whose
    offsets start at 0."""
    values = pc.drop_null(values)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_string_view(values.type):
        values = pc.cast(values, pa.large_string())
    if len(values) and pc.min(pc.binary_length(values)).as_py() == 0:
        values = values.filter(pc.greater(pc.binary_length(values), 0))
    return pa.concat_arrays([values]) if values.offset else values


def sketch(values: pa.Array, lg_k: int, hashes: tuple[np.ndarray, np.ndarray] | None = None,
           tgt=ds.HLL_4) -> "ds.hll_sketch":
    """The HLL sketch of ``values`` (``prepare``d), as if each were fed with ``update(str)``; ``hashes``: their
    ``murmur3`` when already computed."""
    sk = ds.hll_sketch(lg_k, tgt)
    if len(values) > 4 * _MIN_REGISTERS:
        h1, h2 = hashes if hashes is not None else murmur3(values)
        slot = (h1 & np.uint64((1 << lg_k) - 1)).astype(np.intp)
        # A register keeps the largest rank (leading zeros of h2, + 1) of its values: that of the smallest h2.
        best = np.full(1 << lg_k, np.iinfo(np.uint64).max, np.uint64)
        np.minimum.at(best, slot, h2)
        top = np.flatnonzero(h2 == best[slot])
        _, first = np.unique(slot[top], return_index=True)
        if len(first) >= _MIN_REGISTERS:
            for v in values.take(pa.array(top[first])).to_pylist():
                sk.update(v)
            return _mark_out_of_order(sk)
        values = pc.unique(values)
    for v in values.to_pylist():
        sk.update(v)
    return _mark_out_of_order(sk)

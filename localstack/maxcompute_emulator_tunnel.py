"""Tunnel bodies of the local MaxCompute emulator, encoded and decoded with pyodps's own codecs, so the bytes are
the ones pyodps writes and expects:

- records: protobuf records with a CRC32C per record and one over the block (``odps.tunnel.io`` reader/writer);
  the reader checks both CRCs, so a corrupt block fails the PUT;
- Arrow: pyodps's chunked framing (a chunk size, then chunks each followed by its CRC32C, the last one by the CRC
  of all data) around Arrow IPC record batches without the schema message. The instance tunnel sends TIMESTAMP
  columns as ``struct<sec: int64, nano: int32>``, as MaxCompute does; the table tunnel as ``timestamp[ns]``.

Times on the wire are UTC epoch values; this process decodes them as UTC (``options.local_timezone = False``).
"""

from __future__ import annotations

import io
import zlib

import pyarrow as pa
import pyarrow.compute as pc
from odps import options
from odps.errors import ChecksumError
from odps.models import Record, TableSchema
from odps.tunnel.io.reader import ArrowStreamReader, TunnelRecordReader
from odps.tunnel.io.types import TIMESTAMP_STRUCT_TYPE, odps_schema_to_arrow_schema
from odps.tunnel.io.writer import BaseArrowWriter, BaseRecordWriter

options.local_timezone = False  # this process speaks UTC: values are epoch instants, stored as UTC wall times


class TunnelBodyError(Exception):
    """A body that does not decode: wrong format, bad CRC, wrong schema."""


class _Sink(io.BytesIO):
    def close(self):  # the writers close their output; keep the bytes readable
        pass


def decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding:
        return body
    if encoding.lower() == "deflate":
        return zlib.decompress(body)
    raise TunnelBodyError(f"Content-Encoding {encoding} is not supported by the local MaxCompute emulator "
                          "(send uncompressed or deflate)")


def _data_schema(schema: TableSchema) -> TableSchema:
    return TableSchema.from_lists([c.name for c in schema.simple_columns], [str(c.type) for c in schema.simple_columns])


def empty(schema: TableSchema) -> pa.Table:
    return odps_schema_to_arrow_schema(_data_schema(schema)).empty_table()


def decode_records(schema: TableSchema, body: bytes) -> pa.Table:
    """A record block (as ``RecordWriter`` uploads it) -> the data columns as Arrow."""
    data = _data_schema(schema)
    reader = TunnelRecordReader(data, lambda cursor, *a, **k: io.BytesIO(body) if cursor == 0 else None)
    rows = []
    try:
        for rec in reader:
            rows.append(rec.values)
    except (ChecksumError, OSError, ValueError, TypeError) as exc:
        raise TunnelBodyError(f"bad record block: {type(exc).__name__}: {exc}") from exc
    arrow_schema = odps_schema_to_arrow_schema(data)
    cols = list(zip(*rows)) if rows else [[] for _ in arrow_schema]
    try:
        return pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(cols, arrow_schema)],
                                    schema=arrow_schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TunnelBodyError(f"record values do not fit the table schema: {exc}") from exc


def decode_arrow(schema: TableSchema, body: bytes) -> pa.Table:
    """An Arrow block (as ``ArrowWriter`` uploads it) -> the data columns as Arrow; checks every CRC."""
    arrow_schema = odps_schema_to_arrow_schema(_data_schema(schema))
    if not body:
        return arrow_schema.empty_table()
    try:
        stream = pa.ipc.open_stream(ArrowStreamReader(io.BytesIO(body), arrow_schema))
        return pa.Table.from_batches(list(stream), schema=arrow_schema)
    except (ChecksumError, pa.ArrowInvalid, OSError) as exc:
        raise TunnelBodyError(f"bad Arrow block: {type(exc).__name__}: {exc}") from exc


def encode_records(schema: TableSchema, table: pa.Table) -> bytes:
    """Rows as a record stream in the column order of ``schema`` (the reader matches fields by position)."""
    data = _data_schema(schema)
    table = _conform(data, table)
    out = _Sink()
    writer = BaseRecordWriter(data, out)
    cols = [c.to_pylist() for c in table.columns]  # nanosecond timestamps come back as exact pandas Timestamps
    for row in zip(*cols):
        writer.write(Record(schema=data, values=list(row)))
    writer.close()
    return out.getvalue()


def encode_arrow(schema: TableSchema, table: pa.Table, timestamp_as_struct: bool) -> bytes:
    """Record batches in pyodps's chunked framing; the client supplies the schema message itself."""
    table = _conform(_data_schema(schema), table)
    if timestamp_as_struct:
        table = _struct_timestamps(table)
    out = _Sink()
    writer = BaseArrowWriter(_data_schema(schema), out)
    for batch in table.to_batches():
        # pyodps's framing only (its ``write`` would also convert values, which are wire-ready here): the stream is
        # cut into chunks of exactly ``chunk_size`` bytes, each followed by its CRC, whatever the batch boundaries
        data = batch.serialize().to_pybytes()
        pos = 0
        while pos < len(data):
            n = min(writer._chunk_size - writer._cur_chunk_size, len(data) - pos)
            writer._write_chunk(data[pos:pos + n])
            pos += n
    writer.close()
    return out.getvalue()


def _conform(data: TableSchema, table: pa.Table) -> pa.Table:
    target = odps_schema_to_arrow_schema(data)
    return pa.Table.from_arrays([c if c.type == f.type else pc.cast(c, f.type) for c, f in zip(table.columns, target)],
                                schema=target)


def _struct_timestamps(table: pa.Table) -> pa.Table:
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type) and col.type.unit == "ns":
            pairs = [None if v is None else divmod(v, 10**9) for v in pc.cast(col, pa.int64()).to_pylist()]
            # null children too: the reader adds sec*1e9 + nano from the children, ignoring the struct's validity
            sec = pa.array([p and p[0] for p in pairs], pa.int64())
            nano = pa.array([p and p[1] for p in pairs], pa.int32())
            col = pa.StructArray.from_arrays([sec, nano], fields=list(TIMESTAMP_STRUCT_TYPE),
                                             mask=pa.array([p is None for p in pairs]))
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)

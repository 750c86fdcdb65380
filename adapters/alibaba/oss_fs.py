"""A pyarrow filesystem over oss2, for engines that scan history files on OSS (``HistoryFiles.filesystem``) and for
batch sources, entity tables and training sets at ``oss://`` URLs (``source_from_url``).

Paths are ``bucket/key``, as the DuckDB engine hands them over (``oss://`` stripped). Opening a file reads nothing;
each read is one ranged GET, so Parquet scans fetch the footer and the column chunks they need, not whole files.
Sizes known from the Delta log are used as they are (no HEAD per file). Listing (a selector) is one paged
LIST. Writing is one output stream per object, spooled to a local temporary file and uploaded with oss2's resumable
(multipart) upload on close, so a training set larger than memory streams out; the offline store never writes
through it (it has its own commit protocol).

Why not ``ossfs`` (fsspec, wrapped in ``FSSpecHandler``): its current release pins ``oss2==2.18.4`` (skewless pins
2.19.1) and brings an asyncio stack (aiooss2, aiohttp) that nothing else here needs, for the two calls used here.
"""

from __future__ import annotations

import io
import tempfile
import threading
from pathlib import Path

import oss2
import pyarrow as pa
from pyarrow import fs as pafs

from .oss import OSSLocation, OSSSession


class _RangeReader(io.RawIOBase):
    """A seekable file whose reads are ranged GETs (pyarrow wraps it with ``PythonFile``)."""

    def __init__(self, oss: OSSSession, key: str, size: int):
        self.oss, self.key, self.size, self.pos = oss, key, size, 0
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def read(self, n: int = -1) -> bytes:
        with self._lock:
            end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
            if end <= self.pos:
                return b""
            data = self.oss.call(f"reading oss://{self.oss.bucket_name}/{self.key}", lambda: self.oss.bucket.get_object(
                self.key, byte_range=(self.pos, end - 1)).read())
            if len(data) != end - self.pos:
                raise OSError(f"short read of oss://{self.oss.bucket_name}/{self.key}: {len(data)} of "
                              f"{end - self.pos} bytes")
            self.pos = end
            return data

    def readall(self) -> bytes:
        return self.read(-1)


class OSSFileHandler(pafs.FileSystemHandler):
    def __init__(self, oss: OSSSession, sizes: dict[str, int] | None = None):
        self.oss, self.sizes = oss, dict(sizes or {})

    def _key(self, path: str) -> str:
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket != self.oss.bucket_name or not key:
            raise OSError(f"{path!r} is not a file in bucket {self.oss.bucket_name!r}")
        return key

    def _size(self, path: str) -> int | None:
        if path in self.sizes:
            return self.sizes[path]
        key = self._key(path)
        try:
            meta = self.oss.retrying(self.oss.bucket.head_object, key)
        except oss2.exceptions.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - translated to a skewless error, raised from it
            raise self.oss.translate(exc, f"looking up oss://{path}") from exc
        self.sizes[path] = meta.content_length
        return meta.content_length

    def _is_folder(self, path: str) -> bool:
        prefix = self._key(path).rstrip("/") + "/"
        found = self.oss.call(f"listing oss://{self.oss.bucket_name}/{prefix}", lambda: self.oss.bucket.list_objects_v2(
            prefix=prefix, max_keys=1))
        return bool(found.object_list or found.prefix_list)

    def get_file_info_selector(self, selector):
        """Objects under ``selector.base_dir`` (recursively, or its direct children); folders are implied by keys."""
        base = selector.base_dir.strip("/")
        bucket, _, prefix = base.partition("/")
        if bucket != self.oss.bucket_name:
            raise OSError(f"{base!r} is not in bucket {self.oss.bucket_name!r}")
        prefix = prefix + "/" if prefix else ""
        out, dirs = [], set()
        for key, _ in self.oss.keys(prefix, delimiter="" if selector.recursive else "/"):
            rest = key[len(prefix):]
            if not rest or rest.endswith("/"):
                continue
            parts = rest.split("/")
            for i in range(1, len(parts)):
                dirs.add(prefix + "/".join(parts[:i]))
            out.append(pafs.FileInfo(f"{bucket}/{key}", pafs.FileType.File))
        if not out and not selector.allow_not_found:
            raise FileNotFoundError(f"oss://{base} holds no objects")
        return out + [pafs.FileInfo(f"{bucket}/{d}", pafs.FileType.Directory) for d in sorted(dirs)]

    def open_output_stream(self, path: str, metadata=None):
        return pa.PythonFile(_SpooledUpload(self.oss, self._key(path)), mode="w")

    def create_dir(self, path: str, recursive: bool = True) -> None:
        pass  # OSS has no folders: keys imply them

    def get_type_name(self) -> str:
        return "oss"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths):
        out = []
        for p in paths:
            if "/" not in p.strip("/"):  # the bucket itself
                out.append(pafs.FileInfo(p, pafs.FileType.Directory))
                continue
            size = self._size(p)
            if size is None and self._is_folder(p):  # no object, but keys under it: a folder
                out.append(pafs.FileInfo(p, pafs.FileType.Directory))
                continue
            out.append(pafs.FileInfo(p, pafs.FileType.NotFound) if size is None else
                       pafs.FileInfo(p, pafs.FileType.File, size=size))
        return out

    def open_input_file(self, path: str):
        size = self._size(path)
        if size is None:
            raise FileNotFoundError(f"oss://{path} does not exist")
        return pa.PythonFile(_RangeReader(self.oss, self._key(path), size), mode="r")

    def open_input_stream(self, path: str):
        return self.open_input_file(path)

    def __eq__(self, other) -> bool:
        return isinstance(other, OSSFileHandler) and other.oss is self.oss

    def __ne__(self, other) -> bool:
        return not self == other

    def _read_only(self, *args, **kw):
        raise NotImplementedError("the OSS filesystem reads, lists and writes whole new objects only; the store "
                                  "writes histories through oss2")

    delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = move = copy_file = \
        open_append_stream = _read_only


def filesystem(oss: OSSSession, sizes: dict[str, int] | None = None) -> pafs.PyFileSystem:
    """``sizes``: known file sizes by ``bucket/key`` path (from the Delta log), saving a HEAD per file."""
    return pafs.PyFileSystem(OSSFileHandler(oss, sizes))


class _SpooledUpload(io.RawIOBase):
    """An object being written: bytes go to a local temporary file (bounded memory), uploaded on ``close``."""

    def __init__(self, oss: OSSSession, key: str):
        self.oss, self.key = oss, key
        self._file = tempfile.NamedTemporaryFile(prefix="skewless-oss-", suffix=".part", delete=False)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self._file.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.close()
            self.oss.call(f"uploading oss://{self.oss.bucket_name}/{self.key}", oss2.resumable_upload,
                          self.oss.bucket, self.key, self._file.name, multipart_threshold=64 * 1024 * 1024,
                          num_threads=2)
        finally:
            Path(self._file.name).unlink(missing_ok=True)
            super().close()


def source_from_url(url: str, repo_path, options: dict):
    """Where a batch source's (or an entity table's, or a training set's) objects under ``oss://bucket/key`` are.
    Delta tables there are not offered as sources (delta-rs has no OSS log store; the offline store mirrors its own
    log through oss2)."""
    from skewless.sources import Place

    loc = OSSLocation.parse(url)
    return Place(filesystem(OSSSession(options, loc.bucket)), f"{loc.bucket}/{loc.prefix}".rstrip("/"), url)

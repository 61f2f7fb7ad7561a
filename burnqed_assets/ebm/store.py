"""On-disk layout of state and goal embeddings at plan scale (1.6M states x 4096 dims).

One embeddings directory holds, per kind (`state`, `goal`):

    <kind>_embeddings.npy     the (N, d) matrix, float16 (full) or float32 (demo), row-major .npy
    <kind>_index.parquet      one row per matrix row: theorem, state_id (states only), row

A `.npy` file is read with `numpy.load(mmap_mode="r")`: a zero-copy `numpy.memmap` of any size
(no 32-bit list offsets as with Parquet `list<float>`, no decode and no copy on load). Writers
append rows as they come (`MatrixWriter`), so extraction memory stays flat. Readers take float32
rows through `RowSource`: `blocks` streams consecutive rows with `os.preadv` into a reused buffer
(nothing mapped), `gather` reads rows in file order from the memmap and drops the pages it touched
from this process's mapping (`madvise(MADV_DONTNEED)`). The file stays in the page cache, but a
pass over 13 GB does not show up as 13 GB of resident memory.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from burnqed_assets import paths
from burnqed_assets.data.io import atomic_path

LAYOUT = "npy-matrix+parquet-index/v1"  # recorded in the manifest
STATE_MATRIX_FILE, STATE_INDEX_FILE = paths.STATE_EMBEDDINGS_MATRIX_FILE, paths.STATE_EMBEDDINGS_INDEX_FILE
GOAL_MATRIX_FILE, GOAL_INDEX_FILE = paths.GOAL_EMBEDDINGS_MATRIX_FILE, paths.GOAL_EMBEDDINGS_INDEX_FILE
LEGACY_STATE_FILE, LEGACY_GOAL_FILE = paths.LEGACY_STATE_EMBEDDINGS_FILE, paths.LEGACY_GOAL_EMBEDDINGS_FILE
STATE_INDEX_SCHEMA = pa.schema([("theorem", pa.string()), ("state_id", pa.int64()), ("row", pa.int64())])
GOAL_INDEX_SCHEMA = pa.schema([("theorem", pa.string()), ("row", pa.int64())])
STORAGE_DTYPES = ("float16", "float32")
RELEASE_EVERY_BYTES = 256 << 20  # drop mapped pages after this many bytes read through a RowSource
BLOCK_BYTES = 8 << 20  # float32 bytes of a streamed block: below glibc's mmap threshold, so reused


class EmbeddingStoreError(ValueError):
    """An embeddings directory is missing, stale or inconsistent; the message names the file."""


def matrix_files(kind: str) -> tuple[str, str]:
    if kind == "state":
        return STATE_MATRIX_FILE, STATE_INDEX_FILE
    if kind == "goal":
        return GOAL_MATRIX_FILE, GOAL_INDEX_FILE
    raise ValueError(f"kind must be 'state' or 'goal', not {kind!r}")


class MatrixWriter:
    """Append float rows to an (rows, d) `.npy` file whose row count is known up front.

    The header is written with the first block (d comes from it); `close()` fails when fewer or
    more rows arrived than announced, so a truncated file never passes for a complete one.
    """

    def __init__(self, fh: BinaryIO, rows: int, dtype: str = "float16"):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"embedding dtype must be one of {STORAGE_DTYPES}, not {dtype!r}")
        self.fh, self.rows, self.dtype = fh, int(rows), np.dtype(dtype)
        self.written = 0
        self.d: int | None = None

    def _header(self, d: int) -> None:
        self.d = d
        np.lib.format.write_array_header_1_0(
            self.fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": (self.rows, d)})

    def append(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if block.ndim != 2:
            raise ValueError(f"expected a 2-D block, got shape {block.shape}")
        if self.d is None:
            self._header(int(block.shape[1]))
        elif block.shape[1] != self.d:
            raise ValueError(f"block width {block.shape[1]} != {self.d}")
        if self.written + len(block) > self.rows:
            raise ValueError(f"more rows than announced ({self.written + len(block)} > {self.rows})")
        self.fh.write(np.ascontiguousarray(block, dtype=self.dtype).data)  # the buffer itself, no bytes copy
        self.written += len(block)

    def close(self, d_if_empty: int = 0) -> None:
        if self.d is None:
            self._header(d_if_empty)
        if self.written != self.rows:
            raise ValueError(f"{self.written} rows written, {self.rows} announced")


def write_matrix(path: str | Path, matrix: np.ndarray, dtype: str = "float16") -> None:
    """Write a whole (n, d) matrix (small ones: goals, tests) atomically."""
    matrix = np.asarray(matrix)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = MatrixWriter(fh, len(matrix), dtype)
        if len(matrix):
            writer.append(matrix)
        writer.close(d_if_empty=matrix.shape[1] if matrix.ndim == 2 else 0)


def write_embeddings(embeddings_dir: str | Path, kind: str, theorems: list[str], matrix: np.ndarray,
                     state_ids: list[int] | np.ndarray | None = None, dtype: str = "float16") -> None:
    """Write one kind's matrix and index in one go (goal embeddings; synthetic data in tests)."""
    embeddings_dir = Path(embeddings_dir)
    embeddings_dir.mkdir(parents=True, exist_ok=True)
    matrix_name, index_name = matrix_files(kind)
    write_matrix(embeddings_dir / matrix_name, matrix, dtype)
    rows = np.arange(len(theorems), dtype=np.int64)
    if kind == "state":
        table = pa.Table.from_arrays([pa.array(theorems, pa.string()), pa.array(np.asarray(state_ids), pa.int64()),
                                      pa.array(rows)], schema=STATE_INDEX_SCHEMA)
    else:
        table = pa.Table.from_arrays([pa.array(theorems, pa.string()), pa.array(rows)], schema=GOAL_INDEX_SCHEMA)
    with atomic_path(embeddings_dir / index_name) as tmp:
        pq.write_table(table, tmp)


class StateEmbeddingWriter:
    """Appends (theorem, state_id, vector) rows to an open matrix file and index writer."""

    def __init__(self, matrix: MatrixWriter, index: pq.ParquetWriter):
        self.matrix, self.index = matrix, index

    @property
    def d(self) -> int:
        return self.matrix.d or 0

    def append(self, theorems: list[str], state_ids: list[int], vectors: np.ndarray) -> None:
        start = self.matrix.written
        self.matrix.append(vectors)
        self.index.write_table(pa.Table.from_arrays(
            [pa.array(theorems, pa.string()), pa.array(state_ids, pa.int64()),
             pa.array(np.arange(start, start + len(theorems), dtype=np.int64))], schema=STATE_INDEX_SCHEMA))


@contextmanager
def state_embedding_writer(embeddings_dir: str | Path, rows: int,
                           dtype: str = "float16") -> Iterator[StateEmbeddingWriter]:
    """Stream state embeddings into `state_embeddings.npy` + `state_index.parquet`; both files appear
    (atomically) only when the block ends without error and exactly `rows` rows were appended."""
    embeddings_dir = Path(embeddings_dir)
    with atomic_path(embeddings_dir / STATE_MATRIX_FILE) as tmp_matrix, \
            atomic_path(embeddings_dir / STATE_INDEX_FILE) as tmp_index, \
            open(tmp_matrix, "wb") as fh, pq.ParquetWriter(tmp_index, STATE_INDEX_SCHEMA) as index:
        writer = StateEmbeddingWriter(MatrixWriter(fh, rows, dtype), index)
        yield writer
        writer.matrix.close()


def open_matrix(path: str | Path) -> np.ndarray:
    """The (N, d) matrix of a `.npy` file as a read-only memmap (zero-copy; an empty one in memory)."""
    with open(path, "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fh)  # the header only, no data
    if len(shape) != 2:
        raise EmbeddingStoreError(f"{path}: expected an (N, d) matrix, found shape {shape}")
    if shape[0] * shape[1] == 0:  # mmap cannot map zero bytes
        return np.zeros(shape, dtype=dtype)
    return np.load(path, mmap_mode="r")


@dataclass
class StoredEmbeddings:
    """`index` (theorem[, state_id], row) and the matrix: row `index.row[i]` of `matrix` is entry i."""

    index: pd.DataFrame
    matrix: np.ndarray  # np.memmap (N, d), float16 or float32, read-only


def read_embeddings(embeddings_dir: str | Path, kind: str = "state") -> StoredEmbeddings:
    """Ids and the (N, d) memmap of one kind ("state" or "goal") of an embeddings directory."""
    embeddings_dir = Path(embeddings_dir)
    matrix_name, index_name = matrix_files(kind)
    matrix_path, index_path = embeddings_dir / matrix_name, embeddings_dir / index_name
    if not matrix_path.exists() and (embeddings_dir / LEGACY_STATE_FILE).exists():
        raise EmbeddingStoreError(f"{embeddings_dir} holds embeddings in the old list<float32> Parquet layout "
                                  f"({LEGACY_STATE_FILE}): re-materialize the embeddings")
    for p in (matrix_path, index_path):
        if not p.exists():
            raise FileNotFoundError(f"missing input {p}")
    matrix = open_matrix(matrix_path)
    index = pq.read_table(index_path).to_pandas()
    if len(index) != len(matrix):
        raise EmbeddingStoreError(f"{index_path} has {len(index)} rows but {matrix_path} has {len(matrix)}")
    rows = index["row"].to_numpy()
    if len(rows) and (rows.min() < 0 or rows.max() >= len(matrix)):
        raise EmbeddingStoreError(f"{index_path}: row numbers outside 0..{len(matrix) - 1}")
    return StoredEmbeddings(index=index, matrix=matrix)


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    """The mmap behind an array (np.memmap and its views), if any."""
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return base
        if isinstance(base, memoryview):
            return base.obj if isinstance(base.obj, mmap.mmap) else None
        base = getattr(base, "base", None)
    return None


def release_pages(array: np.ndarray) -> None:
    """Unmap the pages of a memmap this process touched (they stay in the page cache)."""
    mm = _mapping(array)
    if mm is not None and not mm.closed and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


class RowSource:
    """float32 rows of an (N, d) matrix, optionally through a row map (entry i -> matrix row map[i]).

    Works the same on an in-memory array and on a memmap. On a memmap, `blocks` reads contiguous
    rows with `os.preadv` into a reused buffer (no pages mapped at all) and `gather` reads in file
    order and releases the mapped pages every RELEASE_EVERY_BYTES, so resident memory stays flat.
    """

    def __init__(self, matrix: np.ndarray, row_map: np.ndarray | None = None):
        self.matrix = matrix
        self.row_map = None if row_map is None else np.asarray(row_map, dtype=np.int64)
        self._mapped = _mapping(matrix) is not None
        self._since_release = 0
        self._buffer: np.ndarray | None = None
        # a top-level C-contiguous memmap of a file: its rows can be read with pread
        self._file = (str(matrix.filename), int(matrix.offset)) if isinstance(matrix, np.memmap) and \
            isinstance(matrix.base, mmap.mmap) and matrix.flags.c_contiguous and matrix.filename else None

    def __len__(self) -> int:
        return len(self.row_map) if self.row_map is not None else len(self.matrix)

    @property
    def d(self) -> int:
        return int(self.matrix.shape[1]) if self.matrix.ndim == 2 else 0

    def default_chunk_rows(self) -> int:
        """Rows per streamed block: ~BLOCK_BYTES of float32, so blocks are reused heap memory."""
        return max(64, BLOCK_BYTES // max(1, 4 * self.d))

    def rows_of(self, entries: np.ndarray) -> np.ndarray:
        entries = np.asarray(entries, dtype=np.int64)
        return self.row_map[entries] if self.row_map is not None else entries

    def file_order(self) -> np.ndarray:
        """All entries, sorted by their row in the matrix (the order to stream them in)."""
        if self.row_map is None:
            return np.arange(len(self), dtype=np.int64)
        return np.argsort(self.row_map, kind="stable")

    def take(self, entries: np.ndarray) -> RowSource:
        """The source restricted to `entries` (entry i of the result = entry entries[i] here); no copy."""
        return RowSource(self.matrix, self.rows_of(entries))

    def _count(self, nbytes: int) -> None:
        if self._mapped:
            self._since_release += nbytes
            if self._since_release >= RELEASE_EVERY_BYTES:
                release_pages(self.matrix)
                self._since_release = 0

    def _pread(self, out: np.ndarray, runs: list[tuple[int, int, int]]) -> None:
        """Read matrix rows into `out` (rows of the matrix dtype): each run is (first row, rows, row
        of out). One preadv per run of consecutive rows; nothing is mapped into this process."""
        path, offset = self._file  # type: ignore[misc]
        row_bytes = self.d * self.matrix.dtype.itemsize
        view = memoryview(out.reshape(-1).view(np.uint8))
        with open(path, "rb", buffering=0) as fh:
            for first, count, at in runs:
                target, done = view[at * row_bytes:(at + count) * row_bytes], 0
                while done < len(target):
                    got = os.preadv(fh.fileno(), [target[done:]], offset + first * row_bytes + done)
                    if got <= 0:
                        raise EmbeddingStoreError(f"{path}: short read at row {first}")
                    done += got

    def _read_rows(self, start: int, stop: int) -> np.ndarray:
        """Matrix rows [start, stop) as a new float32 array."""
        if self._file is None:
            block = np.array(self.matrix[start:stop], dtype=np.float32)
            self._count(block.nbytes)
            return block
        n = stop - start
        if self._buffer is None or len(self._buffer) < n:
            self._buffer = np.empty((n, self.d), dtype=self.matrix.dtype)
        raw = self._buffer[:n]
        self._pread(raw, [(start, n, 0)])
        return raw.astype(np.float32)

    def gather(self, entries: np.ndarray) -> np.ndarray:
        """float32 rows of the given entries (any order, repeats allowed), as a new array.

        From a file: one pread per run of consecutive rows, in file order (a page fault per row of a
        memmap would map the kernel's fault-around and read-ahead windows too, and scattered samples
        then pin most of a large file in this process's resident memory)."""
        rows = self.rows_of(entries)
        if len(rows) == 0:
            return np.zeros((0, self.d), dtype=np.float32)
        ordered = len(rows) == 1 or not np.any(rows[1:] <= rows[:-1])  # strictly increasing
        unique, inverse = (rows, None) if ordered else np.unique(rows, return_inverse=True)
        if self._file is not None:
            raw = np.empty((len(unique), self.d), dtype=self.matrix.dtype)
            cut = np.flatnonzero(np.diff(unique) != 1) + 1
            starts, ends = np.r_[0, cut], np.r_[cut, len(unique)]
            self._pread(raw, [(int(unique[a]), int(b - a), int(a)) for a, b in zip(starts, ends)])
            block = raw.astype(np.float32, copy=False)
        else:
            block = self.matrix[unique].astype(np.float32, copy=False)
            self._count(block.nbytes)
        return block if inverse is None else block[inverse]

    def blocks(self, entries: np.ndarray | None = None, chunk_rows: int | None = None,
               bounds: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(entries, their float32 rows) chunk by chunk, over `entries` (all, in file order, by default).

        Chunks are `chunk_rows` long, or cut at the positions `bounds` (increasing, within entries).
        A chunk whose rows are consecutive in the file is read as one slice."""
        entries = self.file_order() if entries is None else np.asarray(entries, dtype=np.int64)
        if bounds is None:
            bounds = np.arange(0, len(entries), chunk_rows or self.default_chunk_rows())[1:]
        edges = np.r_[0, np.asarray(bounds, dtype=np.int64), len(entries)]
        for a, b in zip(edges[:-1], edges[1:]):
            if b <= a:
                continue
            part = entries[a:b]
            rows = self.rows_of(part)
            if rows[-1] - rows[0] == len(rows) - 1 and (len(rows) == 1 or bool(np.all(np.diff(rows) == 1))):
                block = self._read_rows(int(rows[0]), int(rows[-1]) + 1)
            else:
                block = self.gather(part)
            yield part, block
        if self._mapped:
            release_pages(self.matrix)
            self._since_release = 0


def as_source(states: np.ndarray | RowSource) -> RowSource:
    """A RowSource over an array (in memory or memmap), or the source itself."""
    return states if isinstance(states, RowSource) else RowSource(states)

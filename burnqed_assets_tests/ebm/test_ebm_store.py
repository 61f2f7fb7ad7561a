"""The embeddings store (ebm.store): layout, zero-copy reads, flat memory, the loader on top of it."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest
from ebm_synthetic import synthetic_rows, write_synthetic

from burnqed_assets.ebm.dataset import EmbeddedTrajectories, load_embedded_trajectories
from burnqed_assets.ebm.store import (
    STATE_INDEX_FILE,
    STATE_MATRIX_FILE,
    EmbeddingStoreError,
    RowSource,
    open_matrix,
    read_embeddings,
    state_embedding_writer,
    write_embeddings,
)


def _rss_file_kb() -> int:
    """File-backed resident memory of this process (Linux)."""
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")
    return 0


def test_streamed_layout_many_rows_small_d(tmp_path):
    """Uneven appends of 300,001 rows x 3: every row where the index says, exact in float32, the
    file exactly header + N·d·4 bytes (no offsets array: nothing to overflow)."""
    n, d = 300_001, 3
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n, d)).astype(np.float32)
    theorems = [f"t{i // 50}" for i in range(n)]
    sizes = [1, 7, 4096, 65_536, 100_000]
    with state_embedding_writer(tmp_path, n, "float32") as writer:
        start = 0
        for size in sizes * 10:
            if start >= n:
                break
            stop = min(n, start + size)
            writer.append(theorems[start:stop], list(range(start, stop)), data[start:stop])
            start = stop
    store = read_embeddings(tmp_path, "state")
    assert store.matrix.shape == (n, d) and store.matrix.dtype == np.float32
    assert (store.index["row"].to_numpy() == np.arange(n)).all()
    assert (store.index["state_id"].to_numpy() == np.arange(n)).all() and store.index["theorem"].iloc[-1] == theorems[-1]
    assert np.array_equal(np.asarray(store.matrix), data)
    header = (tmp_path / STATE_MATRIX_FILE).stat().st_size - n * d * 4
    assert 0 < header <= 4096


def test_float16_storage_rounds_once(tmp_path):
    x = np.random.default_rng(1).standard_normal((10, 5)).astype(np.float32) * 50
    write_embeddings(tmp_path, "goal", [f"t{i}" for i in range(10)], x, dtype="float16")
    m = read_embeddings(tmp_path, "goal").matrix
    assert m.dtype == np.float16 and np.array_equal(m, x.astype(np.float16))
    assert np.allclose(RowSource(m).gather(np.arange(10)), x, rtol=1e-3, atol=1e-2)


def test_more_elements_than_32_bit_offsets_allow(tmp_path):
    """600,000 x 4096 float16 (2.46e9 elements > 2^31 - 1, where list<float> offsets overflow) as a
    sparse file: opened as a memmap without reading it, first and last rows addressable."""
    n, d = 600_000, 4096
    path = tmp_path / STATE_MATRIX_FILE
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f2", "fortran_order": False, "shape": (n, d)})
        offset = fh.tell()
        fh.truncate(offset + n * d * 2)  # sparse: no disk blocks, reads as zeros
        fh.seek(offset + (n - 1) * d * 2)
        fh.write(np.full(d, 1.5, np.float16).tobytes())  # the last row
    m = open_matrix(path)
    assert isinstance(m, np.memmap) and m.shape == (n, d) and m.size > 2**31 - 1
    assert RowSource(m).gather(np.array([n - 1, 0])).tolist() == [[1.5] * d, [0.0] * d]


def test_writer_refuses_a_short_file_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="3 rows written, 5 announced"):
        with state_embedding_writer(tmp_path, 5, "float16") as writer:
            writer.append(["t"] * 3, [0, 1, 2], np.zeros((3, 4)))
    assert not (tmp_path / STATE_MATRIX_FILE).exists() and not (tmp_path / STATE_INDEX_FILE).exists()
    with pytest.raises(ValueError, match="more rows than announced"):
        with state_embedding_writer(tmp_path, 2, "float16") as writer:
            writer.append(["t"] * 3, [0, 1, 2], np.zeros((3, 4)))
    assert list(tmp_path.iterdir()) == []


def test_loader_is_zero_copy_on_the_memmap(tmp_path):
    traj, emb = write_synthetic(tmp_path, synthetic_rows(n_theorems=6), dim=8, dtype="float16")
    store = read_embeddings(emb, "state")
    data = load_embedded_trajectories(traj, emb)
    assert isinstance(data.states, np.memmap) and not data.states.flags.writeable
    assert data.states.dtype == np.float16 and data.state_rows is None  # same order: no row map
    assert Path(data.states.filename) == (emb / STATE_MATRIX_FILE).resolve()  # the file itself, mapped
    first = data.states[:2]
    assert isinstance(data.states.base, mmap.mmap) and np.shares_memory(first, data.states)  # views, no copies
    rows = np.array([5, 0, 5, 3])
    assert np.array_equal(data.state_vectors(rows), np.asarray(store.matrix[rows], dtype=np.float32))


def test_loader_maps_rows_when_orders_differ(tmp_path):
    """Trajectory order differs from the store's, and one row has no embedding: a row map, no copy."""
    rows = synthetic_rows(n_theorems=3)
    traj, emb = write_synthetic(tmp_path, rows, dim=4)
    import pyarrow.parquet as pq

    from burnqed_assets.data.schema import trajectory_table
    reordered = list(reversed(rows)) + [dict(rows[1], state_id=999)]
    pq.write_table(trajectory_table(reordered), traj)
    (emb / "embeddings_manifest.json").unlink(missing_ok=True)
    data = load_embedded_trajectories(traj, emb)
    assert data.missing_state_embeddings == 1 and len(data.frame) == len(rows)
    assert data.state_rows is not None and isinstance(data.states, np.memmap)
    store = read_embeddings(emb, "state")
    key_to_row = {(t, s): r for t, s, r in store.index[["theorem", "state_id", "row"]].itertuples(False)}
    expected = [key_to_row[(t, s)] for t, s in data.frame[["theorem", "state_id"]].itertuples(False)]
    assert np.array_equal(data.state_vectors(np.arange(len(data.frame))), store.matrix[expected])


def test_old_layout_gets_a_clear_error(tmp_path):
    (tmp_path / "state_embeddings.parquet").write_bytes(b"PAR1")
    with pytest.raises(EmbeddingStoreError, match="old list<float32> Parquet layout.*re-materialize"):
        read_embeddings(tmp_path, "state")


def test_row_source_gather_blocks_take():
    m = np.arange(40, dtype=np.float16).reshape(20, 2)
    src = RowSource(m, row_map=np.arange(19, -1, -1))  # entry i -> row 19 - i
    idx = np.array([3, 3, 0, 19, 7])
    assert np.array_equal(src.gather(idx), m[19 - idx].astype(np.float32))
    sub = src.take(np.array([1, 2, 3]))  # entries 1..3 -> rows 18, 17, 16
    assert np.array_equal(sub.gather(np.array([2, 0])), m[[16, 18]].astype(np.float32))
    parts = list(src.blocks(chunk_rows=6))  # default: every entry, in file order
    assert np.array_equal(np.concatenate([p for p, _ in parts]), np.arange(19, -1, -1))
    assert np.array_equal(np.concatenate([b for _, b in parts]), m.astype(np.float32))
    in_entry_order = np.concatenate([b for _, b in src.blocks(np.arange(20), bounds=np.array([3, 4, 11]))])
    assert np.array_equal(in_entry_order, m[::-1].astype(np.float32))


def test_streaming_a_memmap_keeps_resident_memory_flat(tmp_path):
    """Reading 256 MB through RowSource leaves < 64 MB of it mapped; touching it plainly keeps it all."""
    n, d = 32_768, 4096  # float16: 256 MiB
    path = tmp_path / "m.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))
    for s in range(0, n, 4096):
        mm[s:s + 4096] = 1
    mm.flush()
    del mm
    m = open_matrix(path)
    before = _rss_file_kb()
    total = sum(float(b[:, 0].sum()) for _, b in RowSource(m).blocks(chunk_rows=2048))
    assert total == n
    assert _rss_file_kb() - before < 64 * 1024
    # scattered samples (probe, spectrum, silhouette, EBM batches) are read, not faulted in
    sample = np.random.default_rng(0).choice(n, 4000, replace=False)
    assert float(RowSource(m).gather(sample)[:, 0].sum()) == 4000
    assert _rss_file_kb() - before < 64 * 1024
    plain = open_matrix(path)
    before = _rss_file_kb()
    assert float(plain[:, 0].astype(np.float32).sum()) == n  # column read touches every page
    float(np.asarray(plain).sum(dtype=np.float32))
    assert _rss_file_kb() - before > 200 * 1024  # what the release saves


def test_in_memory_embedded_trajectories_still_work():
    import pandas as pd

    df = pd.DataFrame({"theorem": ["t", "t"], "goal_index": [0, 0]})
    data = EmbeddedTrajectories(frame=df, states=np.eye(2, dtype=np.float32), goals=np.ones((1, 2), np.float32),
                                goal_theorems=["t"])
    assert data.state_vectors(np.array([1])).tolist() == [[0.0, 1.0]]
    assert data.goal_vectors(np.array([0, 0])).shape == (2, 2)

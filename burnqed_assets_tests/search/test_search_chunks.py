"""The trajectory search in chunks (the `trajectories` partitions): done markers, never redoing a
finished chunk, and a merged deliverable byte for byte the unchunked run's."""

from __future__ import annotations

import itertools

import pytest

from burnqed_assets.paths import Paths
from burnqed_assets.search.chunks import finished_marker, fingerprint_digest, merge_chunks, plan_chunks, search_chunk
from burnqed_assets.search.engine import SearchConfig
from burnqed_assets.search.run import run_search, write_results
from search_fakes import FakeEnv, world

CFG = SearchConfig(max_nodes=50, timeout_s=10, num_candidates=4, temperature=1.0)
FINGERPRINT = {"model": "m1"}


def ticks():
    """A clock per theorem that advances a quarter second per reading: node times repeat exactly."""
    return itertools.count(0.0, 0.25).__next__


def test_merged_chunks_are_byte_identical_to_one_unchunked_run(tmp_path):
    theorems, roots, tr, policy = world(10)
    whole = run_search(theorems, FakeEnv(roots, tr), policy, CFG, tmp_path / "whole.parquet",
                       fingerprint=FINGERPRINT, clock_factory=ticks, concurrency=2)
    write_results(whole.results, tmp_path / "whole_results.parquet")

    paths = Paths(tmp_path / "root")
    planned = plan_chunks(theorems + theorems[:3], 4)  # duplicates dropped: 10 theorems in 4 + 4 + 2
    assert [len(c) for c in planned] == [4, 4, 2]
    for i in (2, 0, 1):  # partitions run in any order
        out = search_chunk(i, planned[i], paths.search_chunk(0, i), FakeEnv(roots, tr), policy, CFG, FINGERPRINT,
                           clock_factory=ticks, concurrency=2)
        assert not out.skipped and out.marker["theorems"] == len(planned[i])
    merged = merge_chunks(planned, lambda i: paths.search_chunk(0, i), FINGERPRINT, tmp_path / "merged.parquet",
                          tmp_path / "merged_results.parquet")
    assert merged.missing == [] and merged.finished == [0, 1, 2] and merged.rows == whole.rows > 0
    assert (tmp_path / "merged.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert (tmp_path / "merged_results.parquet").read_bytes() == (tmp_path / "whole_results.parquet").read_bytes()
    assert merged.stats() == whole.stats()


def test_a_finished_chunk_is_never_searched_again_unless_the_run_changed(tmp_path):
    theorems, roots, tr, policy = world(6)
    paths = Paths(tmp_path)
    planned = plan_chunks(theorems, 3)
    chunk = paths.search_chunk(0, 1)
    env = FakeEnv(roots, tr)
    first = search_chunk(1, planned[1], chunk, env, policy, CFG, FINGERPRINT)
    calls = env.calls
    again = search_chunk(1, planned[1], chunk, env, policy, CFG, FINGERPRINT)
    assert again.skipped and again.marker == first.marker and env.calls == calls  # Lean never asked again

    merged = merge_chunks(planned, lambda i: paths.search_chunk(0, i), FINGERPRINT, tmp_path / "m.parquet",
                          tmp_path / "m_results.parquet")
    assert merged.missing == [0] and merged.finished == [1]  # never half-included
    assert [r["theorem"] for r in merged.results] == [t.name for t in planned[1]]

    other = {"model": "m2"}  # another model: the chunk's trees are stale
    assert finished_marker(chunk, planned[1], fingerprint_digest(other)) is None
    redo = search_chunk(1, planned[1], chunk, env, policy, CFG, other)
    assert not redo.skipped and env.calls > calls
    assert finished_marker(chunk, planned[0], fingerprint_digest(other)) is None  # other theorems: not this chunk


def test_an_interrupted_chunk_has_no_marker_and_resumes_per_theorem(tmp_path):
    theorems, roots, tr, policy = world(4)
    chunk = Paths(tmp_path).search_chunk(0, 0)

    class Interrupt(Exception):
        pass

    def progress(done, total, res):
        if done == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        search_chunk(0, theorems, chunk, FakeEnv(roots, tr), policy, CFG, FINGERPRINT, progress=progress)
    assert not chunk.done.exists()
    out = search_chunk(0, theorems, chunk, FakeEnv(roots, tr), policy, CFG, FINGERPRINT)
    assert not out.skipped and out.run.resumed == 2 and out.run.searched == 2 and chunk.done.exists()

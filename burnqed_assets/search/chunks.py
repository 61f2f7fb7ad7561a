"""The trajectory search in chunks (the Dagster partitions of `trajectories`), merged in order.

The selected theorems (names deduplicated, selection order) are cut into chunks of
`search.trajectory_chunk_size`. A chunk is searched with `run.run_search` into its own Parquet
file plus its per-theorem results (resumable per theorem inside the chunk), then its done
marker is written last: the marker names the chunk's theorems and the run fingerprint (model,
budget), so a finished chunk is never searched again while a changed model or budget redoes it.

`merge_chunks` streams every finished chunk's row groups (one per theorem, as `run_search`
writes them) into the deliverable, in chunk order: the merged file is byte for byte the one an
unchunked `run_search` over the same theorems writes. Chunks not finished are listed, never
half-included.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from burnqed_assets.data.io import atomic_path, read_json, write_json
from burnqed_assets.data.schema import TRAJECTORY_SCHEMA
from burnqed_assets.paths import SearchChunkPaths
from burnqed_assets.search.engine import SearchConfig, SearchResult, Theorem
from burnqed_assets.search.run import RunOutput, TrajectoryStats, read_results, run_search, trajectory_stats, write_results

log = logging.getLogger(__name__)


def plan_chunks(theorems: Sequence[Theorem], chunk_size: int) -> list[list[Theorem]]:
    """The theorems (first occurrence of each name, in order) cut into chunks of `chunk_size`."""
    if chunk_size < 1:
        raise ValueError(f"search.trajectory_chunk_size must be >= 1, got {chunk_size}")
    unique: dict[str, Theorem] = {}
    for th in theorems:
        unique.setdefault(th.name, th)
    ordered = list(unique.values())
    return [ordered[i:i + chunk_size] for i in range(0, len(ordered), chunk_size)]


def chunk_id(chunk: Sequence[Theorem]) -> str:
    return hashlib.sha256("\n".join(t.name for t in chunk).encode("utf-8")).hexdigest()[:16]


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def finished_marker(paths: SearchChunkPaths, chunk: Sequence[Theorem], digest: str) -> dict[str, Any] | None:
    """The marker of this chunk searched with these theorems under this fingerprint, else None."""
    if not (paths.done.exists() and paths.trajectories.exists() and paths.results.exists()):
        return None
    try:
        marker = read_json(paths.done)
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and marker.get("chunk_id") == chunk_id(chunk) and marker.get("fingerprint") == digest:
        return marker
    return None


@dataclass
class ChunkOutcome:
    index: int
    marker: dict[str, Any]
    skipped: bool  # finished earlier: not searched again
    run: RunOutput | None = None


def search_chunk(index: int, chunk: Sequence[Theorem], paths: SearchChunkPaths, lean: Any, policy: Any,
                 cfg: SearchConfig, fingerprint: dict[str, Any], scorer: Any = None,
                 verifier_factory: Callable[[Any], Any] | None = None,
                 progress: Callable[[int, int, SearchResult], None] | None = None, **run_kwargs: Any) -> ChunkOutcome:
    """Search one chunk unless its marker says it is finished; the marker is written last."""
    digest = fingerprint_digest(fingerprint)
    marker = finished_marker(paths, chunk, digest)
    if marker is not None:
        return ChunkOutcome(index, marker, skipped=True)
    paths.done.unlink(missing_ok=True)
    paths.trajectories.parent.mkdir(parents=True, exist_ok=True)
    run = run_search(chunk, lean, policy, cfg, paths.trajectories, scorer=scorer, verifier_factory=verifier_factory,
                     fingerprint=fingerprint, progress=progress, **run_kwargs)
    write_results(run.results, paths.results)
    marker = {"chunk": index, "chunk_id": chunk_id(chunk), "fingerprint": digest, "theorems": len(chunk),
              "proved": run.proved, "errors": run.errors, "rows": run.rows}
    write_json(paths.done, marker)  # last: its presence means both files are complete
    return ChunkOutcome(index, marker, skipped=False, run=run)


@dataclass
class ChunkMerge:
    """The merged deliverable: per-theorem summaries in order, counts, and which chunks it holds."""

    results: list[dict[str, Any]]
    rows: int
    depth_counts: Counter
    label_counts: Counter
    chunks: int  # chunks holding theorems
    finished: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    def stats(self) -> TrajectoryStats:
        return trajectory_stats(self.results, self.depth_counts, self.label_counts)


def merge_chunks(planned: Sequence[Sequence[Theorem]], chunk_paths: Callable[[int], SearchChunkPaths],
                 fingerprint: dict[str, Any], out_path: Path, results_path: Path) -> ChunkMerge:
    """Stream every finished chunk (row group by row group) into `out_path` and its results into
    `results_path`, in chunk order; unfinished chunks are listed in `missing`."""
    digest = fingerprint_digest(fingerprint)
    merge = ChunkMerge([], 0, Counter(), Counter(), len(planned))
    with atomic_path(out_path) as tmp:
        with pq.ParquetWriter(tmp, TRAJECTORY_SCHEMA) as writer:
            for index, chunk in enumerate(planned):
                paths = chunk_paths(index)
                if finished_marker(paths, chunk, digest) is None:
                    merge.missing.append(index)
                    continue
                merge.finished.append(index)
                merge.results.extend(read_results(paths.results))
                source = pq.ParquetFile(paths.trajectories)
                for group in range(source.num_row_groups):  # one row group per theorem's tree
                    table = source.read_row_group(group).cast(TRAJECTORY_SCHEMA)
                    writer.write_table(table)
                    merge.rows += table.num_rows
                    merge.depth_counts.update(table.column("depth").to_pylist())
                    merge.label_counts.update(table.column("label").to_pylist())
    write_results(merge.results, results_path)
    return merge

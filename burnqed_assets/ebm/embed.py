"""State and root-goal embeddings of search trajectories (plan Task 2.1, Gotchas 4 and 9).

Every trajectory row gets a state embedding; every theorem gets the embedding of its root
(depth-0) state as its goal. The rows are processed in chunks (streamed from the Parquet
file), identical texts inside a chunk are encoded once, and each chunk is length-sorted so
a batch pads little. Outputs follow the `ebm.store` layout (an .npy matrix + a Parquet index per
kind), written as the chunks come.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from burnqed_assets.data.io import write_json
from burnqed_assets.ebm.dataset import MANIFEST_FILE, update_fingerprint
from burnqed_assets.ebm.store import (
    GOAL_MATRIX_FILE,
    LAYOUT,
    LEGACY_GOAL_FILE,
    LEGACY_STATE_FILE,
    STATE_MATRIX_FILE,
    state_embedding_writer,
    write_embeddings,
)

log = logging.getLogger(__name__)

Encoder = Callable[[Sequence[str]], np.ndarray]  # texts -> [n, d] float32


class BadTrajectoryRowError(ValueError):
    """A trajectory row cannot be embedded; the message names file:row."""


@dataclass
class EmbeddingRunSummary:
    state_rows: int = 0
    unique_texts_encoded: int = 0
    theorems: int = 0
    goals: int = 0
    theorems_without_root: list[str] = field(default_factory=list)
    d_model: int = 0
    max_length: int = 0
    seconds: float = 0.0
    state_path: str = ""
    goal_path: str = ""
    trajectories_fingerprint: str = ""
    dtype: str = ""

    def as_metadata(self) -> dict[str, object]:
        return {
            "state_rows": self.state_rows, "unique_texts_encoded": self.unique_texts_encoded,
            "theorems": self.theorems, "goal_embeddings": self.goals,
            "theorems_without_root": len(self.theorems_without_root),
            "theorems_without_root_examples": self.theorems_without_root[:10],
            "d_model": self.d_model, "encode_max_length": self.max_length,
            "seconds": round(self.seconds, 2),
            "states_per_s": round(self.unique_texts_encoded / self.seconds, 2) if self.seconds else None,
            "state_embeddings_path": self.state_path, "goal_embeddings_path": self.goal_path,
            "trajectories_fingerprint": self.trajectories_fingerprint, "storage_dtype": self.dtype,
        }


def model_encoder(model_dir: str | Path, max_length: int, device: str = "auto", dtype: str = "float32") -> Encoder:
    """Encoder over a merged HF model directory via `EmbeddingExtractor` (right padding, last content token)."""
    from burnqed_assets.models.embedding import EmbeddingExtractor
    from burnqed_assets.models.loading import load_causal_lm, load_tokenizer

    model = load_causal_lm(model_dir, device=device, dtype=dtype)
    model.eval()
    extractor = EmbeddingExtractor(model, load_tokenizer(model_dir), max_length=max_length)

    def encode(texts: Sequence[str]) -> np.ndarray:
        return extractor.encode(texts, max_length=max_length).float().cpu().numpy()

    return encode


def _encode_unique(texts: list[str], encoder: Encoder, batch_size: int) -> np.ndarray:
    """Encode distinct texts longest-first (less padding per batch); rows in input order."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        vectors = np.asarray(encoder([texts[i] for i in idx]), dtype=np.float32)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def extract_embeddings(trajectories_path: str | Path, out_dir: str | Path, encoder: Encoder, *,
                       batch_size: int = 16, max_length: int = 0, chunk_rows: int = 4096,
                       dtype: str = "float16",
                       progress: Callable[[str], None] | None = None) -> EmbeddingRunSummary:
    """Write the state embeddings (one row per trajectory row) and the goal embeddings (one per
    theorem: its depth-0 state) under `out_dir` in the `ebm.store` layout, stored as `dtype`.

    Rows are appended to disk chunk by chunk, and a goal keeps a copy of its row (not a view into
    the chunk), so memory stays flat in the number of states. Files appear atomically; re-runs
    overwrite. An empty `state_pp` stops the run with `file:row` (it has no content token to embed).
    """
    trajectories_path, out_dir = Path(trajectories_path), Path(out_dir)
    say = progress or log.info
    summary = EmbeddingRunSummary(max_length=max_length)
    started = time.monotonic()
    parquet = pq.ParquetFile(trajectories_path)
    total_rows = parquet.metadata.num_rows
    goal_vectors: dict[str, np.ndarray] = {}
    theorems: set[str] = set()
    row_offset = 0
    digest = hashlib.sha256()
    with state_embedding_writer(out_dir, total_rows, dtype) as writer:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=["theorem", "state_id", "state_pp", "depth"]):
            cols = batch.to_pydict()
            texts = cols["state_pp"]
            bad = [row_offset + i for i, t in enumerate(texts) if t is None or not str(t).strip()]
            if bad:
                shown = ", ".join(f"{trajectories_path}:row {r}" for r in bad[:10])
                raise BadTrajectoryRowError(f"{len(bad)} trajectory row(s) with an empty state_pp: {shown}")
            update_fingerprint(digest, cols["theorem"], cols["state_id"], texts)
            unique = list(dict.fromkeys(texts))
            position = {t: i for i, t in enumerate(unique)}
            encoded = _encode_unique(unique, encoder, batch_size)
            vectors = encoded if len(unique) == len(texts) else encoded[[position[t] for t in texts]]
            summary.unique_texts_encoded += len(unique)
            writer.append(cols["theorem"], cols["state_id"], vectors)
            for i, (theorem, depth) in enumerate(zip(cols["theorem"], cols["depth"])):
                theorems.add(theorem)
                if depth == 0 and theorem not in goal_vectors:
                    # a copy: a view would keep the whole chunk alive (memory growing with N)
                    goal_vectors[theorem] = vectors[i].astype(dtype, copy=True)
            row_offset += len(texts)
            rate = summary.unique_texts_encoded / max(time.monotonic() - started, 1e-9)
            say(f"embedded {row_offset}/{total_rows} trajectory rows ({rate:.1f} texts/s)")
        summary.d_model = writer.d
    summary.state_rows = row_offset
    summary.theorems = len(theorems)
    summary.theorems_without_root = sorted(theorems - set(goal_vectors))
    names = sorted(goal_vectors)
    goal_matrix = np.stack([goal_vectors[t] for t in names]) if names else np.zeros((0, summary.d_model), dtype)
    write_embeddings(out_dir, "goal", names, goal_matrix, dtype=dtype)
    summary.goals = len(names)
    summary.trajectories_fingerprint = digest.hexdigest()
    summary.dtype = dtype
    write_json(out_dir / MANIFEST_FILE, {"trajectories_path": str(trajectories_path), "state_rows": summary.state_rows,
                                         "trajectories_fingerprint": summary.trajectories_fingerprint,
                                         "d_model": summary.d_model, "encode_max_length": max_length,
                                         "layout": LAYOUT, "dtype": dtype})
    for legacy in (LEGACY_STATE_FILE, LEGACY_GOAL_FILE):  # the list<float32> layout of earlier runs
        (out_dir / legacy).unlink(missing_ok=True)
    summary.seconds = time.monotonic() - started
    summary.state_path, summary.goal_path = str(out_dir / STATE_MATRIX_FILE), str(out_dir / GOAL_MATRIX_FILE)
    say(f"wrote {summary.state_rows} state and {summary.goals} goal embeddings (d={summary.d_model}, {dtype}) "
        f"in {summary.seconds:.1f}s")
    return summary


def extract_embeddings_from_model(model_dir: str | Path, trajectories_path: str | Path, out_dir: str | Path, *,
                                  max_length: int, batch_size: int, device: str = "auto", dtype: str = "float32",
                                  progress: Callable[[str], None] | None = None,
                                  cpu_threads: int = 0, storage_dtype: str = "float16") -> EmbeddingRunSummary:
    """`extract_embeddings` with the merged model at `model_dir` as the encoder (any iteration).
    `cpu_threads` > 0 bounds torch's CPU threads (a loaded 2-core machine runs faster on one)."""
    from burnqed_assets.models.loading import cpu_threads as torch_threads

    with torch_threads(cpu_threads):
        encoder = model_encoder(model_dir, max_length=max_length, device=device, dtype=dtype)
        return extract_embeddings(trajectories_path, out_dir, encoder, batch_size=batch_size,
                                  max_length=max_length, dtype=storage_dtype, progress=progress)

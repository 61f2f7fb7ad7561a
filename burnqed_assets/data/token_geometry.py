"""Task M.7: token geometry of the clean pool -> data-driven max lengths.

Lengths are counted as the plan does (`len(tok.encode(text))`, special tokens included) but
in batches, streamed from DuckDB, so the whole pool never sits in Python as dicts. The full
example is `models.prompt.format_example(state, tactic)`, the exact text SFT trains on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from burnqed_assets.data import duck
from burnqed_assets.models.prompt import PROMPT_PREFIX, PROMPT_SUFFIX, format_prompt


def _lengths(tokenizer: Any, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0, dtype=np.int64)
    enc = tokenizer(texts, add_special_tokens=True)["input_ids"]
    return np.fromiter((len(ids) for ids in enc), dtype=np.int64, count=len(enc))


def measure(pairs_path: str | os.PathLike[str], tokenizer: Any, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """Token counts of state, tactic and full SFT example for every pair of a JSONL file."""
    con = duck.connect()
    duck.load_jsonl(con, pairs_path, "pairs", {"state": "VARCHAR", "tactic": "VARCHAR"}, ("state", "tactic"))
    reader = con.sql(
        "SELECT state, tactic, ? || state || ? || tactic AS full FROM pairs ORDER BY _line",
        params=[PROMPT_PREFIX, PROMPT_SUFFIX],
    ).to_arrow_reader(batch_size)
    parts: dict[str, list[np.ndarray]] = {"state": [], "tactic": [], "full": []}
    for batch in reader:
        cols = batch.to_pydict()
        for key in parts:
            parts[key].append(_lengths(tokenizer, cols[key]))
    return {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in parts.items()}


def _stats(values: np.ndarray, percentiles: Sequence[int]) -> dict[str, float]:
    if values.size == 0:
        return {**{f"p{p}": 0.0 for p in percentiles}, "max": 0, "mean": 0.0}
    out: dict[str, float] = {f"p{p}": float(np.percentile(values, p)) for p in percentiles}
    out["max"] = int(values.max())
    out["mean"] = float(values.mean())
    return out


def geometry(lengths: dict[str, np.ndarray], tokenizer: Any, percentiles: Sequence[int] = (50, 75, 90, 95, 99),
             sft_candidates: Sequence[int] = (1024, 1536, 2048, 3072),
             encode_candidates: Sequence[int] = (256, 384, 512, 768, 1024),
             truncation_budget: float = 0.02) -> dict[str, Any]:
    """The plan's token_geometry.json from measured lengths."""
    state, tactic, full = lengths["state"], lengths["tactic"], lengths["full"]
    n = int(full.size)
    ratios = state / np.maximum(tactic, 1) if n else np.zeros(0)
    # The wrapper's own cost: the plan assumed 45 tokens; measure it with this tokenizer.
    overhead = int(len(tokenizer(format_prompt(""), add_special_tokens=True)["input_ids"]))
    truncation = []
    for max_len in sft_candidates:
        truncated = int((full > max_len).sum())
        lost = int((state + overhead >= max_len).sum())
        truncation.append({"max_length": int(max_len), "truncated": truncated,
                           "truncated_pct": 100.0 * truncated / n if n else 0.0,
                           "tactic_lost": lost, "tactic_lost_pct": 100.0 * lost / n if n else 0.0})

    def pick(values: np.ndarray, candidates: Sequence[int]) -> tuple[int, bool]:
        for c in candidates:
            if n == 0 or (values > c).sum() / n < truncation_budget:
                return int(c), True
        return int(candidates[-1]), False  # nothing meets the budget: the largest, flagged

    sft_len, sft_ok = pick(full, sft_candidates)
    enc_len, enc_ok = pick(state, encode_candidates)
    return {
        "num_pairs": n,
        "state_tokens": _stats(state, percentiles),
        "tactic_tokens": _stats(tactic, percentiles),
        "full_tokens": _stats(full, percentiles),
        "state_tactic_ratio": {
            "median": float(np.median(ratios)) if n else 0.0,
            "mean": float(np.mean(ratios)) if n else 0.0,
            "p95": float(np.percentile(ratios, 95)) if n else 0.0,
        },
        "prompt_overhead_tokens": overhead,
        "truncation": truncation,
        "truncation_budget": truncation_budget,
        "recommended_sft_max_length": sft_len,
        "recommended_encode_max_length": enc_len,
        "sft_max_length_within_budget": sft_ok,
        "encode_max_length_within_budget": enc_ok,
    }


def plot_lengths(lengths: dict[str, np.ndarray], dest: str | os.PathLike[str]):
    from burnqed_assets.reports.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 3))
    for key in ("state", "tactic", "full"):
        if lengths[key].size:
            ax.hist(lengths[key], bins=40, alpha=0.5, label=key)
    ax.set(title="Token lengths", xlabel="tokens", ylabel="pairs")
    ax.legend()
    return save_figure(fig, dest)

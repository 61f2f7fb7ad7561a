"""Task M.7: token geometry of the clean pool -> data-driven max lengths.

Lengths are counted as the plan does (`len(tok.encode(text))`, special tokens included) but
in batches, streamed from DuckDB, so the whole pool never sits in Python as dicts. The full
example is `data.prompt.format_example(state, tactic)`, the exact text SFT trains on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from burnqed_assets.data import duck
from burnqed_assets.data.io import read_json
from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX, format_prompt


def recommended_max_length(token_geometry_path: str | os.PathLike[str], kind: str,
                           fallback: int) -> tuple[int, str]:
    """`recommended_<kind>_max_length` ("sft" or "encode") from token_geometry.json (plan M.7,
    Gotcha 17), else `fallback`; with a description of where the number came from."""
    if kind not in ("sft", "encode"):
        raise ValueError(f"kind must be 'sft' or 'encode', not {kind!r}")
    key = f"recommended_{kind}_max_length"
    path = Path(token_geometry_path)
    if path.exists():
        value = read_json(path).get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, f"token_geometry ({path})"
    return fallback, f"default {fallback} (token_geometry absent or without {key})"


@dataclass
class TokenLengths:
    """Token counts per pair of the clean pool, and how each was obtained."""

    state: np.ndarray
    tactic: np.ndarray
    full: np.ndarray  # the whole SFT example (prompt + completion)
    full_method: str = "exact"
    state_method: str = "exact"


@dataclass
class TokenGeometry:
    """The plan's token_geometry.json (`as_dict()`)."""

    num_pairs: int
    state_tokens: dict[str, float]
    tactic_tokens: dict[str, float]
    full_tokens: dict[str, float]
    state_tactic_ratio: dict[str, float]
    prompt_overhead_tokens: int
    full_length_method: str
    state_length_method: str
    truncation: list[dict[str, Any]]
    truncation_budget: float
    recommended_sft_max_length: int
    recommended_encode_max_length: int
    sft_max_length_within_budget: bool
    encode_max_length_within_budget: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _lengths(tokenizer: Any, texts: list[str], special: bool = True) -> np.ndarray:
    """`len(tokenizer.encode(t))` for each text (special tokens included unless `special=False`), batched."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the Rust tokenizer directly: same ids as tokenizer(...), parallel, no offsets
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        enc = encode(texts, add_special_tokens=special)
        return np.fromiter((len(e) for e in enc), dtype=np.int64, count=len(enc))
    ids = tokenizer(texts, add_special_tokens=special)["input_ids"]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))


def _grouped_lengths(con, query: str, n: int, tokenizer: Any, batch_size: int, special: bool) -> np.ndarray:
    """Per-pair token totals from `query`: rows `(text, [pair positions])`, one per distinct text.

    Each distinct text is tokenized once and its count added to every position that holds it
    (a hash aggregate in DuckDB, a bincount here: no join back to the pairs).
    """
    totals = np.zeros(n, dtype=np.int64)
    for batch in con.sql(query).to_arrow_reader(batch_size):
        lens = _lengths(tokenizer, batch.column(0).to_pylist(), special=special)
        pos = batch.column(1)
        totals += np.bincount(pos.flatten().to_numpy(), weights=np.repeat(lens, pos.value_lengths().to_numpy()),
                              minlength=n).astype(np.int64)
    return totals


def _segment_lengths(con, n: int, tokenizer: Any, batch_size: int, specials: int, sample_idx: np.ndarray,
                     sample_states: list[str]) -> np.ndarray | None:
    """State token counts as the sum over its lines (each line with its trailing newlines).

    Consecutive proof states repeat most hypothesis lines, so tokenizing each distinct line once
    is far cheaper than tokenizing every state. Valid only if the tokenizer never merges across
    a line boundary: checked exactly on the sampled states; None (use whole states) otherwise.
    """
    state = _grouped_lengths(con, r"""SELECT seg, list(pos) FROM (
            SELECT pos, unnest(regexp_extract_all(state, '[^
]*
*')) AS seg FROM pairs) WHERE seg <> '' GROUP BY seg""", n, tokenizer, batch_size, special=False) + specials
    exact = _lengths(tokenizer, sample_states)
    return state if np.array_equal(exact, state[sample_idx]) else None


def measure(pairs_path: str | os.PathLike[str], tokenizer: Any, batch_size: int = 2048,
            verify_sample: int = 2000) -> TokenLengths:
    """Token counts of state, tactic and full SFT example for every pair of a JSONL file.

    State counts come from distinct lines (`_segment_lengths`) or distinct states; distinct
    tactics are tokenized once. Every shortcut is checked exactly on an evenly spaced sample
    of `verify_sample` pairs and abandoned if any count differs. The full example's count is
    `prompt(state) + tactic - specials` when that identity holds exactly on a sample of
    `verify_sample` pairs (it does for byte-level BPE tokenizers, whose pre-tokenizer splits at
    the prompt's newlines); otherwise every full example is tokenized. `full_method` says which.
    """
    con = duck.connect(input_bytes=duck.file_bytes(pairs_path))
    duck.load_jsonl(con, pairs_path, "pairs_in", {"state": "VARCHAR", "tactic": "VARCHAR"}, ("state", "tactic"))
    n, max_line = con.execute("SELECT count(*), coalesce(max(_line), 0) FROM pairs_in").fetchall()[0]
    n = int(n)
    if n == max_line:  # gap-free line numbers (the fast path) are already positions: no copy
        con.execute("CREATE OR REPLACE TEMP VIEW pairs AS SELECT state, tactic, _line - 1 AS pos FROM pairs_in")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE pairs AS SELECT state, tactic, row_number() OVER (ORDER BY _line) - 1 AS pos "
                    "FROM pairs_in; DROP TABLE pairs_in")
    specials = int(_lengths(tokenizer, [""])[0])
    # an evenly spaced sample of pair positions (all pairs when there are few) checks every shortcut
    sample_idx = np.unique(np.linspace(0, n - 1, num=min(n, verify_sample)).astype(np.int64)) if n else np.zeros(0, np.int64)
    sample = con.execute("SELECT state, tactic FROM pairs WHERE pos IN (SELECT unnest(?::BIGINT[])) ORDER BY pos",
                         [sample_idx.tolist()]).fetchall()
    state = _segment_lengths(con, n, tokenizer, batch_size, specials, sample_idx, [s for s, _ in sample]) \
        if n else np.zeros(0, np.int64)
    state_method = "per line, verified exact on the sample"
    if state is None:
        state = _grouped_lengths(con, "SELECT state, list(pos) FROM pairs GROUP BY state", n, tokenizer, batch_size, True)
        state_method = "per distinct state"
    tactic = _grouped_lengths(con, "SELECT tactic, list(pos) FROM pairs GROUP BY tactic", n, tokenizer, batch_size, True)
    wrapper = int(_lengths(tokenizer, [PROMPT_PREFIX + PROMPT_SUFFIX])[0]) - specials
    estimate = state + wrapper + tactic - specials
    exact_sample = _lengths(tokenizer, [PROMPT_PREFIX + s + PROMPT_SUFFIX + t for s, t in sample])
    if n and np.array_equal(exact_sample, estimate[sample_idx]):
        full, method = estimate, f"additive, verified exact on {exact_sample.size} pairs"
    else:
        parts = []
        for batch in con.sql(f"SELECT {duck.sql_str(PROMPT_PREFIX)} || state || {duck.sql_str(PROMPT_SUFFIX)} || tactic "
                             "AS full FROM pairs ORDER BY pos").to_arrow_reader(batch_size):
            parts.append(_lengths(tokenizer, batch.column(0).to_pylist()))
        full, method = (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), "exact (every pair tokenized)"
    return TokenLengths(state=state, tactic=tactic, full=full, full_method=method, state_method=state_method)


def _stats(values: np.ndarray, percentiles: Sequence[int]) -> dict[str, float]:
    if values.size == 0:
        return {**{f"p{p}": 0.0 for p in percentiles}, "max": 0, "mean": 0.0}
    out: dict[str, float] = {f"p{p}": float(np.percentile(values, p)) for p in percentiles}
    out["max"] = int(values.max())
    out["mean"] = float(values.mean())
    return out


def geometry(lengths: TokenLengths, tokenizer: Any, percentiles: Sequence[int] = (50, 75, 90, 95, 99),
             sft_candidates: Sequence[int] = (1024, 1536, 2048, 3072),
             encode_candidates: Sequence[int] = (256, 384, 512, 768, 1024),
             truncation_budget: float = 0.02) -> TokenGeometry:
    """The plan's token_geometry.json from measured lengths."""
    state, tactic, full = lengths.state, lengths.tactic, lengths.full
    n = int(full.size)
    ratios = state / np.maximum(tactic, 1) if n else np.zeros(0)
    # The wrapper's own cost: the plan assumed 45 tokens; measure it with this tokenizer.
    overhead = len(tokenizer(format_prompt(""), add_special_tokens=True)["input_ids"])
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
    return TokenGeometry(
        num_pairs=n,
        state_tokens=_stats(state, percentiles),
        tactic_tokens=_stats(tactic, percentiles),
        full_tokens=_stats(full, percentiles),
        state_tactic_ratio={
            "median": float(np.median(ratios)) if n else 0.0,
            "mean": float(np.mean(ratios)) if n else 0.0,
            "p95": float(np.percentile(ratios, 95)) if n else 0.0,
        },
        prompt_overhead_tokens=overhead,
        full_length_method=lengths.full_method,
        state_length_method=lengths.state_method,
        truncation=truncation,
        truncation_budget=truncation_budget,
        recommended_sft_max_length=sft_len,
        recommended_encode_max_length=enc_len,
        sft_max_length_within_budget=sft_ok,
        encode_max_length_within_budget=enc_ok,
    )


def plot_lengths(lengths: TokenLengths, dest: str | os.PathLike[str]):
    from burnqed_assets.reports.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 3))
    for key in ("state", "tactic", "full"):
        values = getattr(lengths, key)
        if values.size:
            ax.hist(values, bins=40, alpha=0.5, label=key)
    ax.set(title="Token lengths", xlabel="tokens", ylabel="pairs")
    ax.legend()
    return save_figure(fig, dest)

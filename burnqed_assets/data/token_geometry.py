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
import pyarrow as pa

from burnqed_assets.data import duck
from burnqed_assets.models.prompt import PROMPT_PREFIX, PROMPT_SUFFIX, format_prompt


def _lengths(tokenizer: Any, texts: list[str], special: bool = True) -> np.ndarray:
    """`len(tokenizer.encode(t))` for each text (special tokens included unless `special=False`), batched."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the Rust tokenizer directly: same ids as tokenizer(...), less Python per text
        enc = backend.encode_batch(texts, add_special_tokens=special)
        return np.fromiter((len(e.ids) for e in enc), dtype=np.int64, count=len(enc))
    ids = tokenizer(texts, add_special_tokens=special)["input_ids"]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))


def _segment_lengths(con, tokenizer: Any, batch_size: int, specials: int, sample_idx: np.ndarray) -> np.ndarray | None:
    """State token counts as the sum over its lines (each line with its trailing newlines).

    Consecutive proof states repeat most hypothesis lines, so tokenizing each distinct line once
    is far cheaper than tokenizing every state. Valid only if the tokenizer never merges across
    a line boundary: checked exactly on the sampled states; None (use whole states) otherwise.
    """
    con.execute(r"""CREATE OR REPLACE TEMP TABLE _seg AS
        SELECT pos, unnest(regexp_extract_all(state, '[^
]*
*')) AS seg FROM pairs""")
    con.execute("DELETE FROM _seg WHERE seg = ''")
    con.execute("CREATE OR REPLACE TEMP TABLE _useg AS SELECT seg, row_number() OVER () - 1 AS uid "
                "FROM (SELECT DISTINCT seg FROM _seg)")
    lens = np.zeros(int(duck.scalar(con, "SELECT count(*) FROM _useg")), dtype=np.int64)
    for batch in con.sql("SELECT uid, seg FROM _useg ORDER BY uid").to_arrow_reader(batch_size):
        cols = batch.to_pydict()
        lens[np.asarray(cols["uid"], dtype=np.int64)] = _lengths(tokenizer, cols["seg"], special=False)
    con.register("_seg_len", pa.table({"uid": np.arange(lens.size, dtype=np.int64), "n": lens}))
    totals = con.sql("""SELECT p.pos, coalesce(t.n, 0) AS n FROM pairs p LEFT JOIN (
            SELECT s.pos, sum(l.n) AS n FROM _seg s JOIN _useg u USING (seg) JOIN _seg_len l USING (uid) GROUP BY s.pos
        ) t USING (pos) ORDER BY p.pos""").fetchnumpy()["n"]
    con.execute("DROP TABLE _seg; DROP TABLE _useg")
    con.unregister("_seg_len")
    state = np.asarray(totals, dtype=np.int64) + specials
    rows = con.execute("SELECT state FROM pairs JOIN _s USING (pos) ORDER BY pos").fetchall()
    exact = _lengths(tokenizer, [r[0] for r in rows])
    return state if np.array_equal(exact, state[sample_idx]) else None


def _distinct_lengths(con, column: str, tokenizer: Any, batch_size: int) -> np.ndarray:
    """Token counts per pair of `column`, tokenizing each distinct text once (tactics repeat a lot)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _u AS SELECT DISTINCT {column} AS text FROM pairs")
    con.execute("CREATE OR REPLACE TEMP TABLE _u2 AS SELECT text, row_number() OVER () - 1 AS uid FROM _u")
    texts_n = int(duck.scalar(con, "SELECT count(*) FROM _u2"))
    lens = np.zeros(texts_n, dtype=np.int64)
    for batch in con.sql("SELECT uid, text FROM _u2 ORDER BY uid").to_arrow_reader(batch_size):
        cols = batch.to_pydict()
        lens[np.asarray(cols["uid"], dtype=np.int64)] = _lengths(tokenizer, cols["text"])
    uid = con.sql(f"SELECT u.uid FROM pairs p JOIN _u2 u ON p.{column} = u.text ORDER BY p.pos").fetchnumpy()["uid"]
    return lens[np.asarray(uid, dtype=np.int64)]


def measure(pairs_path: str | os.PathLike[str], tokenizer: Any, batch_size: int = 2048,
            verify_sample: int = 2000) -> dict[str, Any]:
    """Token counts of state, tactic and full SFT example for every pair of a JSONL file.

    State counts come from distinct lines (`_segment_lengths`) or distinct states; distinct
    tactics are tokenized once. Every shortcut is checked exactly on an evenly spaced sample
    of `verify_sample` pairs and abandoned if any count differs. The full example's count is
    `prompt(state) + tactic - specials` when that identity holds exactly on a sample of
    `verify_sample` pairs (it does for byte-level BPE tokenizers, whose pre-tokenizer splits at
    the prompt's newlines); otherwise every full example is tokenized. `full_method` says which.
    """
    con = duck.connect()
    duck.load_pairs(con, pairs_path, "pairs_in", {"state": "VARCHAR", "tactic": "VARCHAR"}, ("state", "tactic"))
    n, max_line = con.execute("SELECT count(*), coalesce(max(_line), 0) FROM pairs_in").fetchall()[0]
    # gap-free line numbers (sidecar, fast path) are already positions; otherwise renumber
    pos = "_line - 1" if n == max_line else "row_number() OVER (ORDER BY _line) - 1"
    con.execute(f"CREATE OR REPLACE TABLE pairs AS SELECT state, tactic, {pos} AS pos FROM pairs_in; DROP TABLE pairs_in")
    n = int(n)
    specials = int(_lengths(tokenizer, [""])[0])
    # an evenly spaced sample of pair positions (all pairs when there are few) checks every shortcut
    sample_idx = np.unique(np.linspace(0, n - 1, num=min(n, verify_sample)).astype(np.int64)) if n else np.zeros(0, np.int64)
    con.execute("CREATE OR REPLACE TEMP TABLE _s (pos BIGINT)")
    con.executemany("INSERT INTO _s VALUES (?)", [[int(i)] for i in sample_idx])
    state = _segment_lengths(con, tokenizer, batch_size, specials, sample_idx) if n else np.zeros(0, np.int64)
    state_method = "per line, verified exact on the sample"
    if state is None:
        state, state_method = _distinct_lengths(con, "state", tokenizer, batch_size), "per distinct state"
    tactic = _distinct_lengths(con, "tactic", tokenizer, batch_size)
    wrapper = int(_lengths(tokenizer, [PROMPT_PREFIX + PROMPT_SUFFIX])[0]) - specials
    estimate = state + wrapper + tactic - specials
    rows = con.execute("SELECT p.state, p.tactic FROM pairs p JOIN _s USING (pos) ORDER BY pos").fetchall()
    exact_sample = _lengths(tokenizer, [PROMPT_PREFIX + s + PROMPT_SUFFIX + t for s, t in rows])
    if n and np.array_equal(exact_sample, estimate[sample_idx]):
        full, method = estimate, f"additive, verified exact on {exact_sample.size} pairs"
    else:
        parts = []
        for batch in con.sql("SELECT ? || state || ? || tactic AS full FROM pairs ORDER BY pos",
                             params=[PROMPT_PREFIX, PROMPT_SUFFIX]).to_arrow_reader(batch_size):
            parts.append(_lengths(tokenizer, batch.column(0).to_pylist()))
        full, method = (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), "exact (every pair tokenized)"
    return {"state": state, "tactic": tactic, "full": full, "full_method": method, "state_method": state_method}


def _stats(values: np.ndarray, percentiles: Sequence[int]) -> dict[str, float]:
    if values.size == 0:
        return {**{f"p{p}": 0.0 for p in percentiles}, "max": 0, "mean": 0.0}
    out: dict[str, float] = {f"p{p}": float(np.percentile(values, p)) for p in percentiles}
    out["max"] = int(values.max())
    out["mean"] = float(values.mean())
    return out


def geometry(lengths: dict[str, Any], tokenizer: Any, percentiles: Sequence[int] = (50, 75, 90, 95, 99),
             sft_candidates: Sequence[int] = (1024, 1536, 2048, 3072),
             encode_candidates: Sequence[int] = (256, 384, 512, 768, 1024),
             truncation_budget: float = 0.02) -> dict[str, Any]:
    """The plan's token_geometry.json from measured lengths."""
    state, tactic, full = lengths["state"], lengths["tactic"], lengths["full"]
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
        "full_length_method": lengths.get("full_method", "exact"),
        "state_length_method": lengths.get("state_method", "exact"),
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

"""Task M.8 / 0.4: proof structure, depth buckets, tactic vocabulary, import surface.

Field names follow the plan's `exploration_report.json` (`clean_theorems`,
`contrastive_eligible`, `top5_tactic_share`, ...). The clean pool is read through its
`data.pairs` index: per-theorem counts and depths are numpy operations on the id and depth
columns, and each distinct tactic text is decoded once for its name.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from itertools import repeat
from operator import methodcaller
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from burnqed_assets.data.pairs import DUCKDB_TRIM_CHARS, PairTable, read_pairs

DEPTH_BUCKETS = ("0", "1-2", "3-4", "5+")
# The plan's tactic name (`re.split(r"[\s\[\(]", tactic.strip())[0]`), as the SQL rule before this
# computed it, so reports keep their bytes: DuckDB's trim (`DUCKDB_TRIM_CHARS`), then everything
# before the first RE2 `\s` ([\t\n\f\r ], no \v), '[' or '('.
_TACTIC_NAME = re.compile(r"[^\t\n\f\r \[(]*")
_GROUP0 = methodcaller("group", 0)
_IMPORT = re.compile(r"^\s*import\s+(\S+)", re.MULTILINE)


def tactic_name(tactic: str) -> str:
    """The tactic's name: its first token before whitespace, '[' or '('."""
    return _TACTIC_NAME.match(tactic.strip(DUCKDB_TRIM_CHARS)).group(0)


def depth_bucket(depth: int) -> str:
    return "5+" if depth >= 5 else "3-4" if depth >= 3 else "1-2" if depth >= 1 else "0"


def _percentiles(values: np.ndarray, pcts: Iterable[int]) -> dict[str, float]:
    if values.size == 0:
        return {f"p{p}": 0.0 for p in pcts}
    return {f"p{p}": float(np.percentile(values, p)) for p in pcts}


def import_surface(lean_dirs: Iterable[Path] = (), proof_jsonl: Iterable[Path] = ()) -> tuple[Counter, str]:
    """Count `import X` lines in migrated .lean files, else in the `full_proof` of a proofs JSONL."""
    counts: Counter = Counter()
    for d in lean_dirs:
        files = sorted(Path(d).rglob("*.lean")) if Path(d).is_dir() else []
        for f in files:
            counts.update(_IMPORT.findall(f.read_text(encoding="utf-8", errors="replace")))
        if files:
            return counts, f"{len(files)} .lean files under {d}"
    for path in proof_jsonl:
        if Path(path).is_file():
            from burnqed_assets.data import duck

            con = duck.connect(threads=1)
            n = duck.load_jsonl(con, path, "proofs", {"full_proof": "VARCHAR"}, ("full_proof",))
            for (proof,) in con.execute("SELECT full_proof FROM proofs").fetchall():
                counts.update(_IMPORT.findall(proof))
            return counts, f"full_proof of {n} records in {path}"
    return counts, "no proof files found: import analysis skipped"


@dataclass
class ExplorationReport:
    """The plan's exploration_report.json (`as_dict()`) and the per-theorem arrays its plots need."""

    clean_theorems: int
    clean_pairs: int
    proof_length: dict[str, float]
    depth_distribution: dict[str, int]
    depth_distribution_share: dict[str, float]
    pair_depth_distribution: dict[str, int]
    deep_pairs: int
    deep_pair_share: float
    contrastive_eligible: int
    contrastive_eligible_depth2: int
    contrastive_pool_warning: bool
    top_30_tactics: list[dict[str, Any]]
    top5_tactic_share: float
    top10_tactic_share: float
    unique_tactic_names: int
    top_20_imports: list[dict[str, Any]]
    unique_import_paths: int
    import_source: str
    clean_pool: dict[str, Any] | None = None  # the M.6 counts, when its report was given
    proof_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    max_depths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("clean_pool", "proof_lengths",
                                                                                      "max_depths")}
        if self.clean_pool is not None:
            out["clean_pool"] = self.clean_pool
        return out


def _tactic_names(t: PairTable) -> list[tuple[str, int]]:
    """(name, pairs) per tactic name, most pairs first, then by name (one name per distinct tactic)."""
    per_tactic = np.bincount(t.tactic_id, minlength=len(t.tactics))
    used = np.flatnonzero(per_tactic)
    texts = [t.tactics[i] for i in used.tolist()]
    # every used tactic decoded in one pass (a JSON array of their escaped texts), named with C-level maps
    tactics = orjson.loads(b'["' + b'","'.join(texts) + b'"]') if texts else []
    names: Counter = Counter()
    for name, c in zip(map(_GROUP0, map(_TACTIC_NAME.match, map(str.strip, tactics, repeat(DUCKDB_TRIM_CHARS)))),
                       per_tactic[used].tolist()):
        names[name] += c
    return sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))


def explore(clean_pairs: str | os.PathLike[str], clean_pool_report: dict[str, Any] | None = None,
            lean_dirs: Iterable[Path] = (), proof_jsonl: Iterable[Path] = (),
            percentiles: tuple[int, ...] = (25, 50, 75, 90, 95), contrastive_min_depth: int = 3,
            contrastive_min_theorems: int = 3000) -> ExplorationReport:
    """The exploration report of the clean pool (read through its `data.pairs` index: per-theorem
    counts and depths are array operations, each distinct tactic's name is taken once)."""
    t = read_pairs(clean_pairs, ("theorem", "tactic"))
    depth = t.depth_or(0)
    n_ids = len(t.theorems)
    counts = np.bincount(t.theorem_id, minlength=n_ids).astype(np.int64)
    deepest = np.full(n_ids, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(deepest, t.theorem_id, depth)
    by_name = np.array(sorted(range(n_ids), key=t.theorems.__getitem__), dtype=np.int64)
    lengths, depths = counts[by_name], deepest[by_name]
    n_theorems, n_pairs = int(lengths.size), int(lengths.sum())
    buckets = Counter(depth_bucket(int(d)) for d in depths.tolist())
    values, value_counts = np.unique(depth, return_counts=True)
    pair_depths = dict(zip(values.tolist(), value_counts.tolist()))
    deep_pairs = sum(v for k, v in pair_depths.items() if k >= 3)
    tactic_rows = _tactic_names(t)
    total = sum(c for _, c in tactic_rows) or 1
    top, cumulative = [], 0
    for name, c in tactic_rows[:30]:
        cumulative += c
        top.append({"tactic": name, "count": int(c), "share": c / total, "cumulative_share": cumulative / total})
    imports, import_source = import_surface(lean_dirs, proof_jsonl)
    eligible = int((depths >= contrastive_min_depth).sum())
    pool = None
    if clean_pool_report:
        pool = {k: clean_pool_report.get(k) for k in (
            "traced_pairs", "traced_theorems", "clean_pairs", "clean_theorems", "clean_fraction",
            "contaminated_pairs", "malformed_states", "duplicate_pairs", "bad_lines")}
    return ExplorationReport(
        clean_theorems=n_theorems,
        clean_pairs=n_pairs,
        proof_length={**_percentiles(lengths, percentiles), "mean": float(lengths.mean()) if n_theorems else 0.0},
        depth_distribution={b: int(buckets.get(b, 0)) for b in DEPTH_BUCKETS},
        depth_distribution_share={b: (buckets.get(b, 0) / n_theorems if n_theorems else 0.0) for b in DEPTH_BUCKETS},
        pair_depth_distribution={str(k): int(v) for k, v in pair_depths.items()},
        deep_pairs=int(deep_pairs),
        deep_pair_share=deep_pairs / n_pairs if n_pairs else 0.0,
        contrastive_eligible=eligible,
        contrastive_eligible_depth2=int((depths >= 2).sum()),
        contrastive_pool_warning=eligible < contrastive_min_theorems,
        top_30_tactics=top,
        top5_tactic_share=sum(c for _, c in tactic_rows[:5]) / total,
        top10_tactic_share=sum(c for _, c in tactic_rows[:10]) / total,
        unique_tactic_names=len(tactic_rows),
        top_20_imports=[{"module": m, "count": c} for m, c in imports.most_common(20)],
        unique_import_paths=len(imports),
        import_source=import_source,
        clean_pool=pool,
        proof_lengths=lengths,
        max_depths=depths,
    )


def plot_exploration(report: ExplorationReport, out_dir: Path) -> dict[str, Path]:
    """Histograms of proof length and max depth, and the top-tactic bar chart, as PNG files."""
    from burnqed_assets.reports.plots import plt, save_figure

    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(report.proof_lengths, bins=min(40, max(5, int(report.proof_lengths.max(initial=1)))))
    ax.set(title="Proof length (tactics per theorem)", xlabel="tactics", ylabel="theorems")
    paths["proof_length"] = save_figure(fig, out_dir / "proof_length_hist.png")
    fig, ax = plt.subplots(figsize=(5, 3))
    dist = report.depth_distribution
    ax.bar(list(dist), list(dist.values()), color="tab:green")
    ax.set(title="Max depth per theorem", xlabel="depth bucket", ylabel="theorems")
    paths["depth"] = save_figure(fig, out_dir / "depth_distribution.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    top = report.top_30_tactics[:20][::-1]
    ax.barh([t["tactic"] or "(empty)" for t in top], [t["count"] for t in top], color="tab:orange")
    ax.set(title="Top tactics", xlabel="pairs")
    paths["tactics"] = save_figure(fig, out_dir / "top_tactics.png")
    return paths


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)

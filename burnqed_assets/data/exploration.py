"""Task M.8 / 0.4: proof structure, depth buckets, tactic vocabulary, import surface.

Field names follow the plan's `exploration_report.json` (`clean_theorems`,
`contrastive_eligible`, `top5_tactic_share`, ...). Aggregation runs in DuckDB; only the
per-theorem arrays (one number per theorem) come to numpy for the plan's percentiles.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from burnqed_assets.data import duck

DEPTH_BUCKETS = ("0", "1-2", "3-4", "5+")
# The plan's tactic name: the first token before whitespace, '[' or '('.
TACTIC_NAME_SQL = r"regexp_extract(trim(tactic), '^[^\s\[\(]*')"
_IMPORT = re.compile(r"^\s*import\s+(\S+)", re.MULTILINE)


def tactic_name(tactic: str) -> str:
    """Python twin of TACTIC_NAME_SQL (the plan's `re.split(r'[\\s\\[\\(]', t)[0]`)."""
    return re.split(r"[\s\[\(]", tactic.strip())[0]


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
            con = duck.connect(threads=1)
            n = duck.load_jsonl(con, path, "proofs", {"full_proof": "VARCHAR"}, ("full_proof",))
            for (proof,) in con.execute("SELECT full_proof FROM proofs").fetchall():
                counts.update(_IMPORT.findall(proof))
            return counts, f"full_proof of {n} records in {path}"
    return counts, "no proof files found: import analysis skipped"


def explore(clean_pairs: str | os.PathLike[str], clean_pool_report: dict[str, Any] | None = None,
            lean_dirs: Iterable[Path] = (), proof_jsonl: Iterable[Path] = (),
            percentiles: tuple[int, ...] = (25, 50, 75, 90, 95), contrastive_min_depth: int = 3,
            contrastive_min_theorems: int = 3000) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The exploration report and the arrays its plots need."""
    con = duck.connect()
    duck.load_pairs(con, clean_pairs, "pairs", {"theorem": "VARCHAR", "tactic": "VARCHAR", "depth": "BIGINT"},
                    ("theorem", "tactic"))
    per_theorem = con.execute(
        "SELECT count(*) AS n, max(coalesce(depth, 0)) AS d FROM pairs GROUP BY theorem ORDER BY theorem"
    ).fetchnumpy()
    lengths, depths = per_theorem["n"].astype(np.int64), per_theorem["d"].astype(np.int64)
    n_theorems, n_pairs = int(lengths.size), int(lengths.sum())
    buckets = Counter(depth_bucket(int(d)) for d in depths)
    pair_depths = dict(con.execute("SELECT coalesce(depth, 0), count(*) FROM pairs GROUP BY 1 ORDER BY 1").fetchall())
    deep_pairs = sum(v for k, v in pair_depths.items() if k >= 3)
    tactic_rows = con.execute(
        f"SELECT {TACTIC_NAME_SQL} AS name, count(*) AS c FROM pairs GROUP BY 1 ORDER BY c DESC, name"
    ).fetchall()
    total = sum(c for _, c in tactic_rows) or 1
    top, cumulative = [], 0
    for name, c in tactic_rows[:30]:
        cumulative += c
        top.append({"tactic": name, "count": int(c), "share": c / total, "cumulative_share": cumulative / total})
    imports, import_source = import_surface(lean_dirs, proof_jsonl)
    eligible = int((depths >= contrastive_min_depth).sum())
    report = {
        "clean_theorems": n_theorems,
        "clean_pairs": n_pairs,
        "proof_length": {**_percentiles(lengths, percentiles), "mean": float(lengths.mean()) if n_theorems else 0.0},
        "depth_distribution": {b: int(buckets.get(b, 0)) for b in DEPTH_BUCKETS},
        "depth_distribution_share": {b: (buckets.get(b, 0) / n_theorems if n_theorems else 0.0) for b in DEPTH_BUCKETS},
        "pair_depth_distribution": {str(k): int(v) for k, v in pair_depths.items()},
        "deep_pairs": int(deep_pairs),
        "deep_pair_share": deep_pairs / n_pairs if n_pairs else 0.0,
        "contrastive_eligible": eligible,
        "contrastive_eligible_depth2": int((depths >= 2).sum()),
        "contrastive_pool_warning": eligible < contrastive_min_theorems,
        "top_30_tactics": top,
        "top5_tactic_share": sum(c for _, c in tactic_rows[:5]) / total,
        "top10_tactic_share": sum(c for _, c in tactic_rows[:10]) / total,
        "unique_tactic_names": len(tactic_rows),
        "top_20_imports": [{"module": m, "count": c} for m, c in imports.most_common(20)],
        "unique_import_paths": len(imports),
        "import_source": import_source,
    }
    if clean_pool_report:
        report["clean_pool"] = {k: clean_pool_report.get(k) for k in (
            "traced_pairs", "traced_theorems", "clean_pairs", "clean_theorems", "clean_fraction",
            "contaminated_pairs", "malformed_states", "duplicate_pairs", "bad_lines")}
    return report, {"proof_lengths": lengths, "max_depths": depths}


def plot_exploration(report: dict[str, Any], arrays: dict[str, np.ndarray], out_dir: Path) -> dict[str, Path]:
    """Histograms of proof length and max depth, and the top-tactic bar chart, as PNG files."""
    from burnqed_assets.reports.plots import plt, save_figure

    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(arrays["proof_lengths"], bins=min(40, max(5, int(arrays["proof_lengths"].max(initial=1)))))
    ax.set(title="Proof length (tactics per theorem)", xlabel="tactics", ylabel="theorems")
    paths["proof_length"] = save_figure(fig, out_dir / "proof_length_hist.png")
    fig, ax = plt.subplots(figsize=(5, 3))
    dist = report["depth_distribution"]
    ax.bar(list(dist), list(dist.values()), color="tab:green")
    ax.set(title="Max depth per theorem", xlabel="depth bucket", ylabel="theorems")
    paths["depth"] = save_figure(fig, out_dir / "depth_distribution.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    top = report["top_30_tactics"][:20][::-1]
    ax.barh([t["tactic"] or "(empty)" for t in top], [t["count"] for t in top], color="tab:orange")
    ax.set(title="Top tactics", xlabel="pairs")
    paths["tactics"] = save_figure(fig, out_dir / "top_tactics.png")
    return paths


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)

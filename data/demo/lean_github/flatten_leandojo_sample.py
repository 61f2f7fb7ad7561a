"""Flatten the real LeanDojo Benchmark 4 sample into LEAN-GitHub-style rows (one row per tactic).

Usage: python data/demo/lean_github/flatten_leandojo_sample.py   (rewrites lean_github_rows.jsonl)

Input: data/demo/raw_samples/real_leandojo_benchmark4_random_test_head.jsonl (15 theorems, 35
traced tactics, mathlib4 @ 29dcec07, CC BY 2.0; see data/demo/README.md). Output rows have the
columns of the internlm/Lean-Github parquet files: url, commit, file_path, full_name, start,
end, tactic, state_before, state_after, plus `_provenance` naming the source record. Theorems
traced in term mode (no tactics) produce no row; nothing is edited or invented.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "raw_samples" / "real_leandojo_benchmark4_random_test_head.jsonl"
OUT = HERE / "lean_github_rows.jsonl"


def main() -> None:
    rows = []
    with open(SOURCE, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            rec = json.loads(line)
            for i, step in enumerate(rec["traced_tactics"]):
                rows.append({
                    "url": rec["url"], "commit": rec["commit"], "file_path": rec["file_path"],
                    "full_name": rec["full_name"], "start": rec["start"], "end": rec["end"],
                    "tactic": step["tactic"], "state_before": step["state_before"], "state_after": step["state_after"],
                    "_provenance": f"{SOURCE.name}:{line_no} traced_tactics[{i}]",
                })
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"wrote {len(rows)} rows from {SOURCE.name} to {OUT}")


if __name__ == "__main__":
    main()

"""Real demo SFT records built from the shipped traces (tests only)."""

from __future__ import annotations

import json
from pathlib import Path

from burnqed_assets.data.prompt import format_prompt
from burnqed_assets.settings import DEMO_INPUTS


def demo_pairs() -> list[dict]:
    rows = []
    for path in sorted((DEMO_INPUTS / "traced").glob("*_traces.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("state") and rec.get("tactic"):
                    rows.append(rec)
    return rows


def sft_records(pairs: list[dict]) -> list[dict]:
    return [{"prompt": format_prompt(p["state"]), "completion": p["tactic"], "theorem": p["theorem"],
             "source": p.get("source", "goedel_workbook")} for p in pairs]


def write_sft_split(dest: Path, n_train: int = 48, n_val: int = 8) -> tuple[Path, Path]:
    """Theorem-level split of the first demo pairs into dest/train.jsonl and dest/val.jsonl."""
    pairs = demo_pairs()
    theorems = sorted({p["theorem"] for p in pairs})
    val_theorems = set(theorems[::8])
    train = [p for p in pairs if p["theorem"] not in val_theorems][:n_train]
    val = [p for p in pairs if p["theorem"] in val_theorems][:n_val]
    dest.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("val.jsonl", val)):
        with open(dest / name, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in sft_records(rows))
    return dest / "train.jsonl", dest / "val.jsonl"

"""Task M.11: the community release bundle, built locally (no upload).

Layout under `release_dir`:
  proofs.parquet        name, full_proof, origin (migrated .lean files, else the raw proofs JSONL)
  pairs.parquet         the clean traced pairs
  dropped_theorems.json theorems dropped by the integrity sweep, with reasons
  lean-toolchain        the Lean version the pairs target
  CHANGELOG.md          what was migrated, kept and dropped, with counts
  manifest.json         every file with its size, sha256 and row count
Nothing in it depends on the clock, so a re-run on the same inputs gives the same bytes
(except Parquet metadata written by the library version).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from burnqed_assets.data import duck
from burnqed_assets.data.io import atomic_open, atomic_path, file_sha256, write_json
from burnqed_assets.paths import (
    RELEASE_CHANGELOG_FILE,
    RELEASE_DROPPED_FILE,
    RELEASE_MANIFEST_FILE,
    RELEASE_PAIRS_FILE,
    RELEASE_PROOFS_FILE,
    RELEASE_TOOLCHAIN_FILE,
)

PROOFS_SCHEMA = pa.schema([("name", pa.string()), ("full_proof", pa.string()), ("origin", pa.string())])


@dataclass
class ReleaseInfo:
    proofs: int
    pairs: int
    dropped_theorems: int
    proofs_origin: str
    files: list[str]
    release_dir: str


def _write_proofs(dest: Path, lean_dir: Path | None, proofs_jsonl: Path | None) -> tuple[int, str]:
    """Stream proofs into Parquet in batches (a migrated corpus is ~30K files)."""
    files = sorted(lean_dir.rglob("*.lean")) if lean_dir and lean_dir.is_dir() else []
    with atomic_path(dest) as tmp:
        writer = pq.ParquetWriter(tmp, PROOFS_SCHEMA, compression="zstd")
        try:
            if files:
                for i in range(0, len(files), 1000):
                    chunk = files[i: i + 1000]
                    writer.write_table(pa.table({
                        "name": [f.stem for f in chunk],
                        "full_proof": [f.read_text(encoding="utf-8", errors="replace") for f in chunk],
                        "origin": [str(f.relative_to(lean_dir)) for f in chunk]}, schema=PROOFS_SCHEMA))
                # relative to the bundle: the same text (and manifest bytes) from any data root
                origin = f"{len(files)} migrated .lean files under {os.path.relpath(lean_dir, dest.parent)}"
                n = len(files)
            elif proofs_jsonl and proofs_jsonl.is_file():
                con = duck.connect(threads=1)
                n = duck.load_jsonl(con, proofs_jsonl, "proofs", {"problem_id": "VARCHAR", "full_proof": "VARCHAR"},
                                    ("problem_id", "full_proof"))
                reader = con.sql(
                    "SELECT problem_id AS name, full_proof, ? || ':' || _line AS origin FROM proofs ORDER BY _line",
                    params=[proofs_jsonl.name]).to_arrow_reader(1000)
                for batch in reader:
                    writer.write_table(pa.Table.from_batches([batch]).cast(PROOFS_SCHEMA))
                origin = (f"{n} source proofs from {os.path.relpath(proofs_jsonl, dest.parent)} "
                          "(no migrated .lean files found)")
            else:
                n, origin = 0, "no proofs found"
        finally:
            writer.close()
    return n, origin


def build_release(release_dir: str | os.PathLike[str], clean_pairs: Path, clean_pool_report: dict[str, Any],
                  lean_version: str, profile: str, lean_dir: Path | None = None,
                  proofs_jsonl: Path | None = None, extra_dropped: list[dict[str, Any]] | None = None) -> ReleaseInfo:
    out = Path(release_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_proofs, proofs_origin = _write_proofs(out / RELEASE_PROOFS_FILE, lean_dir, proofs_jsonl)
    con = duck.connect()
    duck.load_jsonl(con, clean_pairs, "pairs", {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR",
                                                "state_after": "VARCHAR", "depth": "BIGINT", "source": "VARCHAR"},
                    ("theorem", "state", "tactic"))
    n_pairs = duck.copy_to_parquet(
        con, "SELECT theorem, state, tactic, state_after, depth, source FROM pairs ORDER BY _line", out / RELEASE_PAIRS_FILE)
    dropped = list(extra_dropped or []) + [{**d, "stage": "integrity sweep (M.6)"}
                                           for d in clean_pool_report.get("dropped_theorems", [])]
    write_json(out / RELEASE_DROPPED_FILE, dropped)
    with atomic_open(out / RELEASE_TOOLCHAIN_FILE) as fh:
        fh.write(f"leanprover/lean4:{lean_version}\n")
    r = clean_pool_report
    changelog = [
        f"# Lean-workbook-proofs, Lean {lean_version} ({profile} profile build)",
        "",
        "## Contents",
        f"- proofs.parquet: {n_proofs} proofs ({proofs_origin})",
        f"- pairs.parquet: {n_pairs} traced (state, tactic) pairs that passed the integrity sweep",
        f"- dropped_theorems.json: {len(dropped)} theorems dropped, each with its reason",
        "",
        "## Integrity sweep (plan Task M.6)",
        f"- traced pairs: {r.get('traced_pairs')} from {r.get('traced_theorems')} theorems",
        f"- contaminated pairs (sorry/admit/cheat/sorryAx): {r.get('contaminated_pairs')}",
        (f"- malformed states: {r.get('malformed_states')}; duplicate pairs: {r.get('duplicate_pairs')}; "
         f"unreadable lines: {r.get('bad_lines')}"),
        (f"- clean pool: {r.get('clean_pairs')} pairs, {r.get('clean_theorems')} theorems "
         f"({100 * float(r.get('clean_fraction') or 0):.1f}% of traced pairs)"),
        "",
        "Not uploaded: publishing is a manual step (plan Task M.11).",
    ]
    if profile == "demo":
        changelog.insert(2, "Demo build: inputs are the shipped samples (derived and hand-written traces); not a research release.\n")
    with atomic_open(out / RELEASE_CHANGELOG_FILE) as fh:
        fh.write("\n".join(changelog) + "\n")
    manifest = {}
    for name, rows in ((RELEASE_PROOFS_FILE, n_proofs), (RELEASE_PAIRS_FILE, n_pairs),
                       (RELEASE_DROPPED_FILE, len(dropped)), (RELEASE_TOOLCHAIN_FILE, 1),
                       (RELEASE_CHANGELOG_FILE, None)):
        p = out / name
        manifest[name] = {"bytes": p.stat().st_size, "sha256": file_sha256(p), "rows": rows}
    write_json(out / RELEASE_MANIFEST_FILE, manifest)
    return ReleaseInfo(proofs=n_proofs, pairs=n_pairs, dropped_theorems=len(dropped), proofs_origin=proofs_origin,
                       files=sorted(manifest) + [RELEASE_MANIFEST_FILE], release_dir=str(out))

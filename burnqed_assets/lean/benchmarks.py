"""miniF2F port to Lean 4.27 (plan Task M.4): normalise the three source shapes, apply the
rename table to the statements, and check that every statement elaborates.

Shapes (../shared/benchmarks/README.md): miniF2F-v2s has the key `informal statement` (with a
space), v2c `informal_statement`, v1 `informal_prefix` plus the pretty-printed root `goal`.
All become `{name, header, formal_statement, split, source, goal, informal_statement}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import BadInputError, BadLine, LineReport, iter_jsonl
from burnqed_assets.lean.env import LeanEnv
from burnqed_assets.lean.migration import RenameRule, apply_renames
from burnqed_assets.lean.verify import strip_comments_and_strings

SPLIT_LABELS = {"test": "test", "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid"}
INFORMAL_KEYS = ("informal_statement", "informal statement", "informal_prefix")
REQUIRED = ("name", "formal_statement", "split")


class UnknownBenchmarkShapeError(ValueError):
    """The benchmark file does not look like any known miniF2F shape."""


def normalise_record(rec: dict[str, Any], source: str, path: Path, line: int) -> dict[str, Any]:
    missing = [k for k in REQUIRED if not isinstance(rec.get(k), str) or not rec[k].strip()]
    if missing:
        raise UnknownBenchmarkShapeError(
            f"{path}:{line}: unknown benchmark shape: missing {missing}; keys present: {sorted(rec)} "
            f"(expected name, split, formal_statement, header and one of {list(INFORMAL_KEYS)})")
    split = SPLIT_LABELS.get(rec["split"].strip().lower())
    if split is None:
        raise UnknownBenchmarkShapeError(f"{path}:{line}: unknown split label {rec['split']!r} "
                                         f"(known: {sorted(SPLIT_LABELS)})")
    informal = next((rec[k] for k in INFORMAL_KEYS if isinstance(rec.get(k), str)), None)
    statement = rec["formal_statement"].rstrip()
    if not statement.endswith(":= by"):
        statement = statement.removesuffix("sorry").rstrip()
        if not statement.endswith(":= by"):
            raise UnknownBenchmarkShapeError(f"{path}:{line}: formal_statement of {rec['name']} does not end in ':= by'")
    # v2c hides answers as `abbrev X_solution : T := sorry` before the theorem: no proof of such a
    # statement can pass the verifier (the file holds a sorry). Flag it instead of hiding it.
    placeholder = bool(re.search(r"(?<![\w'.])sorry(?![\w'])", strip_comments_and_strings(statement)))
    return {"name": rec["name"].strip(), "header": rec.get("header") or "", "formal_statement": statement,
            "split": split, "source": source, "goal": rec.get("goal"), "informal_statement": informal,
            "sorry_placeholder": placeholder}


def load_benchmark_file(path: str | Path, source: str) -> tuple[list[dict[str, Any]], LineReport]:
    """Normalised records of one miniF2F JSONL file; any unknown shape raises with file:line."""
    path = Path(path)
    report = LineReport()
    records, names = [], set()
    for line, rec in iter_jsonl(path, report):
        norm = normalise_record(rec, source, path, line)
        if norm["name"] in names:
            raise BadInputError([BadLine(path, line, f"duplicate problem name {norm['name']!r}")])
        names.add(norm["name"])
        records.append(norm)
    if report.bad:
        raise BadInputError(report.bad)
    if not records:
        raise UnknownBenchmarkShapeError(f"{path}: no records")
    return records, report


def align_splits(records: list[dict[str, Any]], reference: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """Relabel splits by problem name to the original miniF2F split (`reference`, from v1).

    The stored miniF2F-v2 files label the original miniF2F test problems `valid` and vice versa
    (checked against three independent sources: DeepSeek's v1 file, InternLM's miniF2F-test
    search traces and Kimina's miniF2F-test proofs). `split` follows the original split so that
    v1 and v2 "test" name the same 244 problems; `split_upstream` keeps the file's label.
    Returns the records and how many labels changed."""
    out, changed = [], 0
    for rec in records:
        ref = reference.get(rec["name"])
        new = {**rec, "split_upstream": rec["split"]}
        if ref is not None and ref != rec["split"]:
            new["split"] = ref
            changed += 1
        out.append(new)
    return out, changed


def port_statements(records: list[dict[str, Any]], rules: list[RenameRule]) -> list[dict[str, Any]]:
    """Apply the rename table to each statement; edits are recorded on the record (`port_edits`)."""
    out = []
    for rec in records:
        fixed, edits = apply_renames(rec["formal_statement"], rules)
        out.append({**rec, "formal_statement": fixed, "port_edits": [e.as_dict() for e in edits]})
    return out


def compile_statements(records: list[dict[str, Any]], env: LeanEnv,
                       progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Elaborate `header + statement sorry` for each record; failures listed with Lean's errors.

    A statement compiles when Lean reports no error (the one `sorry` is expected here)."""
    failures = []
    for i, rec in enumerate(records, start=1):
        result = env.check_file(rec["header"] + rec["formal_statement"] + " sorry\n")
        errors = [m.text for m in result.messages if m.severity == "error"]
        if result.error or errors:
            failures.append({"name": rec["name"], "split": rec["split"],
                             "errors": ([result.error] if result.error else []) + errors[:3]})
        if progress is not None:
            progress(i)
    return failures

"""Compare two data roots of the same graph run from the same inputs: every number must repeat.

`python -m burnqed_assets.reports.rerun_compare ROOT_A ROOT_B` exits 1 and lists each difference.
Compared, under both roots:
- reports (`*.md`) byte for byte;
- metrics and stats JSON (`*.json`) value for value, with the wall-clock keys in `TIMING_KEYS`
  (durations and throughputs, which no re-run can repeat) left out;
- trajectories and other Parquet tables row for row, the wall-clock columns left out.
Files that exist under one root only are differences too. Model weights, logs, plots and
caches (`IGNORED_SUFFIXES`, `IGNORED_PARTS`) are not compared: weights are checked through the
metrics they produce; PNG files embed nothing but are rendered from the compared numbers.
The two runs may live in different places: in text files each root's own absolute path (and
each `--alias PATH_A=PATH_B` pair, e.g. two checkouts of the repository) reads as one placeholder,
so a path is a difference only when it points somewhere else relative to its run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# Keys (anywhere in a JSON document) and Parquet columns that measure wall-clock time.
TIMING_KEYS = frozenset({
    "elapsed_s", "policy_s", "lean_s", "scorer_s", "mean_elapsed_s", "seconds", "build_seconds", "merge_seconds",
    "train_seconds", "step_seconds", "loop_s", "tokens_per_s", "tokens_per_second", "samples_per_second",
    "steps_per_second", "train_runtime", "train_samples_per_second", "train_steps_per_second",
    "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "texts_per_s", "encode_seconds",
    "started_s", "wall_s", "throughput", "states_per_s", "duration_ms", "generated_at", "timestamp", "time",
    "train_tokens_per_second",
    # hashes of files that hold a wall-clock column (the trajectories' `elapsed_s`): the
    # files themselves are compared row for row without that column
    "trajectories_sha256",
    # memory as the OS measured it (allocator and page-cache state differ between runs)
    "peak_memory_gb", "peak_rss_mb", "repl_peak_rss_mb", "seconds_per_step",
    # a file's modification time (the SFT split-check record names the train/val it measured)
    "mtime_ns",
    # resume keys of chunk done markers: a digest over the model files' sizes and mtimes
    # (bookkeeping, like the reuse cache; the searched trees are compared row for row)
    "fingerprint",
})
# Key endings that mark a duration or rate (TRL's trainer_state names them freely).
TIMING_SUFFIXES = ("_seconds", "_time", "_runtime", "_per_second")
# Lists that libraries write from a Python set (per-process randomised order): compared as sets.
UNORDERED_KEYS = frozenset({"target_modules"})
IGNORED_SUFFIXES = (".safetensors", ".bin", ".pt", ".png", ".log", ".lock", ".npy", ".tmp")
# `.fingerprints` is the reuse cache (it names the run that computed each asset) and
# `run_fingerprint.json` the SFT resume key (weights' mtime): bookkeeping, not results.
IGNORED_PARTS = ("logs", ".parts", "__pycache__", "storage", "schedules", "history", ".dagster_home",
                 ".fingerprints", "run_fingerprint.json")


def _hf_model_card(rel: Path) -> bool:
    """A README.md that transformers/TRL/PEFT write beside checkpoints: its tag list follows
    Python's (per-process randomised) set order, and it holds no number of ours."""
    return rel.name == "README.md" and rel.parts[0] == "checkpoints"


def _files(root: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or p.suffix in IGNORED_SUFFIXES or any(part in IGNORED_PARTS for part in rel.parts) \
                or _hf_model_card(rel):
            continue
        if p.suffix in (".md", ".json", ".jsonl", ".parquet"):
            out[str(rel)] = p
    return out


def strip_timings(obj: Any) -> Any:
    """`obj` without the wall-clock keys, recursively."""
    if isinstance(obj, dict):
        return {k: sorted(v, key=str) if k in UNORDERED_KEYS and isinstance(v, list) else strip_timings(v)
                for k, v in obj.items() if k not in TIMING_KEYS and not k.endswith(TIMING_SUFFIXES)}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


def _first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'B' if k not in a else 'A'}"
            if (d := _first_difference(a[k], b[k], f"{path}.{k}")) is not None:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            if (d := _first_difference(x, y, f"{path}[{i}]")) is not None:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _compare_parquet(a: Path, b: Path) -> str | None:
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a), pq.read_table(b)
    drop = [c for c in ta.column_names if c in TIMING_KEYS]
    ta = ta.drop(drop)
    tb = tb.drop([c for c in tb.column_names if c in TIMING_KEYS])
    if ta.schema.remove_metadata() != tb.schema.remove_metadata():
        return f"schema differs: {ta.schema} != {tb.schema}"
    if ta.num_rows != tb.num_rows:
        return f"{ta.num_rows} rows != {tb.num_rows} rows"
    ra, rb = ta.to_pylist(), tb.to_pylist()
    for i, (x, y) in enumerate(zip(ra, rb)):
        if x != y:
            return f"row {i}: " + (_first_difference(x, y) or "differs")
    return None


def _placeholders(pairs: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(path, placeholder) replacements for side A and side B, longest path first so a root inside
    an aliased checkout is replaced before the checkout."""
    named = [(a.rstrip("/"), b.rstrip("/"), f"<path{i}>") for i, (a, b) in enumerate(pairs)]
    return ([(a, ph) for a, _, ph in sorted(named, key=lambda t: -len(t[0]))],
            [(b, ph) for _, b, ph in sorted(named, key=lambda t: -len(t[1]))])


def _read_text(path: Path, replacements: list[tuple[str, str]]) -> str:
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        # JSON writes "/" unescaped, so the plain path is what appears in every text format here
        text = text.replace(old, new)
    return text


def _compare_jsonl(la: list[str], lb: list[str]) -> str | None:
    if len(la) != len(lb):
        return f"{len(la)} lines != {len(lb)} lines"
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y and strip_timings(json.loads(x)) != strip_timings(json.loads(y)):
            return f"line {i}: " + (_first_difference(strip_timings(json.loads(x)), strip_timings(json.loads(y)))
                                    or "differs")
    return None


def compare_roots(root_a: str | Path, root_b: str | Path,
                  aliases: Sequence[tuple[str, str]] = ()) -> Iterator[str]:
    """Every difference between two data roots, as `relative/path: what differs`. `aliases` are
    (path under run A, path under run B) pairs that mean the same place, beside the two roots."""
    fa, fb = _files(Path(root_a)), _files(Path(root_b))
    # aliases first: where an alias names the same path as a root (run A's files point at the
    # root it ran in, not where its copy now lies), the alias's placeholder is the one used
    subs_a, subs_b = _placeholders([*aliases, (str(Path(root_a).resolve()), str(Path(root_b).resolve())),
                                    (str(root_a), str(root_b))])
    for rel in sorted(set(fa) ^ set(fb)):
        yield f"{rel}: only under {'A' if rel in fa else 'B'}"
    for rel in sorted(set(fa) & set(fb)):
        a, b = fa[rel], fb[rel]
        if a.read_bytes() == b.read_bytes():
            continue
        if a.suffix == ".parquet":
            if (diff := _compare_parquet(a, b)) is not None:
                yield f"{rel}: {diff}"
            continue
        text_a, text_b = _read_text(a, subs_a), _read_text(b, subs_b)
        if text_a == text_b:
            continue
        if a.suffix == ".md":
            la, lb = text_a.splitlines(), text_b.splitlines()
            first = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
            yield (f"{rel}: line {first + 1}: {la[first] if first < len(la) else '<end>'!r} != "
                   f"{lb[first] if first < len(lb) else '<end>'!r}")
        elif a.suffix == ".json":
            diff = _first_difference(strip_timings(json.loads(text_a)), strip_timings(json.loads(text_b)))
            if diff is not None:
                yield f"{rel}: {diff}"
        elif a.suffix == ".jsonl":
            if (diff := _compare_jsonl(text_a.splitlines(), text_b.splitlines())) is not None:
                yield f"{rel}: {diff}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root_a")
    parser.add_argument("root_b")
    parser.add_argument("--alias", action="append", default=[], metavar="PATH_A=PATH_B",
                        help="a path in run A's files that means PATH_B in run B's (repeatable)")
    args = parser.parse_args(argv)
    aliases = []
    for item in args.alias:
        path_a, sep, path_b = item.partition("=")
        if not sep or not path_a or not path_b:
            parser.error(f"--alias wants PATH_A=PATH_B, got {item!r}")
        aliases.append((path_a, path_b))
    diffs = list(compare_roots(args.root_a, args.root_b, aliases))
    compared = len(_files(Path(args.root_a)))
    for d in diffs:
        print(d)
    print(f"{compared} files compared, {len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())

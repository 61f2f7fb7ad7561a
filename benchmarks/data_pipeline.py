"""Benchmark: our M.6-M.10 data path vs the plan's own scripts, stage by stage, on realistic pairs.

    python benchmarks/data_pipeline.py                       # 30K, 300K and 1M pairs (heavy: use the lock)
    python benchmarks/data_pipeline.py --sizes 30000         # quick
    flock /tmp/burnqed-heavy.lock python benchmarks/data_pipeline.py --sizes 300000,1000000

Data: N synthetic traced Goedel pairs shaped like real Lean goals (a variable line, hypotheses
`h₀ : …` with unicode operators, `⊢ goal`; each proof a chain in which a tactic adds or
rewrites one line, so consecutive states share most lines and almost every state is distinct),
0.5 % contaminated, 0.5 % malformed, 0.2 % exact duplicates, 1 % long states; plus N/2
LEAN-GitHub rows in the flattened LeanDojo layout. The uniqueness rates are printed (real
search traces: ~40 % distinct lines; the fixtures' real InternLM/LeanDojo states: 36 % distinct
lines, 69 % distinct states).

Each stage of each side runs in its own child process (the stage time excludes interpreter
start-up, imports and tokenizer loading), reading the files the same side's previous stage
wrote, after an untimed read that puts them in the page cache. Peak RSS is the child's own
(`os.wait4`), or, for a stage that forks workers, the peak of the process tree's summed PSS
sampled every 0.1 s (a sum of RSS would count the pages a forked worker shares with its parent
twice), whichever is higher. Wall time and CPU time (all threads, and the workers a stage
forks) are printed; with `--repeat K` the sides take turns K times and the best of K counts,
since on a shared machine single runs slow down at random. Sides per stage:
  ours   burnqed_assets.data (M.6 integrity, M.7 token geometry, M.8 exploration, M.9 LEAN-GitHub
         filter, M.10 SFT merge/split + contrastive pool + 0.6 split verification), as the
         assets call them: M.10's verification is `verify_split`, which answers from the record
         the SFT writer made of the split it wrote (the files' size and mtime unchanged)
  plain  the plan's scripts: `[json.loads(l) for l in open(...)]`, Python loops, `tok.encode` per
         text, json.dumps writes. The plan runs M.6-M.8 in one script (explore_traced.py), so the
         plain M.7 and M.8 times leave out re-reading the clean pool (in their RSS it counts).
  floor  the parse floor: DuckDB `read_json` into a table, and `pyarrow.json.read_json`, of the
         traced file.
M.7 uses one byte-level BPE tokenizer (4K vocab trained on the synthetic states, BOS added
like DeepSeek's) loaded as a transformers fast tokenizer on both sides; the plain loop is timed
on the first `--m7-plain-limit` clean pairs (default 100K) and scaled, as it is linear in pairs.

Goals (issue 18, item 7), checked per size: M.6+M.8+M.10 >= 3x faster than plain with a peak
RSS (max over the three stages) no higher than plain's; M.7 >= 3x the per-text `tok.encode` loop.

Measured 2026-12-06 on the 2-core demo machine, nothing else running (load 0.8-1.2), best of 3
turns per stage (full table and where the time goes: docs/operations.md, "Data path at plan
scale"):
  M.6+M.8+M.10 wall (CPU) speed-up: 30K 3.27x (2.84x), 300K 3.73x (2.90x), 1M 3.57x (2.83x): PASS
  peak RSS ours / plain: 30K 96 / 103 MB, 300K 430 / 721 MB, 1M 1182 / 2327 MB: PASS
  (the round before: 2.63x / 2.85x / 2.78x; before that 2.08x / 2.04x / 1.92x)
M.6 scans the traced file in parallel parts (one forked worker per CPU); the wall-time goal
needs both cores of this machine, while the work itself (CPU time) is 2.8-2.9x the plan's.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("M.6", "M.8", "M.9", "M.10", "M.7")  # M.7 last: the longest, and not in the core goal
STAGE_NAMES = {"M.6": "M.6 integrity + clean pool", "M.7": "M.7 token geometry", "M.8": "M.8 exploration",
               "M.9": "M.9 LEAN-GitHub filter", "M.10": "M.10 merge/split + pool + 0.6"}
CORE = ("M.6", "M.8", "M.10")
PREFIX = "Complete the following Lean 4 code:\n\n```lean4\n/- tactic state:\n"
SUFFIX = "\n-/\n```\n"

# ----------------------------------------------------------------------------- data

_VARS = ["a b c : ℝ", "x y : ℝ", "n : ℕ", "a b : ℕ", "x : ℝ", "f : ℕ → ℕ", "z : ℂ", "m n k : ℤ", "p q : ℚ",
         "a b c d : ℝ", "s : Finset ℕ", "u : ℕ → ℝ"]
_OPS = ["≤", "<", "=", "≥", "≠"]
_SUB = "₀₁₂₃₄₅₆₇₈₉"


def _sub(i: int) -> str:
    return "".join(_SUB[int(c)] for c in str(i))


def _term(rng: random.Random, v: str, depth: int = 0) -> str:
    r = rng.random()
    if depth > 1 or r < 0.3:
        return rng.choice([v, str(rng.randint(1, 999)), f"{v} ^ {rng.randint(2, 4)}", f"√{v}", f"({v} + {rng.randint(1, 99)})"])
    op = rng.choice(["+", "-", "*", "/"])
    return f"{_term(rng, v, depth + 1)} {op} {_term(rng, rng.choice('abcxyn'), depth + 1)}"


def _prop(rng: random.Random, v: str) -> str:
    p = f"{_term(rng, v)} {rng.choice(_OPS)} {_term(rng, v)}"
    return p if rng.random() > 0.2 else f"0 < {v} ∧ {p}"


def _tactic(rng: random.Random, k: int, v: str) -> tuple[str, str | None]:
    """A tactic and the hypothesis line it adds (None: it rewrites the goal)."""
    r = rng.random()
    if r < 0.35:
        line = f"h{_sub(k)} : {_prop(rng, v)}"
        how = rng.choice(["nlinarith [sq_nonneg (a - b), sq_nonneg (a + b)]", "linarith", "positivity", "norm_num",
                          f"nlinarith [sq_nonneg ({v} - {rng.randint(1, 9)}), h{_sub(max(0, k - 1))}]"])
        return f"have {line} := by {how}", line
    if r < 0.5:
        return f"rw [h{_sub(rng.randint(0, max(0, k - 1)))}] at h{_sub(k)}", f"h{_sub(k)} : {_prop(rng, v)}"
    if r < 0.75:
        hints = ", ".join(f"sq_nonneg ({v} - {rng.randint(1, 20)})" for _ in range(rng.randint(1, 4)))
        return rng.choice([f"nlinarith [{hints}]", f"field_simp [h{_sub(rng.randint(0, 3))}]",
                           f"simp only [mul_comm, h{_sub(rng.randint(0, 3))}]", "ring_nf"]), None
    return rng.choice(["norm_num", "ring_nf", "simp", "omega", "linarith", "positivity", "constructor",
                       f"intro h{_sub(k)}", "field_simp"]), None


def generate(workdir: Path, n: int, seed: int = 0) -> tuple[Path, Path, dict[str, float]]:
    """N traced pairs (theorem chains) and N/2 LEAN-GitHub rows; returns their paths and uniqueness rates."""
    rng = random.Random(seed)
    traced, github = workdir / "traced.jsonl", workdir / "github.jsonl"
    state_h, line_h, tactic_h = set(), set(), set()
    n_lines = 0
    with open(traced, "w", encoding="utf-8") as fh:
        i, t = 0, 0
        while i < n:
            v = rng.choice("abcxyn")
            head = [rng.choice(_VARS)] + [f"h{_sub(k)} : {_prop(rng, v)}" for k in range(rng.randint(0, 5))]
            if rng.random() < 0.01:  # the long tail: big contexts
                head += [f"h{_sub(k)} : {_prop(rng, v)}" for k in range(6, rng.randint(20, 70))]
            goal = f"⊢ {_prop(rng, v)}"
            length = min(n - i, 1 + int(rng.expovariate(1 / 3)))
            prev = None
            for depth in range(length):
                state = "\n".join(head + [goal])
                tactic, added = _tactic(rng, len(head), v)
                r = rng.random()
                if r < 0.005:
                    tactic = rng.choice(["sorry", "admit"])
                elif r < 0.01:
                    state = rng.choice(["no goals", "", "x : ℝ\nx = 1"])
                rec = {"theorem": f"goedel::lean_workbook_{t}", "state": state, "tactic": tactic,
                       "state_after": "no goals" if depth == length - 1 else None, "depth": depth,
                       "source": "goedel_workbook"}
                if prev is not None and rng.random() < 0.002:
                    rec = prev  # an exact duplicate line, as a re-run tracer writes
                line = json.dumps(rec, ensure_ascii=False)
                fh.write(line + "\n")
                prev = rec
                state_h.add(hash(rec["state"]))
                tactic_h.add(hash(rec["tactic"]))
                for ln in rec["state"].split("\n"):
                    line_h.add(hash(ln))
                    n_lines += 1
                if added is None:
                    goal = f"⊢ {_prop(rng, v)}"
                else:
                    head.append(added)
                i += 1
                if i >= n:
                    break
            t += 1
    with open(github, "w", encoding="utf-8") as fh:
        for i in range(n // 2):
            v = rng.choice("xyzαβ")
            state = "\n".join([f"{v} : Type u_{rng.randint(1, 3)}", f"inst✝ : Foo{rng.randint(1, 9)} {v}"]
                              + [f"h{_sub(k)} : {_prop(rng, 'x')}" for k in range(rng.randint(0, 8))]
                              + [f"⊢ f {_term(rng, 'x')} = g {i}"])
            if rng.random() < 0.01:
                state = "x" * 5000 + "⊢"
            tactic = rng.choice(["rfl", "simp", "exact h₀", "decide", f"rw [foo_{rng.randint(1, 500)}]",
                                 f"simp [bar_{rng.randint(1, 500)}, h₁]", "omega", "aesop"])
            fh.write(json.dumps({"url": "u", "commit": "c", "file_path": f"Mathlib/F{i // 500}.lean",
                                 "full_name": f"Mathlib.Foo.lemma_{i // 3}", "start": [1, 1], "end": [2, 1],
                                 "tactic": tactic, "state_before": state, "state_after": "no goals"},
                                ensure_ascii=False) + "\n")
    rates = {"distinct_states": len(state_h) / n, "distinct_lines": len(line_h) / max(1, n_lines),
             "distinct_tactics": len(tactic_h) / n, "theorems": t, "lines_per_state": n_lines / n}
    return traced, github, rates


def build_tokenizer(workdir: Path, traced: Path) -> Path:
    """A byte-level BPE (4K vocab) trained on the synthetic states, BOS prepended like DeepSeek-Prover's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    sample = []
    with open(traced, encoding="utf-8") as fh:
        for k, line in enumerate(fh):
            if k >= 5000:
                break
            rec = json.loads(line)
            sample += [rec["state"], rec["tactic"]]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(sample + [PREFIX + SUFFIX] * 50,
                            trainers.BpeTrainer(vocab_size=4000, special_tokens=["<s>", "</s>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    path = workdir / "tokenizer.json"
    tok.save(str(path))
    return path


def load_tokenizer(workdir: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(workdir / "tokenizer.json"), bos_token="<s>", eos_token="</s>")


def _cpu() -> float:
    """CPU seconds of every thread of this process and of its waited-for children (the workers
    a stage forks count)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _clock() -> tuple[float, float]:
    return time.perf_counter(), _cpu()


def _since(t0: tuple[float, float], scale: float = 1.0) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) since `t0`, times `scale`."""
    return (time.perf_counter() - t0[0]) * scale, (_cpu() - t0[1]) * scale


# ----------------------------------------------------------------------------- ours


def ours(stage: str, w: Path) -> tuple[float, float]:
    """Run one stage of our path; return its seconds (imports and tokenizer loading not timed)."""
    from burnqed_assets.data.exploration import explore
    from burnqed_assets.data.integrity import build_clean_pool
    from burnqed_assets.data.lean_github import filter_lean_github
    from burnqed_assets.data.sft import build_contrastive_pool, build_sft_dataset, verify_split
    from burnqed_assets.data.token_geometry import geometry, measure

    out = w / "ours"
    tok = load_tokenizer(w) if stage == "M.7" else None
    t = _clock()
    if stage == "M.6":
        res = build_clean_pool(w / "traced.jsonl", out / "clean.jsonl")
        (out / "pool_report.json").write_text(json.dumps(res.as_dict()), encoding="utf-8")
    elif stage == "M.7":
        geometry(measure(out / "clean.jsonl", tok), tok)
    elif stage == "M.8":
        explore(out / "clean.jsonl", json.loads((out / "pool_report.json").read_text(encoding="utf-8")))
    elif stage == "M.9":
        filter_lean_github(w / "github.jsonl", out / "github_pairs.jsonl")
    elif stage == "M.10":
        build_sft_dataset(out / "clean.jsonl", out / "github_pairs.jsonl", out / "sft")
        build_contrastive_pool(out / "clean.jsonl", out / "sft" / "contrastive_pool.json", min_theorems=3000)
        verify_split(out / "sft")
    return _since(t)


# ----------------------------------------------------------------------------- plain (the plan's scripts)


def _loads(path: Path) -> list[dict]:
    """The plan's `[json.loads(l) for l in open(path)]`, with the file closed."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _dumps(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for p in rows:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")


def plain(stage: str, w: Path) -> tuple[float, float]:
    import numpy as np

    out = w / "plain"
    (out / "sft").mkdir(parents=True, exist_ok=True)
    banned = ["sorry", "admit", "cheat", "sorryAx"]
    if stage == "M.6":  # explore_traced.py part 1, writing the clean pool M.10 reads
        t = _clock()
        pairs = _loads(w / "traced.jsonl")
        theorems: dict[str, list] = {}
        for p in pairs:
            theorems.setdefault(p["theorem"], []).append(p)
        contaminated_theorems, contaminated_pairs = set(), 0
        for p in pairs:
            if any(b in p["tactic"] for b in banned) or "sorry" in p["state"] or "sorryAx" in p["state"]:
                contaminated_theorems.add(p["theorem"])
                contaminated_pairs += 1
        axiom_mentions = Counter()
        for p in pairs:
            for ax in ["sorryAx", "Decidable.decide", "native_decide", "ofReduceBool"]:
                if ax in p["tactic"] or ax in p["state"]:
                    axiom_mentions[ax] += 1
        clean, seen = [], set()
        for p in pairs:
            s = p["state"]
            if p["theorem"] in contaminated_theorems or not s.strip() or s.startswith("no goals") or "⊢" not in s \
                    or not p["tactic"].strip():
                continue
            key = (p["theorem"], p.get("depth", 0), s, p["tactic"])
            if key in seen:
                continue
            seen.add(key)
            clean.append(p)
        _dumps(out / "clean.jsonl", clean)
        return _since(t)
    if stage in ("M.7", "M.8"):  # parts 2 and 3 of the same script: the pairs are already in memory
        clean = _loads(out / "clean.jsonl")
        tok = load_tokenizer(w) if stage == "M.7" else None
        limit = int(os.environ.get("BENCH_M7_PLAIN_LIMIT", "0")) or len(clean)
        t = _clock()
        if stage == "M.7":
            state_l, tactic_l, full_l = [], [], []
            for p in clean[:limit]:  # one encode per text: time is linear in pairs, so a prefix scales exactly
                state_l.append(len(tok.encode(p["state"])))
                tactic_l.append(len(tok.encode(p["tactic"])))
                full_l.append(len(tok.encode(f"{PREFIX}{p['state']}{SUFFIX}{p['tactic']}")))
            state_a, tactic_a, full_a = np.array(state_l), np.array(tactic_l), np.array(full_l)
            for arr in (state_a, tactic_a, full_a):
                [np.percentile(arr, q) for q in (50, 75, 90, 95, 99)]
            ratios = state_a / np.maximum(tactic_a, 1)
            np.median(ratios), np.mean(ratios), np.percentile(ratios, 95)
            for max_len in (1024, 1536, 2048, 3072):
                int(np.sum(full_a > max_len)), int(np.sum(state_a + 45 >= max_len))
            return _since(t, len(clean) / max(1, min(limit, len(clean))))
        else:
            counts, depths = {}, {}
            for p in clean:
                counts[p["theorem"]] = counts.get(p["theorem"], 0) + 1
                depths[p["theorem"]] = max(depths.get(p["theorem"], 0), p.get("depth", 0))
            lengths = list(counts.values())
            [np.percentile(lengths, q) for q in (25, 50, 75, 90, 95)]
            Counter("5+" if d >= 5 else "3-4" if d >= 3 else "1-2" if d >= 1 else "0" for d in depths.values())
            Counter(re.split(r"[\s\[\(]", p["tactic"].strip())[0] for p in clean).most_common(30)
        return _since(t)
    if stage == "M.9":  # filter_lean_github.py
        t = _clock()
        rng = random.Random(42)
        gh_pairs = []
        for row in _loads(w / "github.jsonl"):
            state, tactic = row["state_before"], row["tactic"]
            if len(state) > 4096 or "no goals" in state or "⊢" not in state or any(b in tactic for b in ["sorry", "admit", "cheat"]):
                continue
            if tactic.strip() in {"rfl", "simp", "trivial", "exact?", "decide"} and not rng.random() < 0.1:
                continue
            gh_pairs.append({"theorem": f"github::{row['full_name']}", "state": state, "tactic": tactic,
                             "state_after": row["state_after"], "depth": None, "source": "lean_github"})
        _dumps(out / "github_pairs.jsonl", gh_pairs)
        return _since(t)
    # M.10 merge + contrastive pool + the 0.6 re-read checks (separate scripts: they re-read the files)
    t = _clock()
    merged = _loads(out / "clean.jsonl") + _loads(out / "github_pairs.jsonl")
    seen, dedup = set(), []
    for p in merged:
        key = (p["theorem"], p["state"], p["tactic"])
        if key not in seen:
            seen.add(key)
            dedup.append(p)
    bad = {p["theorem"] for p in dedup if any(b in p["tactic"] for b in banned) or "sorry" in p["state"]}
    kept = [p for p in dedup if p["theorem"] not in bad]
    by_source: dict[str, list] = {}
    for th, src in sorted({(p["theorem"], p["source"]) for p in kept}):
        by_source.setdefault(src, []).append(th)
    val_theorems = set()
    for src, names in by_source.items():
        random.Random(42).shuffle(names)
        val_theorems.update(names[: max(1, round(len(names) * 0.05))])
    with open(out / "sft" / "train.jsonl", "w", encoding="utf-8") as tr, \
            open(out / "sft" / "val.jsonl", "w", encoding="utf-8") as va:
        for p in kept:
            rec = {"prompt": f"{PREFIX}{p['state']}{SUFFIX}", "completion": p["tactic"], "theorem": p["theorem"],
                   "source": p["source"]}
            (va if p["theorem"] in val_theorems else tr).write(json.dumps(rec, ensure_ascii=False) + "\n")
    deep: dict[str, int] = {}
    for p in kept:
        if p["source"] == "goedel_workbook":
            deep[p["theorem"]] = max(deep.get(p["theorem"], 0), p.get("depth") or 0)
    with open(out / "sft" / "contrastive_pool.json", "w", encoding="utf-8") as fh:
        json.dump([{"theorem": k, "max_depth": v} for k, v in deep.items() if v >= 3], fh)
    del merged, seen, dedup, kept  # validate_split.py is its own script
    train, val = _loads(out / "sft" / "train.jsonl"), _loads(out / "sft" / "val.jsonl")
    for rec in train + val:
        assert rec["prompt"].startswith(PREFIX) and "\n-/\n```\n" in rec["prompt"]
    assert not {r["theorem"] for r in train} & {r["theorem"] for r in val}
    Counter(r["source"] for r in train)
    return _since(t)


# ----------------------------------------------------------------------------- parse floor


def floor(stage: str, w: Path) -> tuple[float, float]:
    src = w / "traced.jsonl"
    if stage == "duckdb":
        import duckdb

        con = duckdb.connect()
        t = _clock()
        con.execute(f"""CREATE TABLE t AS SELECT * FROM read_json('{src}', format='newline_delimited',
            columns={{theorem: 'VARCHAR', state: 'VARCHAR', tactic: 'VARCHAR', state_after: 'VARCHAR',
                      depth: 'BIGINT', source: 'VARCHAR'}})""")
        return _since(t)
    import pyarrow.json as pj

    t = _clock()
    pj.read_json(src)
    return _since(t)


# ----------------------------------------------------------------------------- driver


def _warm(w: Path, side: str, stage: str) -> None:
    """Read a stage's input files once, untimed: both sides start from the page cache, not the disk
    (on a shared machine other jobs' writes evict it at random)."""
    d = w / side
    inputs = {"M.6": [w / "traced.jsonl"], "M.9": [w / "github.jsonl"],
              "M.7": [d / "clean.jsonl"], "M.8": [d / "clean.jsonl", d / "clean.index.npz"],
              "M.10": [d / f for f in ("clean.jsonl", "clean.index.npz", "github_pairs.jsonl", "github_pairs.index.npz")],
              "duckdb": [w / "traced.jsonl"], "pyarrow": [w / "traced.jsonl"]}[stage]
    for f in inputs:
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def run_child(side: str, stage: str, w: Path, m7_plain_limit: int = 0, repeat: int = 1) -> tuple[float, float, float]:
    """(wall s, peak RSS MB, CPU s) of one stage, each run in a fresh process; best wall and CPU of `repeat` runs."""
    res = w / f".result_{side}_{stage}.json"
    cmd = [sys.executable, __file__, "--child", side, stage, "--workdir", str(w), "--result", str(res)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO), "BENCH_M7_PLAIN_LIMIT": str(m7_plain_limit)}
    runs = []
    for _ in range(repeat):
        _warm(w, side, stage)
        with open(w / ".child.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            tree_peak = _tree_peak_rss(proc.pid)
            _, status, usage = os.wait4(proc.pid, 0)  # peak RSS of the child or of its largest descendant
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{side} {stage} failed:\n{(w / '.child.log').read_text()[-3000:]}")
        out = json.loads(res.read_text())
        # a stage that forks workers: the process tree's sampled sum (PSS), when it is higher
        runs.append((out["seconds"], max(usage.ru_maxrss / 1024, tree_peak()), out["cpu"]))  # Linux: KiB
    return min(r[0] for r in runs), max(r[1] for r in runs), min(r[2] for r in runs)


def _tree_peak_rss(pid: int):
    """Sample the memory of `pid` and its descendants in a thread until the returned function is
    called (every 0.1 s); it gives the peak in MB, summed over the processes that ran at the same time. The
    sum is of proportional set sizes (PSS): a forked worker shares its parent's pages
    copy-on-write, and a sum of RSS would count them once per process. Only a tree with a
    descendant is sampled: reading a process's PSS walks its page tables and slows it down,
    while a single process's peak RSS comes exactly from `os.wait4`."""
    import threading

    import psutil

    peak, done = [0], threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(pid)
            while not done.is_set() and root.status() != psutil.STATUS_ZOMBIE:
                kids = root.children(recursive=True)
                if kids:
                    total = 0
                    for p in [root, *kids]:
                        try:
                            total += p.memory_full_info().pss
                        except psutil.Error:
                            pass
                    peak[0] = max(peak[0], total)
                done.wait(0.1)
        except psutil.Error:
            pass

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def stop() -> float:
        done.set()
        thread.join()
        return peak[0] / 2**20

    return stop


def _count(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def bench_size(n: int, base: Path, with_tokens: bool, m7_plain_limit: int, repeat: int) -> bool:
    w = base / f"n{n}"
    w.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    stamp = w / "generated.json"  # a kept --workdir reuses data generated with the same size and code
    key = {"n": n, "generator": hashlib.sha256(inspect.getsource(generate).encode()).hexdigest()}
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        traced, github, rates = w / "traced.jsonl", w / "github.jsonl", json.loads(stamp.read_text())["rates"]
    else:
        traced, github, rates = generate(w, n)
        stamp.write_text(json.dumps({"key": key, "rates": rates}))
    mb = traced.stat().st_size / 2**20
    print(f"\n=== {n:,} traced pairs ({rates['theorems']:,} theorems, {mb:.0f} MB) + {n // 2:,} LEAN-GitHub rows "
          f"({github.stat().st_size / 2**20:.0f} MB); generated in {time.perf_counter() - t:.0f}s; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    print(f"uniqueness: {100 * rates['distinct_states']:.1f}% distinct states, {100 * rates['distinct_lines']:.1f}% "
          f"distinct state lines ({rates['lines_per_state']:.1f} lines/state), "
          f"{100 * rates['distinct_tactics']:.1f}% distinct tactics", flush=True)
    if with_tokens and not (w / "tokenizer.json").exists():
        build_tokenizer(w, traced)
    stages = [s for s in STAGES if with_tokens or s != "M.7"]
    res: dict[tuple[str, str], tuple[float, float, float]] = {}
    for side, stage in (("floor", "duckdb"), ("floor", "pyarrow")):
        res[side, stage] = run_child(side, stage, w, repeat=repeat)
    print(f"parse floor (traced file): DuckDB read_json {res['floor', 'duckdb'][0]:.2f}s / "
          f"{res['floor', 'duckdb'][1]:.0f} MB, pyarrow.json {res['floor', 'pyarrow'][0]:.2f}s / "
          f"{res['floor', 'pyarrow'][1]:.0f} MB", flush=True)
    print(f"{'stage (best of ' + str(repeat) + ')':32s} {'ours s':>7s} {'plain s':>8s} {'speed-up':>8s} "
          f"{'ours cpu':>8s} {'plain cpu':>9s} {'ratio':>6s} {'ours MB':>8s} {'plain MB':>8s}", flush=True)
    for stage in stages:
        # the sides take turns, run by run: a machine that slows down for a while slows both
        runs = {"ours": [], "plain": []}
        for _ in range(repeat if stage != "M.7" else 1):
            for side in runs:
                runs[side].append(run_child(side, stage, w, m7_plain_limit))
        for side, rs in runs.items():
            res[side, stage] = (min(r[0] for r in rs), max(r[1] for r in rs), min(r[2] for r in rs))
        (o, om, oc), (p, pm, pc) = res["ours", stage], res["plain", stage]
        note = f"  (plain timed on the first {m7_plain_limit:,} pairs, scaled)" if stage == "M.7" and \
            0 < m7_plain_limit < n else ""
        print(f"{STAGE_NAMES[stage]:32s} {o:7.2f} {p:8.2f} {p / o:7.2f}x {oc:8.2f} {pc:9.2f} {pc / oc:5.2f}x "
              f"{om:8.0f} {pm:8.0f}{note}", flush=True)
    # same input rules on both sides: the clean pools hold the same number of pairs (the SFT sets
    # differ by the LEAN-GitHub trivial-tactic sample: the plan draws random.random(), we hash)
    same = _count(w / "ours" / "clean.jsonl") == _count(w / "plain" / "clean.jsonl")
    core_o, core_p = sum(res["ours", s][0] for s in CORE), sum(res["plain", s][0] for s in CORE)
    cpu_o, cpu_p = sum(res["ours", s][2] for s in CORE), sum(res["plain", s][2] for s in CORE)
    rss_o = max(res["ours", s][1] for s in CORE)
    rss_p = max(res["plain", s][1] for s in CORE)
    ok = True

    def goal(text: str, passed: bool) -> None:
        nonlocal ok
        ok &= passed
        print(f"  [{'PASS' if passed else 'MISS'}] {text}", flush=True)

    print(f"goals at {n:,} pairs (load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}):")
    goal(f"M.6+M.8+M.10 speed-up {core_p / core_o:.2f}x (ours {core_o:.2f}s, plain {core_p:.2f}s; goal >= 3x; "
         f"CPU time {cpu_p / cpu_o:.2f}x)", core_p / core_o >= 3)
    goal(f"M.6+M.8+M.10 peak RSS ours {rss_o:.0f} MB vs plain {rss_p:.0f} MB (goal: no higher)", rss_o <= rss_p)
    if with_tokens:
        o7, p7 = res["ours", "M.7"][0], res["plain", "M.7"][0]
        goal(f"M.7 speed-up {p7 / o7:.2f}x over the per-text tok.encode loop (goal >= 3x)", p7 / o7 >= 3)
    goal("same clean-pool row count on both sides", same)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="30000,300000,1000000", help="comma-separated traced-pair counts")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the data here (default: a temp dir, removed)")
    ap.add_argument("--skip-tokens", action="store_true", help="leave out M.7")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per stage and side (M.7: one); the best wall and CPU time count (a shared machine "
                         "slows single runs at random)")
    ap.add_argument("--m7-plain-limit", type=int, default=100_000,
                    help="time the plain per-text tok.encode loop on this many clean pairs and scale to all "
                         "(it is linear in pairs; 0 = all pairs)")
    ap.add_argument("--child", nargs=2, metavar=("SIDE", "STAGE"), help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, stage = args.child
        wall, cpu = {"ours": ours, "plain": plain, "floor": floor}[side](stage, args.workdir)
        args.result.write_text(json.dumps({"seconds": wall, "cpu": cpu}))
        return 0
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    base = args.workdir or Path(tempfile.mkdtemp(prefix="burnqed_bench_"))
    ok = True
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            ok &= bench_size(n, base, not args.skip_tokens, args.m7_plain_limit, args.repeat)
            if args.workdir is None:
                shutil.rmtree(base / f"n{n}", ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\nload average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}; all goals met: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

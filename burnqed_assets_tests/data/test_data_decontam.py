"""Decontamination gate: a benchmark problem planted under another name in each training source
is matched (statement, root goal, n-gram), dropped before the split, and the re-read finds none."""

from __future__ import annotations

import json

import pytest

from burnqed_assets.data.decontam import (
    decontaminate,
    goal_key,
    load_benchmark_problems,
    reachable_from_split,
    root_goal_from_statement,
    statement_key,
)
from burnqed_assets.data.sft import build_contrastive_pool, build_sft_dataset, verify_split
from burnqed_assets.settings import REPO_ROOT

BENCH = REPO_ROOT / "data" / "demo" / "benchmarks"


def _pair(theorem, state, tactic, depth, source):
    return {"theorem": theorem, "state": state, "tactic": tactic, "state_after": None, "depth": depth, "source": source}


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def problems():
    return load_benchmark_problems({"minif2f_v1": BENCH / "minif2f_v1.jsonl", "minif2f_v2s": BENCH / "miniF2F_v2s.jsonl",
                                    "minif2f_v2c": BENCH / "miniF2F_v2c.jsonl"})


def _bench(problems, source, name):
    return next(p for p in problems if p.source == source and p.name == name)


def _v1_record(name):
    return next(json.loads(line) for line in (BENCH / "minif2f_v1.jsonl").open(encoding="utf-8")
                if json.loads(line)["name"] == name)


def test_keys_and_root_goal():
    stmt = "theorem foo (a b : ℝ) {n : ℕ} [Fact (1 < n)] (h₀ : a = 2 * b) :\n  a ^ 2 = 4 * b ^ 2 := by"
    assert root_goal_from_statement(stmt) == "a b : ℝ\nn : ℕ\ninst✝ : Fact (1 < n)\nh₀ : a = 2 * b\n⊢ a ^ 2 = 4 * b ^ 2"
    renamed = stmt.replace("foo", "totally_different").replace(" :\n  ", " : ")
    assert statement_key(stmt) == statement_key(renamed)  # the name does not count
    assert statement_key(stmt) != statement_key(stmt.replace("4 * b", "4 * b + 0"))
    assert goal_key("x : ℝ\n⊢  x = 1") == goal_key("x : ℝ ⊢ x = 1")


def test_every_benchmark_version_and_split_is_loaded(problems):
    seen = {(p.source, p.split) for p in problems}
    assert seen == {(s, sp) for s in ("minif2f_v1", "minif2f_v2s", "minif2f_v2c") for sp in ("test", "valid")}
    assert len(problems) == 3 * 488


def test_planted_benchmarks_are_dropped_in_each_source(tmp_path, problems):
    test_v1 = _v1_record("mathd_algebra_171")  # miniF2F-test
    valid_v2c = _bench(problems, "minif2f_v2c", "mathd_algebra_478")  # a valid problem, v2c statement
    long_test = _v1_record("amc12a_2019_p21")
    goedel = [
        # Goedel stream: a benchmark's Lean-printed root goal under a Lean Workbook name
        _pair("goedel::lean_workbook_planted_1", test_v1["goal"], "norm_num [h₀]", 0, "goedel_workbook"),
        _pair("goedel::lean_workbook_planted_1", "⊢ 5 * 1 + 4 = 9", "norm_num", 1, "goedel_workbook"),
        # Goedel stream: only the statement (renamed) gives it away; its state is unrelated
        _pair("goedel::lean_workbook_planted_2", "y : ℕ\n⊢ y + 0 = y", "simp", 0, "goedel_workbook"),
        _pair("goedel::honest", "x : ℝ\n⊢ x + 0 = x", "simp", 0, "goedel_workbook"),
        _pair("goedel::honest2", "x : ℝ\n⊢ x * 1 = x", "simp", 0, "goedel_workbook"),
    ]
    github = [
        # LEAN-GitHub: the goal rebuilt from a v2c statement, under a Mathlib-looking name
        _pair("github::Mathlib.Algebra.Planted.foo", valid_v2c.goals[-1], "linarith", None, "lean_github"),
        # LEAN-GitHub: a long benchmark goal inside a bigger state (one extra hypothesis): n-gram
        _pair("github::Mathlib.Analysis.Planted.bar", "hz : z ≠ 0\n" + long_test["goal"], "simp", None, "lean_github"),
        _pair("github::Mathlib.Honest.baz", "n : ℕ\n⊢ n + 0 = n", "simp", None, "lean_github"),
        _pair("github::Mathlib.Honest.qux", "n : ℕ\n⊢ n * 1 = n", "simp", None, "lean_github"),
    ]
    clean, gh = _write(tmp_path / "clean.jsonl", goedel), _write(tmp_path / "gh.jsonl", github)
    v2s_stmt = _bench(problems, "minif2f_v2s", "amc12a_2019_p21")
    with open(BENCH / "miniF2F_v2s.jsonl", encoding="utf-8") as fh:
        v2s_text = next(json.loads(line)["formal_statement"] for line in fh if json.loads(line)["name"] == v2s_stmt.name)
    statements = {"goedel::lean_workbook_planted_2": v2s_text.replace("amc12a_2019_p21", "lean_workbook_x"),
                  "goedel::honest": "theorem honest (x : ℝ) : x + 0 = x := by"}
    result = decontaminate({"goedel": clean, "github": gh}, problems, statements)
    rules = {(m["theorem"], m["rule"]) for m in result.matches}
    assert ("goedel::lean_workbook_planted_1", "root_goal") in rules
    assert ("goedel::lean_workbook_planted_2", "statement") in rules
    assert ("github::Mathlib.Algebra.Planted.foo", "root_goal") in rules
    assert ("github::Mathlib.Analysis.Planted.bar", "ngram") in rules
    assert result.dropped_theorems == sorted(["goedel::lean_workbook_planted_1", "goedel::lean_workbook_planted_2",
                                              "github::Mathlib.Algebra.Planted.foo",
                                              "github::Mathlib.Analysis.Planted.bar"])
    assert all(m["benchmark"].count(":") == 2 and m["evidence"] for m in result.matches)

    # Without the gate the benchmark goals reach the split, and the re-read sees them.
    build_sft_dataset(clean, gh, tmp_path / "leaky", val_fraction=0.5)
    leaked = {h["theorem"] for h in reachable_from_split(tmp_path / "leaky", problems)}
    assert {"goedel::lean_workbook_planted_1", "github::Mathlib.Algebra.Planted.foo",
            "github::Mathlib.Analysis.Planted.bar"} <= leaked
    # With it they are dropped, counted and listed; nothing is reachable any more.
    stats = build_sft_dataset(clean, gh, tmp_path / "sft", val_fraction=0.5, contaminated=result.dropped_theorems)
    assert stats.dropped.contaminated_theorems == 4
    assert set(stats.dropped.contaminated_theorem_names) == set(result.dropped_theorems)
    kept = {r["theorem"] for split in ("train", "val") for r in _read(tmp_path / "sft" / f"{split}.jsonl")}
    assert kept == {"goedel::honest", "goedel::honest2", "github::Mathlib.Honest.baz", "github::Mathlib.Honest.qux"}
    assert reachable_from_split(tmp_path / "sft", problems) == []
    # The contrastive pool leaves them out too.
    info = build_contrastive_pool(clean, tmp_path / "pool.json", min_depth=0, fallback_depth=0, min_theorems=0,
                                  contaminated=result.dropped_theorems)
    pool = {e["theorem"] for e in json.loads((tmp_path / "pool.json").read_text(encoding="utf-8"))}
    assert info.excluded_contaminated == 2 and pool == {"goedel::honest", "goedel::honest2"}


def test_shared_hypotheses_alone_are_no_match(tmp_path, problems):
    rec = _v1_record("mathd_algebra_171")  # f : ℝ → ℝ, h₀ : ∀ x, f x = 5 * x + 4 ⊢ f 1 = 9
    hyps = rec["goal"].split("⊢")[0]
    clean = _write(tmp_path / "c.jsonl", [_pair("goedel::variant", hyps + "⊢ f (f 1) = 49", "simp", 0, "goedel_workbook")])
    assert decontaminate({"g": clean}, problems).matches == []


def test_same_prompt_completion_from_two_sources_is_kept_once(tmp_path):
    shared = ("a b : ℕ\n⊢ a + b = b + a", "omega")
    goedel = [_pair(f"goedel::g{i}", f"x : ℕ\n⊢ x + {i} = {i} + x", "omega", 0, "goedel_workbook") for i in range(40)]
    goedel.append(_pair("goedel::dup", *shared, 0, "goedel_workbook"))
    github = [_pair(f"github::Mathlib.h{i}", f"n : ℕ\n⊢ n * {i} = {i} * n", "ring", None, "lean_github") for i in range(40)]
    github.append(_pair("github::Mathlib.dup", *shared, None, "lean_github"))
    clean, gh = _write(tmp_path / "c.jsonl", goedel), _write(tmp_path / "g.jsonl", github)
    for seed in range(6):  # whatever the split, the pair is in one of them only
        stats = build_sft_dataset(clean, gh, tmp_path / f"s{seed}", seed=seed, val_fraction=0.5)
        assert stats.dropped.duplicate_pairs_across_theorems == 1
        rows = [r for split in ("train", "val") for r in _read(tmp_path / f"s{seed}" / f"{split}.jsonl")]
        assert sum(r["completion"] == "omega" and r["prompt"].count("a + b = b + a") for r in rows) == 1
        assert verify_split(tmp_path / f"s{seed}").pairs_in_both_splits == 0


def test_verify_split_flags_a_prompt_completion_in_both(tmp_path):
    from burnqed_assets.data.prompt import format_prompt

    row = {"prompt": format_prompt("⊢ True"), "completion": "trivial", "source": "goedel_workbook"}
    (tmp_path / "train.jsonl").write_text(json.dumps({**row, "theorem": "goedel::a"}) + "\n", encoding="utf-8")
    (tmp_path / "val.jsonl").write_text(json.dumps({**row, "theorem": "github::b"}) + "\n", encoding="utf-8")
    v = verify_split(tmp_path)
    assert v.leaked_theorems == 0 and v.pairs_in_both_splits == 1 and "github::b" in v.pairs_in_both_examples[0]

"""M.10 / 0.6: merge, dedup, sorry filter, benchmark guard, theorem-level split, prompt format; pool."""

from __future__ import annotations

import json

from burnqed_assets.data.sft import (
    Statement,
    build_contrastive_pool,
    build_sft_dataset,
    load_statements,
    verify_split,
)
from burnqed_assets.data.prompt import format_prompt, is_well_formed_prompt
from burnqed_assets.settings import DEMO_INPUTS


def _pair(theorem: str, state: str, tactic: str, depth, source: str) -> dict:
    return {"theorem": theorem, "state": state, "tactic": tactic, "state_after": None, "depth": depth, "source": source}


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _inputs(tmp_path, n_goedel: int = 200, n_github: int = 60):
    goedel, github = [], []
    for t in range(n_goedel):
        for d in range(3):
            goedel.append(_pair(f"goedel::g{t}", f"x : ℝ\n⊢ x + {t} = {d}", f"tac{d}", d, "goedel_workbook"))
    for t in range(n_github):
        github.append(_pair(f"github::Mathlib.h{t}", f"n : ℕ\n⊢ n = {t}", "omega", None, "lean_github"))
    _write(tmp_path / "clean.jsonl", goedel)
    _write(tmp_path / "gh.jsonl", github)
    return tmp_path / "clean.jsonl", tmp_path / "gh.jsonl"


def test_split_is_theorem_level_stratified_and_formatted(tmp_path):
    clean, gh = _inputs(tmp_path)
    stats = build_sft_dataset(clean, gh, tmp_path / "sft", seed=1, val_fraction=0.05)
    train, val = _read(tmp_path / "sft" / "train.jsonl"), _read(tmp_path / "sft" / "val.jsonl")
    assert not {r["theorem"] for r in train} & {r["theorem"] for r in val}
    assert stats.by_source["goedel_workbook"].val_theorems == 10  # 5 % of 200
    assert stats.by_source["lean_github"].val_theorems == 3  # 5 % of 60
    assert len(train) + len(val) == 200 * 3 + 60 == stats.total_pairs
    for r in train[:50] + val:
        assert set(r) == {"prompt", "completion", "theorem", "source"}
        assert is_well_formed_prompt(r["prompt"])
    first = train[0]
    assert first["prompt"] == format_prompt("x : ℝ\n⊢ x + 0 = 0") or first["theorem"] != "goedel::g0"
    v = verify_split(tmp_path / "sft")
    assert v.leaked_theorems == 0 and v.bad_format_pairs == 0
    assert v.pairs_by_source == {"goedel_workbook": 600, "lean_github": 60}


def test_split_is_deterministic_and_seed_dependent(tmp_path):
    clean, gh = _inputs(tmp_path)
    build_sft_dataset(clean, gh, tmp_path / "a", seed=3)
    build_sft_dataset(clean, gh, tmp_path / "b", seed=3)
    build_sft_dataset(clean, gh, tmp_path / "c", seed=4)
    assert (tmp_path / "a" / "val.jsonl").read_bytes() == (tmp_path / "b" / "val.jsonl").read_bytes()
    assert (tmp_path / "a" / "val.jsonl").read_bytes() != (tmp_path / "c" / "val.jsonl").read_bytes()


def test_dedup_sorry_benchmark_and_prefix(tmp_path):
    rows = [
        _pair("goedel::a", "⊢ p", "t1", 0, "goedel_workbook"),
        _pair("goedel::a", "⊢ p", "t1", 0, "goedel_workbook"),  # exact duplicate
        _pair("goedel::s", "⊢ p", "intro h", 0, "goedel_workbook"),
        _pair("goedel::s", "h : p\n⊢ p", "sorry", 1, "goedel_workbook"),  # whole theorem goes
        _pair("goedel::mathd_algebra_478", "⊢ q", "norm_num", 0, "goedel_workbook"),  # a miniF2F name
        _pair("b", "⊢ r", "rfl", 0, "goedel_workbook"),  # missing prefix gets one
    ]
    _write(tmp_path / "clean.jsonl", rows)
    _write(tmp_path / "gh.jsonl", [_pair("Foo.bar", "⊢ s", "simp", None, "lean_github")])
    stats = build_sft_dataset(tmp_path / "clean.jsonl", tmp_path / "gh.jsonl", tmp_path / "sft",
                              benchmark={"mathd_algebra_478"})
    names = {r["theorem"] for r in _read(tmp_path / "sft" / "train.jsonl") + _read(tmp_path / "sft" / "val.jsonl")}
    assert names == {"goedel::a", "goedel::b", "github::Foo.bar"}
    assert stats.dropped.duplicate_pairs == 1
    assert stats.dropped.sorry_theorems == 1
    assert stats.dropped.benchmark_theorem_names == ["goedel::mathd_algebra_478"]


def test_verify_split_detects_a_leak_and_a_bad_prompt(tmp_path):
    d = tmp_path / "sft"
    d.mkdir()
    ok = {"prompt": format_prompt("⊢ p"), "completion": "rfl", "theorem": "goedel::x", "source": "goedel_workbook"}
    _write(d / "train.jsonl", [ok, {**ok, "theorem": "goedel::y", "prompt": "no prefix"}])
    _write(d / "val.jsonl", [ok])
    v = verify_split(d, benchmark={"y"})
    assert v.leaked_theorems == 1 and v.bad_format_pairs == 1
    assert v.bad_format_examples == [f"{d / 'train.jsonl'}:2"]
    assert v.benchmark_theorems == ["goedel::y"]


def test_contrastive_pool_threshold_and_fallback(tmp_path):
    rows = []
    for t, depth in [("deep1", 4), ("deep2", 3), ("mid", 2), ("flat", 0)]:
        for d in range(depth + 1):
            rows.append(_pair(f"goedel::{t}", f"⊢ {t} {d}", "tac", d, "goedel_workbook"))
    rows.append(_pair("github::G", "⊢ g", "simp", None, "lean_github"))
    _write(tmp_path / "clean.jsonl", rows)
    info = build_contrastive_pool(tmp_path / "clean.jsonl", tmp_path / "pool.json", min_depth=3, fallback_depth=2,
                                  min_theorems=2, statements={"deep1": Statement("theorem deep1 : p := by", "import Mathlib\n")})
    pool = json.loads((tmp_path / "pool.json").read_text(encoding="utf-8"))
    assert not info.fallback_used and [e["theorem"] for e in pool] == ["goedel::deep1", "goedel::deep2"]
    assert pool[0] == {"theorem": "goedel::deep1", "max_depth": 4, "num_pairs": 5, "root_state": "⊢ deep1 0",
                       "source": "goedel_workbook", "formal_statement": "theorem deep1 : p := by",
                       "header": "import Mathlib\n"}
    assert pool[1]["formal_statement"] is None
    info = build_contrastive_pool(tmp_path / "clean.jsonl", tmp_path / "pool.json", min_theorems=3)
    assert info.fallback_used and info.depth_threshold == 2 and info.theorems == 3
    assert "lowered to depth >= 2" in info.decision


def test_load_statements_from_goedel_proofs_and_handwritten_file():
    st = load_statements([DEMO_INPUTS / "traced" / "handwritten_statements.jsonl"],
                         [DEMO_INPUTS / "goedel" / "goedel_workbook_proofs.jsonl"])
    g = st["lean_workbook_10009"]
    assert g.formal_statement.startswith("theorem lean_workbook_10009 (a b c: ℝ)")
    assert g.formal_statement.endswith(":= by") and g.header.startswith("import Mathlib")
    assert "/-" not in g.header
    assert st["demo_handwritten_1"].formal_statement.startswith("theorem demo_handwritten_1")


def test_contrastive_pool_file_has_the_bytes_of_write_json(tmp_path):
    """The pool is written with orjson for speed; it must stay byte-identical to io.write_json."""
    from burnqed_assets.data.io import write_json

    rows = [_pair("goedel::t\"q\\", "h : a\tb\x01\x7f ⊢ \u2028 😀\n⊢ p", "tac", d, "goedel_workbook") for d in range(4)]
    _write(tmp_path / "clean.jsonl", rows)
    build_contrastive_pool(tmp_path / "clean.jsonl", tmp_path / "pool.json", min_theorems=1,
                           statements={"t\"q\\": Statement("theorem t : p := by", "")})
    pool = json.loads((tmp_path / "pool.json").read_text(encoding="utf-8"))
    assert pool[0]["root_state"] == rows[0]["state"] and pool[0]["num_pairs"] == 4
    write_json(tmp_path / "ref.json", pool)
    assert (tmp_path / "pool.json").read_bytes() == (tmp_path / "ref.json").read_bytes()

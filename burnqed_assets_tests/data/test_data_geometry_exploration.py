"""M.7 token geometry and M.8 exploration report on small, checkable inputs."""

from __future__ import annotations

import json

import numpy as np

from burnqed_assets.data.exploration import explore, import_surface, tactic_name
from burnqed_assets.data.token_geometry import TokenLengths, geometry, measure
from burnqed_assets.data.prompt import format_example
from burnqed_assets.settings import DEMO_INPUTS


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_measure_matches_per_example_encode(tmp_path, tiny_tokenizer):
    rows = [{"theorem": f"goedel::t{i}", "state": "x y : ℝ\n" * (i + 1) + "⊢ x ^ 2 ≥ 0", "tactic": "nlinarith" + " x" * i,
             "depth": 0} for i in range(7)]
    _write(tmp_path / "p.jsonl", rows)
    lengths = measure(tmp_path / "p.jsonl", tiny_tokenizer, batch_size=3, verify_sample=3)
    assert lengths.full_method.startswith("additive")  # byte-level BPE splits at the prompt's newlines
    assert lengths.state_method.startswith("per line")
    for i, r in enumerate(rows):
        assert lengths.state[i] == len(tiny_tokenizer.encode(r["state"]))
        assert lengths.tactic[i] == len(tiny_tokenizer.encode(r["tactic"]))
        assert lengths.full[i] == len(tiny_tokenizer.encode(format_example(r["state"], r["tactic"])))


class _CharTripletTokenizer:
    """A fake tokenizer whose counts are not additive over the prompt boundaries (ceil(len/3) + BOS)."""

    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [[0] * (1 + -(-len(t) // 3)) for t in texts]}


def test_measure_falls_back_to_exact_counts_when_not_additive(tmp_path):
    rows = [{"theorem": f"goedel::t{i}", "state": "⊢ " + "x" * i, "tactic": "simp" + "!" * (i % 2), "depth": 0}
            for i in range(40)]
    _write(tmp_path / "p.jsonl", rows)
    tok = _CharTripletTokenizer()
    lengths = measure(tmp_path / "p.jsonl", tok, verify_sample=10)
    assert lengths.full_method.startswith("exact") and lengths.state_method == "per distinct state"
    assert lengths.state.tolist() == [1 + -(-len(r["state"]) // 3) for r in rows]
    expected = [1 + -(-len(format_example(r["state"], r["tactic"])) // 3) for r in rows]
    assert lengths.full.tolist() == expected


def test_geometry_recommendation_follows_the_truncation_budget(tiny_tokenizer):
    full = np.array([100] * 97 + [1100, 1200, 5000])  # 3 % over 1024, 1 % over 1536
    state = np.array([50] * 99 + [600])
    g = geometry(TokenLengths(state=state, tactic=np.full(100, 5), full=full), tiny_tokenizer,
                 sft_candidates=(1024, 1536, 2048), encode_candidates=(256, 512), truncation_budget=0.02)
    assert g.recommended_sft_max_length == 1536 and g.sft_max_length_within_budget
    assert g.recommended_encode_max_length == 256  # 1 % over 256 is within 2 %
    assert g.truncation[0] == {"max_length": 1024, "truncated": 3, "truncated_pct": 3.0,
                                  "tactic_lost": 0, "tactic_lost_pct": 0.0}
    assert g.state_tactic_ratio["median"] == 10.0
    assert g.prompt_overhead_tokens > 0
    none_fit = geometry(TokenLengths(state=state, tactic=np.full(100, 5), full=np.full(100, 9999)), tiny_tokenizer,
                        sft_candidates=(1024, 2048))
    assert none_fit.recommended_sft_max_length == 2048 and not none_fit.sft_max_length_within_budget


def test_exploration_counts(tmp_path):
    rows = []
    for t, depth in [("a", 0), ("b", 2), ("c", 3), ("d", 5)]:
        for d in range(depth + 1):
            rows.append({"theorem": f"goedel::{t}", "state": "⊢ p", "tactic": ["nlinarith [h]", "simp(config)", "intro x"][d % 3],
                         "depth": d})
    _write(tmp_path / "clean.jsonl", rows)
    report = explore(tmp_path / "clean.jsonl", proof_jsonl=[DEMO_INPUTS / "goedel" / "goedel_workbook_proofs.jsonl"],
                             contrastive_min_theorems=3)
    assert report.clean_theorems == 4 and report.clean_pairs == 14
    assert report.depth_distribution == {"0": 1, "1-2": 1, "3-4": 1, "5+": 1}
    assert report.contrastive_eligible == 2 and report.contrastive_pool_warning
    names = {t["tactic"]: t["count"] for t in report.top_30_tactics}
    assert names == {"nlinarith": 6, "simp": 4, "intro": 4}
    assert report.top5_tactic_share == 1.0 and report.unique_tactic_names == 3
    assert report.pair_depth_distribution["0"] == 4 and report.deep_pairs == 4
    assert sorted(report.proof_lengths.tolist()) == [1, 3, 4, 6]
    assert report.top_20_imports[0]["module"] == "Mathlib" and report.top_20_imports[0]["count"] == 100


def test_tactic_name_matches_the_plan_and_import_surface_prefers_lean_files(tmp_path):
    assert tactic_name("  nlinarith [sq_nonneg (a - b)]") == "nlinarith"
    assert tactic_name("rw[h]") == "rw" and tactic_name("exact(h)") == "exact"
    (tmp_path / "A.lean").write_text("import Mathlib.Tactic\nimport Mathlib\n", encoding="utf-8")
    counts, source = import_surface([tmp_path], [DEMO_INPUTS / "goedel" / "goedel_workbook_proofs.jsonl"])
    assert counts == {"Mathlib.Tactic": 1, "Mathlib": 1} and ".lean files" in source

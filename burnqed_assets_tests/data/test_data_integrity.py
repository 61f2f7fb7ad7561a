"""M.6 / 0.4 rules: contamination, malformed states, duplicates, unreadable lines (file:line)."""

from __future__ import annotations

import json

from burnqed_assets.data import duck
from burnqed_assets.data.integrity import build_clean_pool
from burnqed_assets.data.io import LineReport
from burnqed_assets.settings import DEMO_INPUTS

BAD = DEMO_INPUTS / "bad" / "bad_traces.jsonl"


def _pair(theorem: str, state: str = "x : ℝ\n⊢ x = x", tactic: str = "rfl", depth: int = 0) -> dict:
    return {"theorem": theorem, "state": state, "tactic": tactic, "state_after": "no goals", "depth": depth,
            "source": "goedel_workbook"}


def _write(path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")


def test_load_jsonl_reports_each_bad_line_with_its_location(tmp_path):
    src = tmp_path / "pairs.jsonl"
    _write(src, [_pair("goedel::a"), "", "{not json", "[1, 2]", {"theorem": 3, "state": "s", "tactic": "t"},
                 {"theorem": "goedel::b", "state": "⊢ p", "tactic": "t", "depth": "deep"}, _pair("goedel::c")])
    report = LineReport()
    con = duck.connect()
    n = duck.load_jsonl(con, src, "t", {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR",
                                        "depth": "BIGINT"}, ("theorem", "state", "tactic"), report)
    assert n == 2 and report.rows == 2
    assert [b.line for b in report.bad] == [3, 4, 5, 6]
    assert str(report.bad[0]).startswith(f"{src}:3: malformed JSON")
    assert "theorem" in report.bad[2].reason and "depth" in report.bad[3].reason
    assert [r[0] for r in con.execute("SELECT _line FROM t ORDER BY _line").fetchall()] == [1, 7]


def test_bad_set_every_rule_fires_and_names_file_line(tmp_path):
    res = build_clean_pool(BAD, tmp_path / "clean.jsonl")
    assert res.bad_lines == 1 and res.bad_line_examples[0].startswith(f"{BAD}:17:")
    # sorry, admit, cheat, sorryAx in a state, sorryAx in a tactic
    assert res.contaminated_theorems == 5 and res.contaminated_pairs == 5
    assert any(e.startswith(f"{BAD}:9:") for e in res.contamination_examples)
    assert res.malformed == {"empty_state": 1, "no_goals_state": 1, "no_turnstile": 1, "empty_tactic": 0}
    assert res.duplicate_pairs == 1 and res.duplicate_examples[0].startswith(f"{BAD}:19:")
    assert res.suspicious_axiom_mentions.get("sorryAx") == 2
    kept = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text(encoding="utf-8").splitlines()]
    names = {r["theorem"] for r in kept}
    assert names == {"goedel::demo_handwritten_1", "goedel::demo_handwritten_2", "goedel::bad_duplicated"}
    assert len(kept) == res.clean_pairs == 9
    assert res.clean_fraction < 0.9
    dropped = {d["theorem"] for d in res.dropped_theorems}
    assert "goedel::bad_sorry_tactic" in dropped and "goedel::bad_empty_state" in dropped


def test_contamination_drops_the_whole_theorem(tmp_path):
    src = tmp_path / "t.jsonl"
    _write(src, [_pair("goedel::a", tactic="intro x", depth=0), _pair("goedel::a", tactic="sorry", depth=1),
                 _pair("goedel::b")])
    res = build_clean_pool(src, tmp_path / "clean.jsonl")
    assert res.contaminated_theorems == 1 and res.clean_theorems == 1 and res.clean_pairs == 1


def test_clean_pool_rerun_is_byte_identical(tmp_path):
    src = DEMO_INPUTS / "traced" / "handwritten_deep_traces.jsonl"
    build_clean_pool(src, tmp_path / "a.jsonl")
    first = (tmp_path / "a.jsonl").read_bytes()
    res = build_clean_pool(src, tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == first
    assert res.clean_fraction == 1.0 and res.bad_lines == 0
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_the_pool_index_matches_the_jsonl(tmp_path):
    from burnqed_assets.data.pairs import read_pairs, text_of

    dest = tmp_path / "clean.jsonl"
    build_clean_pool(DEMO_INPUTS / "traced" / "handwritten_deep_traces.jsonl", dest)
    rows = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    t = read_pairs(dest)
    assert t.indexed and len(t) == len(rows)
    assert [t.theorems[i] for i in t.theorem_id.tolist()] == [r["theorem"] for r in rows]
    assert [text_of(t.state_json(i)) for i in range(len(t))] == [r["state"] for r in rows]
    assert [text_of(t.tactic_json(i)) for i in range(len(t))] == [r["tactic"] for r in rows]
    assert t.depth.tolist() == [r["depth"] for r in rows] and not t.depth_null.any()
    assert [t.sources[i] for i in t.source_id.tolist()] == [r["source"] for r in rows]


def test_bad_lines_raise_when_there_is_no_report_to_count_them(tmp_path):
    import pytest

    from burnqed_assets.data.io import BadInputError

    src = tmp_path / "p.jsonl"
    _write(src, [_pair("goedel::a"), "{oops"])
    with pytest.raises(BadInputError, match=r"p\.jsonl:2: malformed JSON"):
        duck.load_jsonl(duck.connect(), src, "t", {"theorem": "VARCHAR"}, ("theorem",))

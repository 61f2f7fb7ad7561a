"""The shipped demo traces: derived Goedel pairs, hand-written deep traces, dead ends, statements."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise

from burnqed_assets.settings import DEMO_INPUTS

TRACED = DEMO_INPUTS / "traced"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (TRACED / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_handwritten_traces_are_deep_and_chain_state_to_state():
    rows = _rows("handwritten_deep_traces.jsonl")
    by_theorem: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        assert r["_handwritten"] is True and r["source"] == "goedel_workbook"
        assert r["theorem"].startswith("goedel::demo_handwritten_")
        assert "⊢" in r["state"]
        by_theorem[r["theorem"]].append(r)
    assert len(by_theorem) >= 40
    variants = 0
    for rows_of_theorem in by_theorem.values():
        main = sorted((r for r in rows_of_theorem if "_proof_variant" not in r), key=lambda r: r["depth"])
        assert [r["depth"] for r in main] == list(range(len(main)))
        assert 4 <= len(main) <= 7
        for a, b in pairwise(main):
            assert a["state_after"] == b["state"]
        assert main[-1]["state_after"] == "no goals"
        # a second proof leaves the first from one of its states, with another tactic, and chains to the end
        alt = sorted((r for r in rows_of_theorem if r.get("_proof_variant") == 2), key=lambda r: r["depth"])
        if alt:
            variants += 1
            assert alt[0]["state"] == main[alt[0]["depth"]]["state"]
            assert alt[0]["tactic"] != main[alt[0]["depth"]]["tactic"]
            assert [r["depth"] for r in alt] == list(range(alt[0]["depth"], alt[0]["depth"] + len(alt)))
            for a, b in pairwise(alt):
                assert a["state_after"] == b["state"]
            assert alt[-1]["state_after"] == "no goals"
    assert variants >= 10  # branching proofs give search its off-path siblings


def test_statements_cover_every_handwritten_theorem():
    names = {r["theorem"] for r in _rows("handwritten_deep_traces.jsonl")}
    statements = {f"goedel::{s['name']}": s for s in _rows("handwritten_statements.jsonl")}
    assert names == set(statements)
    for s in statements.values():
        assert s["formal_statement"].startswith(f"theorem {s['name']} ") and s["formal_statement"].endswith(":= by")
        assert "import Mathlib" in s["header"]


def test_dead_ends_branch_from_recorded_states():
    recorded = {(r["theorem"], r["state"]) for r in _rows("handwritten_deep_traces.jsonl")}
    dead = _rows("handwritten_dead_ends.jsonl")
    assert len({(r["theorem"], r["state"]) for r in dead}) >= 30
    for r in dead:
        assert (r["theorem"], r["state"]) in recorded
        assert (r["state_after"] is None) != (r["error"] is None)  # a new state or an error


def test_derived_goedel_pairs_are_marked_and_rooted():
    rows = _rows("goedel_derived_traces.jsonl")
    proofs = {json.loads(line)["problem_id"] for line in
              (DEMO_INPUTS / "goedel" / "goedel_workbook_proofs.jsonl").read_text(encoding="utf-8").splitlines()}
    assert rows and all(r["depth"] == 0 and r["_derived"].startswith("root state reconstructed") for r in rows)
    assert {r["theorem"].removeprefix("goedel::") for r in rows} <= proofs
    assert all("⊢" in r["state"] and "sorry" not in r["tactic"] for r in rows)

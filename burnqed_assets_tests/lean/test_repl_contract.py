"""Contract: the client reports exactly what Lean said in every recorded REPL transcript."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lean_fakes import TRANSCRIPTS, fake_argv

from burnqed_assets.lean.repl_client import ReplProcess
from burnqed_assets.lean.repl_env import check_result_from_response, tactic_result_from_response

PAIRS = sorted(p for p in TRANSCRIPTS.glob("*.in") if p.with_suffix(".expected.out").exists())
CHEATS = ("tactic_mode_sorry", "have_by_sorry", "self_proof_apply_check", "self_proof_check",
          "self_proof_exact_check", "self_proof_rw", "tactic_sorry", "term_sorry", "dup_sorries")


def _blocks(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    return [json.loads("".join(b.splitlines())) for b in re.split(r"\n[ \t]*\n", text) if b.strip()]


def test_all_transcripts_present():
    assert len(PAIRS) >= 60, f"expected the REPL transcript fixtures in {TRANSCRIPTS}"


@pytest.mark.parametrize("inp", PAIRS, ids=[p.stem for p in PAIRS])
def test_transcript_contract(inp: Path):
    requests, expected = _blocks(inp), _blocks(inp.with_suffix(".expected.out"))
    proved, accepted = [], []
    with ReplProcess(fake_argv("--transcript", str(inp), str(inp.with_suffix(".expected.out"))), timeout_s=10) as proc:
        for req, want in zip(requests, expected):
            got = proc.send(req)
            assert got == want  # raw response: exactly what Lean printed
            if "tactic" in req:
                res = tactic_result_from_response(got)
                completed = got.get("proofStatus") == "Completed" and not got.get("goals") and not got.get("sorries")
                assert (res.status == "proved") == completed, (req, got, res)
                if res.status == "open":
                    assert res.state is not None and list(res.state.goals) == got["goals"]
                if "message" in got:
                    assert res.status == "error" and res.error == got["message"]
                if res.status == "proved":
                    proved.append(req)
            elif "cmd" in req or "path" in req:
                res = check_result_from_response(got)
                assert res.sorries == len(got.get("sorries", []))
                if "message" in got and "env" not in got:  # REPL-level error, e.g. unknown environment
                    assert [(m.severity, m.text) for m in res.messages] == [("error", got["message"])]
                else:
                    assert [m.text for m in res.messages] == [m["data"] for m in got.get("messages", [])]
                    assert [m.severity for m in res.messages] == [m["severity"] for m in got.get("messages", [])]
                has_error = any(m["severity"] == "error" for m in got.get("messages", []))
                if got.get("sorries") or has_error or "message" in got:
                    assert not res.ok
                if res.ok:
                    accepted.append(req)
        assert proc.counters["ok"] == min(len(requests), len(expected))
    if inp.stem in CHEATS:
        assert proved == [], f"{inp.stem}: a cheating tactic counted as a proof"
        assert all("sorry" not in json.dumps(r) and "exact?" not in json.dumps(r) for r in accepted), \
            f"{inp.stem}: a sorry/exact? command counted as accepted"


def test_cheat_transcripts_are_in_the_corpus():
    names = {p.stem for p in PAIRS}
    for name in ("tactic_mode_sorry", "have_by_sorry", "self_proof_check", "self_proof_rw"):
        assert name in names

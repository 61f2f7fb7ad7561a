"""ReplayLeanEnv: recorded transitions in, recorded results out; unknown tactics are errors."""

from __future__ import annotations

import json

import pytest
from lean_fakes import TRANSCRIPTS

from burnqed_assets.lean import ReplayLeanEnv, UnknownTheoremError, verify_proof
from burnqed_assets.lean.factory import MINIF2F_SEARCH_TRACES, make_replay_env
from burnqed_assets.lean.replay import NOT_IN_TABLE, Outcome
from burnqed_assets.settings import get_settings


@pytest.fixture(scope="module")
def demo_env() -> ReplayLeanEnv:
    env = make_replay_env(get_settings("demo"))  # the stand-in's table, in process
    assert isinstance(env, ReplayLeanEnv) and env.name == "replay" and env.verified_by == "replay"
    return env


def _sstrace_rows():
    with open(MINIF2F_SEARCH_TRACES, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_recorded_search_trace_replays(demo_env):
    rows = _sstrace_rows()
    row = next(r for r in rows if r["step_index"] == 0 and r["state_after"] != "no goals")
    state = demo_env.open_theorem("", name=row["_context"]["full_name"])
    assert " ".join(state.pp.split()) == " ".join(row["state_before"].split())
    res = demo_env.run_tactic(state, row["tactic"])
    assert res.status == "open"
    assert " ".join(res.state.pp.split()) == " ".join(row["state_after"].split())


def test_unknown_tactic_is_an_error_saying_so(demo_env):
    state = demo_env.open_theorem("", name="mathd_algebra_478")
    res = demo_env.run_tactic(state, "simp [this_lemma_was_never_recorded]")
    assert res.status == "error" and res.error == NOT_IN_TABLE and "replay table" in res.error


def test_whitespace_is_normalised(demo_env):
    state = demo_env.open_theorem("", name="mathd_algebra_478")
    res = demo_env.run_tactic(state, "  field_simp   [h₁,  h₂, h₃]\n   <;> ring ")
    assert res.status == "proved"


def test_banned_tactic_never_proves(demo_env):
    state = demo_env.open_theorem("", name="mathd_algebra_478")
    for tactic in ("sorry", "admit", "exact?", "native_decide"):
        assert demo_env.run_tactic(state, tactic).status == "error"


def test_unknown_theorem_raises(demo_env):
    with pytest.raises(UnknownTheoremError, match="replay"):
        demo_env.open_theorem("theorem never_recorded_xyz : 1 = 1 := by", name="never_recorded_xyz")


def test_minif2f_roots_from_v1_goals(demo_env):
    # Every miniF2F v1 problem can be opened (its recorded root goal); unknown tactics then fail.
    state = demo_env.open_theorem("theorem amc12a_2015_p10 (x y : ℤ) : x = 26 := by")
    assert state.goals and "x = 26" in state.goals[-1]


def test_check_file_verifies_by_replay(demo_env):
    # A full InternLM proof (all its steps recorded) verifies by replay, from its root state.
    rows = _sstrace_rows()
    by_attempt: dict = {}
    for r in rows:
        key = (r["_context"]["full_name"], r["_source"]["model_dir"])
        by_attempt.setdefault(key, []).append(r)
    _, steps = next((k, v) for k, v in by_attempt.items() if len(v) >= 2 and v[-1]["state_after"] == "no goals"
                            and [s["step_index"] for s in v] == list(range(len(v))))
    stmt = steps[0]["_context"]["statement"] + " := by\n"
    code = "import Mathlib\n\n" + stmt + "".join(f"  {s['tactic']}\n" for s in steps)
    result = verify_proof(code, demo_env)
    assert result.ok, result.reasons
    assert result.verified_by == "replay" and result.axioms is None
    wrong = "import Mathlib\n\n" + stmt + "".join(f"  {s['tactic']}\n" for s in steps[:-1])
    assert not verify_proof(wrong, demo_env).ok  # last step missing: unsolved goals
    cheat = "import Mathlib\n\n" + stmt + "  sorry\n"
    assert not verify_proof(cheat, demo_env).ok


def test_transcripts_feed_the_table():
    env = ReplayLeanEnv()
    n = env.load_transcript(TRANSCRIPTS / "proof_step.in", TRANSCRIPTS / "proof_step.expected.out")
    assert n == 3
    from burnqed_assets.lean.env import ProofState

    root = ProofState("⊢ Nat", ("⊢ Nat",))
    res = env.run_tactic(root, "apply Int.natAbs")
    assert res.status == "open" and res.state.goals == ("⊢ Int",)
    res = env.run_tactic(root, "have t : Nat := 42")
    assert res.status == "open"
    assert env.run_tactic(res.state, "exact t").status == "proved"
    # Cheating transcripts record no proof.
    env2 = ReplayLeanEnv()
    for name in ("tactic_mode_sorry", "have_by_sorry", "self_proof_rw", "self_proof_apply_check"):
        env2.load_transcript(TRANSCRIPTS / f"{name}.in", TRANSCRIPTS / f"{name}.expected.out")
    assert all(o.kind != "proved" for o in env2._table.values())


def test_bad_lines_are_reported_with_location(tmp_path):
    f = tmp_path / "x_traces.jsonl"
    f.write_text('{"theorem": "t", "state": "⊢ True", "tactic": "trivial", "state_after": "no goals", "depth": 0}\n'
                 "not json\n"
                 '{"theorem": "t", "state": "", "tactic": "x"}\n', encoding="utf-8")
    env = ReplayLeanEnv()
    assert env.load_traced_pairs(f) == 1
    assert env.stats()["bad_lines"] == 2
    assert [b.line for b in env.report.bad] == [2, 3] and env.report.bad[0].path == f
    assert env.run_tactic(env.open_theorem("", name="t"), "trivial").status == "proved"


def test_dead_ends_and_unknown_results():
    env = ReplayLeanEnv()
    env.add_transition("⊢ P", "linarith", Outcome("error", error="linarith failed"))
    env.add_transition("⊢ P", "intro h", Outcome("unknown", error="recorded without result"))
    from burnqed_assets.lean.env import ProofState

    s = ProofState("⊢ P", ("⊢ P",))
    assert env.run_tactic(s, "linarith").error == "linarith failed"
    assert env.run_tactic(s, "intro h").status == "error"
    stats = env.stats()
    assert stats["hits"] == 2 and stats["misses"] == 0

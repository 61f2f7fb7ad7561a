"""The verifier's cheat corpus: every cheat rejected with a reason, every honest proof accepted.

Lean is absent here: the backend verdicts are recorded REPL-style responses (the real
Goedel verify results recorded by kimina-lean-server; `#print axioms` lines as Lean prints them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lean_fakes import missing_sample_reason, real_sample

from burnqed_assets.lean.env import CheckResult
from burnqed_assets.lean.repl_env import check_result_from_response
from burnqed_assets.lean.verify import (
    lex,
    normalise_statement,
    static_scan,
    statement_check_commands,
    strip_comments_and_strings,
    theorem_names,
    verify_proof,
)
from burnqed_assets.settings import REPO_ROOT

HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n\n"
STD_AXIOMS = "[propext, Classical.choice, Quot.sound]"


class RecordedEnv:
    """A backend answering with a recorded REPL response plus Lean's `#print axioms` lines."""

    name = "recorded"
    verified_by = "lean"

    def __init__(self, response: dict | None = None, axioms: str | dict[str, str] = STD_AXIOMS):
        self.response = response or {"env": 0}
        self.axioms = axioms  # one list for every theorem, or {theorem: list}
        self.calls = 0
        self.codes: list[str] = []

    def check_file(self, code: str) -> CheckResult:
        self.calls += 1
        self.codes.append(code)
        resp = json.loads(json.dumps(self.response))
        resp.setdefault("messages", [])
        # Lean answers each `#print axioms` command of the file (the verifier appends them).
        for name in dict.fromkeys(m.group(1) for m in re.finditer(r"(?m)^#print axioms (\S+)", code)):
            axioms = self.axioms.get(name, STD_AXIOMS) if isinstance(self.axioms, dict) else self.axioms
            resp["messages"].append({"severity": "info", "pos": {"line": 1, "column": 0},
                                     "data": f"'{name}' depends on axioms: {axioms}"})
        return check_result_from_response(resp)


def _jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def honest_corpus() -> list[tuple[str, str, dict]]:
    """(id, file, recorded response) of real proofs that Lean accepted."""
    out = []
    for r in _jsonl(REPO_ROOT / "data" / "demo" / "goedel" / "goedel_workbook_proofs.jsonl"):
        ev = r["expected_verify_result"]
        if ev["error"] is None:
            out.append((r["problem_id"], r["full_proof"], {"env": 0, "messages": ev["response"].get("messages", [])}))
    fewshot = real_sample("real_deepseek_minif2f_valid_fewshot_proofs.jsonl")
    if fewshot.exists():
        for r in _jsonl(fewshot):
            code = HEADER + r["informal_prefix"] + r["formal_statement"] + r["formal_proof"]
            out.append((r["name"], code, {"env": 0}))
    return out


T = "theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by\n"
# (id, file, recorded response or None for a clean Lean answer, axioms printed by Lean)
CHEATS: list[tuple[str, str, dict | None, str]] = [
    ("sorry", HEADER + T + "  sorry\n", None, STD_AXIOMS),
    ("sorry_in_have", HEADER + T + "  have h2 : x ≠ 0 := by sorry\n  positivity\n", None, STD_AXIOMS),
    ("term_sorry", HEADER + "theorem t : 1 = 2 := sorry\n", None, STD_AXIOMS),
    ("paren_sorry", HEADER + T + "  exact (sorry)\n", None, STD_AXIOMS),
    ("admit", HEADER + T + "  admit\n", None, STD_AXIOMS),
    ("admit_in_chain", HEADER + T + "  nlinarith <;> admit\n", None, STD_AXIOMS),
    ("sorryAx", HEADER + T + "  exact sorryAx _ false\n", None, STD_AXIOMS),
    ("decreasing_by_sorry", HEADER + "def f : ℕ → ℕ\n  | n => f n\ndecreasing_by sorry\n" + T + "  positivity\n",
     None, STD_AXIOMS),
    ("native_decide", HEADER + "theorem t : 2 ^ 64 % 7 = 2 := by\n  native_decide\n", None, STD_AXIOMS),
    ("decide_native", HEADER + "theorem t : 2 ^ 64 % 7 = 2 := by\n  decide +native\n", None, STD_AXIOMS),
    ("ofReduceBool", HEADER + "theorem t : 2 ^ 64 % 7 = 2 := by\n  exact Lean.ofReduceBool _ _ rfl\n", None, STD_AXIOMS),
    ("new_axiom", HEADER + "axiom cheat : False\n" + T + "  exact cheat.elim\n", None, STD_AXIOMS),
    ("private_axiom", HEADER + "private axiom cheat (p : Prop) : p\n" + T + "  exact cheat _\n", None, STD_AXIOMS),
    ("implemented_by", HEADER + "def g (n : ℕ) : Bool := true\n@[implemented_by g] def h (n : ℕ) : Bool := false\n"
     + T + "  positivity\n", None, STD_AXIOMS),
    ("extern", HEADER + "@[extern \"lean_cheat\"] opaque c : ℕ → Bool\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("attribute_extern", HEADER + "opaque c : ℕ → Bool\nattribute [extern \"x\"] c\n" + T + "  positivity\n",
     None, STD_AXIOMS),
    ("skipKernelTC", HEADER + "set_option debug.skipKernelTC true in\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("byAsSorry", HEADER + "set_option debug.byAsSorry true\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("unknown_option", HEADER + "set_option allowUnsafeReducibility true\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("eval_io", HEADER + "#eval IO.Process.run {cmd := \"rm\", args := #[\"-rf\", \"/tmp/x\"]}\n" + T + "  positivity\n",
     None, STD_AXIOMS),
    ("eval_bang", HEADER + "#eval! (IO.println \"hi\")\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("run_cmd", HEADER + "run_cmd Lean.logInfo \"x\"\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("run_tac", HEADER + T + "  run_tac Lean.Elab.Tactic.evalTactic (← `(tactic| positivity))\n", None, STD_AXIOMS),
    ("exact_search", HEADER + T + "  exact?\n", None, STD_AXIOMS),
    ("apply_search", HEADER + T + "  apply?\n", None, STD_AXIOMS),
    ("rw_search", HEADER + T + "  rw?\n", None, STD_AXIOMS),
    ("macro_redefines", HEADER + "macro \"nlinarith\" : tactic => `(tactic| exact cheat)\n" + T + "  nlinarith\n",
     None, STD_AXIOMS),
    ("macro_rules", HEADER + "macro_rules | `(tactic| positivity) => `(tactic| trivial)\n" + T + "  positivity\n",
     None, STD_AXIOMS),
    ("elab", HEADER + "elab \"cheat\" : tactic => Lean.Elab.admitGoal\n" + T + "  cheat\n", None, STD_AXIOMS),
    ("syntax", HEADER + "syntax \"cheat\" : tactic\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("notation", HEADER + "notation \"ℝ\" => ℕ\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("unsafe", HEADER + "unsafe def u : ℕ := 0\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("exit", HEADER + T + "  positivity\n#exit\ntheorem more : False := by simp\n", None, STD_AXIOMS),
    ("foreign_import", "import Mathlib\nimport Cheats.AllTrue\n\n" + T + "  positivity\n", None, STD_AXIOMS),
    ("csimp", HEADER + "@[csimp] theorem c : @id = @id := rfl\n" + T + "  positivity\n", None, STD_AXIOMS),
    # Caught by Lean's verdict (recorded responses) rather than by the scan:
    ("lean_error", HEADER + T + "  nlinarith [div_le_div_iff]\n",
     {"env": 0, "messages": [{"severity": "error", "pos": {"line": 8, "column": 13},
                              "data": "unknown identifier 'div_le_div_iff'"}]}, STD_AXIOMS),
    ("unsolved_goals", HEADER + T + "  intro\n",
     {"env": 0, "messages": [{"severity": "error", "pos": {"line": 7, "column": 40},
                              "data": "unsolved goals\nx : ℝ\nh : 0 < x\n⊢ 0 < x ^ 2"}]}, STD_AXIOMS),
    ("sorry_via_library", HEADER + T + "  positivity\n",
     {"env": 0, "messages": [{"severity": "warning", "pos": {"line": 7, "column": 8},
                              "data": "declaration uses `sorry`"}]}, STD_AXIOMS),
    ("sorries_reported", HEADER + T + "  positivity\n",
     {"env": 0, "sorries": [{"proofState": 0, "goal": "⊢ False"}]}, STD_AXIOMS),
    ("axiom_sorryAx", HEADER + T + "  positivity\n", None, "[propext, sorryAx, Classical.choice, Quot.sound]"),
    ("axiom_ofReduceBool", HEADER + T + "  positivity\n", None, "[propext, Lean.ofReduceBool, Quot.sound]"),
    ("axiom_custom", HEADER + T + "  positivity\n", None, "[propext, Mathlib.cheat]"),
    ("kernel_error", HEADER + "theorem ex : False := by apply ex\n",
     {"env": 0, "messages": [{"severity": "error", "pos": {"line": 1, "column": 8},
                              "data": "fail to show termination for\n  ex"}]}, STD_AXIOMS),
    ("backend_timeout", HEADER + T + "  positivity\n", {"message": "Lean process timed out"}, STD_AXIOMS),
]


def test_corpus_sizes():
    assert len(CHEATS) >= 30
    assert len(honest_corpus()) >= 30


@pytest.mark.parametrize("case", CHEATS, ids=[c[0] for c in CHEATS])
def test_every_cheat_is_rejected_with_a_reason(case):
    name, code, response, axioms = case
    env = RecordedEnv(response, axioms)
    result = verify_proof(code, env)
    assert not result.ok, f"cheat {name} accepted"
    assert result.reasons and all(r.strip() for r in result.reasons)


def test_static_cheats_never_reach_lean():
    env = RecordedEnv()
    result = verify_proof(HEADER + "#eval IO.Process.run {cmd := \"id\"}\n" + T + "  positivity\n", env)
    assert not result.ok and env.calls == 0  # `#eval` with IO must not run on this machine


def test_every_honest_proof_is_accepted():
    corpus = honest_corpus()
    rejected = []
    for name, code, response in corpus:
        result = verify_proof(code, RecordedEnv(response))
        if not result.ok:
            rejected.append((name, result.reasons))
        else:
            assert result.axioms == ["propext", "Classical.choice", "Quot.sound"]
            assert result.verified_by == "lean"
    assert rejected == []


def test_honest_tricky_text_is_not_a_cheat():
    code = (HEADER + "/- We never use sorry or admit here; /- nested: native_decide -/ still a comment -/\n"
            "-- exact? would find it, but we write the proof\n"
            "theorem t (hsorry : 0 < (1 : ℝ)) (h_admit : True) : 0 < (1 : ℝ) := by\n"
            "  have msg : String := \"sorry, admit, #eval\"\n  exact hsorry\n")
    assert static_scan(code) == []
    assert verify_proof(code, RecordedEnv()).ok


def test_kimina_native_decide_proofs_are_flagged():
    path = real_sample("real_kimina_minif2f_test_proofs.jsonl")
    if not path.exists():
        pytest.skip(missing_sample_reason(path.name))
    rows = _jsonl(path)
    flagged = [r["name"] for r in rows if any(v.code == "native_decide" for v in static_scan(r["correct_proof"]))]
    with_nd = [r["name"] for r in rows if "native_decide" in strip_comments_and_strings(r["correct_proof"])]
    assert flagged == with_nd and flagged  # real model proofs that trust the compiler


def test_expected_statement_and_theorem_name():
    code = HEADER + "theorem t (x : ℝ) (h : 0 < x) : 0 ≤ x := by\n  positivity\n"
    weakened = verify_proof(code, RecordedEnv(), expected_statement=T)
    assert not weakened.ok and "statement_mismatch" in weakened.codes
    assert not verify_proof(code, RecordedEnv(), theorem="other").ok
    assert not verify_proof(HEADER + T + "  positivity\n" + T + "  positivity\n", RecordedEnv()).ok  # declared twice
    assert verify_proof(HEADER + T + "  positivity\n", RecordedEnv(), expected_statement=T).ok


def test_without_backend_nothing_counts():
    result = verify_proof(HEADER + T + "  positivity\n", None)
    assert not result.ok and result.verified_by == "static"


def test_recorded_timeouts_are_rejected():
    rows = _jsonl(REPO_ROOT / "data" / "demo" / "goedel" / "goedel_workbook_proofs.jsonl")
    timeouts = [r for r in rows if r["expected_verify_result"]["error"]]
    assert timeouts
    for r in timeouts:
        resp = {"message": r["expected_verify_result"]["error"]}
        assert not verify_proof(r["full_proof"], RecordedEnv(resp)).ok


# ---- the adversarial corpus on disk: one file per trick, its first line names the rule ----------

CORPUS = Path(__file__).parent / "cheat_corpus"
BENCH_T = T  # the benchmark statement every corpus file is checked against (unless it says otherwise)


def corpus_files() -> list[tuple[str, str, str, str]]:
    """(file name, code, rule code expected, benchmark statement)."""
    out = []
    for path in sorted(CORPUS.glob("*.lean")):
        code = path.read_text(encoding="utf-8")
        rule = re.match(r"-- rule: (\S+)", code)
        assert rule, f"{path.name}: first line must be `-- rule: <code>`"
        expected = re.search(r"(?m)^-- expected: (.+)$", code)
        out.append((path.name, code, rule.group(1), expected.group(1) if expected else BENCH_T))
    return out


def test_cheat_corpus_has_twenty_new_files():
    assert len(corpus_files()) >= 20


@pytest.mark.parametrize("case", corpus_files(), ids=[c[0] for c in corpus_files()])
def test_corpus_file_is_rejected_by_its_rule(case):
    name, code, rule, statement = case
    env = RecordedEnv()
    result = verify_proof(code, env, expected_statement=statement)
    assert not result.ok, f"{name} accepted"
    assert rule in result.codes, f"{name}: expected rule {rule}, got {result.codes}"
    assert env.calls == 0  # rejected before any backend sees it


def test_lexer_reads_tricky_tokens_like_lean():
    clean, issues = lex("h'\"' '\"' x")  # identifier h', the string "' '", then a lone `'`
    assert clean == "h'\"   \"' x" and not issues
    clean, _ = lex("'\"' sorry '\"'")  # two character literals around real code
    assert "sorry" in clean and '"' not in clean
    clean, _ = lex('r#"a "# sorry')  # the raw string ends at quote-hash
    assert "sorry" in clean and "a" not in clean.replace("sorry", "")
    clean, _ = lex('"a \\" sorry" ok')  # an escaped quote does not end a string
    assert "sorry" not in clean and "ok" in clean
    clean, _ = lex("/- a /- b -/ sorry -/ ok")  # nested
    assert "sorry" not in clean and "ok" in clean
    clean, _ = lex("/-/- -/ sorry")  # the character after /- is not read: no nesting here
    assert "sorry" in clean
    clean, _ = lex("/-- doc -/ theorem «a -- b» : True")
    assert "theorem «a -- b»" in clean and "doc" not in clean
    clean, _ = lex("a --b\nc")
    assert clean == "a    \nc"
    assert len(lex("x /- é \" ' -/ y")[0]) == len("x /- é \" ' -/ y")  # offsets kept


def test_statement_normalisation_is_equality_not_substring():
    assert normalise_statement(T) == normalise_statement(
        "theorem t (x : ℝ)\n    (h : 0 < x) :  -- positive\n 0 < x^2 := by sorry")
    assert normalise_statement("lemma t (x:ℝ) (h:0<x) : 0<x ^ 2 := by") == normalise_statement(T)
    assert normalise_statement(T) != normalise_statement(T.replace("0 < x ^ 2", "0 < x ^ 2 ∨ True"))
    assert normalise_statement("theorem t : a b = c") != normalise_statement("theorem t : ab = c")


def test_lean_checks_the_benchmark_statement_and_all_axioms():
    env = RecordedEnv()
    code = HEADER + "lemma helper (y : ℝ) : 0 ≤ y ^ 2 := sq_nonneg y\n\n" + T + "  positivity\n"
    assert verify_proof(code, env, expected_statement=T).ok
    sent = env.codes[-1]
    assert "example : ∀ (x : ℝ) (h : 0 < x), 0 < x ^ 2 := @t" in sent
    assert "#print axioms t" in sent and "#print axioms helper" in sent
    # Lean refusing the appended `example` (the theorem does not prove the benchmark statement) rejects.
    bad = RecordedEnv({"env": 0, "messages": [{"severity": "error", "pos": {"line": 12, "column": 0},
                                               "data": "type mismatch\n  @t\nhas type ..."}]})
    assert "lean_error" in verify_proof(code, bad, expected_statement=T).codes


def test_decoy_theorem_and_helper_axioms_count():
    # The benchmark theorem depends on sorryAx; a clean decoy comes last. Checked by name, rejected.
    code = HEADER + T + "  positivity\n\ntheorem decoy : True := trivial\n"
    env = RecordedEnv(axioms={"t": "[propext, sorryAx]", "decoy": STD_AXIOMS})
    result = verify_proof(code, env, expected_statement=T)
    assert not result.ok and "axioms" in result.codes and result.axioms == ["propext", "sorryAx"]
    # An unused helper with a bad axiom counts too.
    env = RecordedEnv(axioms={"t": STD_AXIOMS, "helper": "[Lean.ofReduceBool]"})
    code = HEADER + "theorem helper : True := trivial\n\n" + T + "  positivity\n"
    assert "axioms" in verify_proof(code, env, expected_statement=T).codes


def test_replay_backend_requires_the_target_last():
    for backend in ("replay", "stand-in"):
        class ReplayLike(RecordedEnv):
            verified_by = backend

        code = HEADER + T + "  positivity\n\ntheorem decoy : True := trivial\n"
        assert "not_last" in verify_proof(code, ReplayLike(), expected_statement=T).codes
        assert verify_proof(HEADER + T + "  positivity\n", ReplayLike(), expected_statement=T).ok


def _benchmark_statements() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in ("minif2f_v1", "miniF2F_v2s", "miniF2F_v2c"):
        for r in _jsonl(REPO_ROOT / "data" / "demo" / "benchmarks" / f"{name}.jsonl"):
            out.setdefault(r["name"], []).append(r["formal_statement"])
    return out


def test_real_model_proofs_are_accepted_against_the_benchmark_statement():
    """Kimina (miniF2F-test) and DeepSeek (miniF2F-valid) proofs, checked by name against the
    benchmark statement of the demo's miniF2F versions: every one whose statement is one of them
    passes; the ones that proved a different variant (an extra hypothesis, other bracketing) fail
    with `statement_mismatch`, never with a scan rule."""
    bench = _benchmark_statements()
    rows = []
    kimina = real_sample("real_kimina_minif2f_test_proofs.jsonl")
    deepseek = real_sample("real_deepseek_minif2f_valid_fewshot_proofs.jsonl")
    for missing in [p for p in (kimina, deepseek) if not p.exists()]:
        pytest.skip(missing_sample_reason(missing.name))
    rows += [(r["name"], r["correct_proof"]) for r in _jsonl(kimina)]
    rows += [(r["name"], HEADER + r["informal_prefix"] + r["formal_statement"] + r["formal_proof"])
             for r in _jsonl(deepseek)]
    accepted, variants = 0, []
    for name, code in rows:
        if "native_decide" in strip_comments_and_strings(code):
            continue  # flagged on purpose (test_kimina_native_decide_proofs_are_flagged)
        results = [verify_proof(code, RecordedEnv(), expected_statement=s) for s in bench[name]]
        if any(r.ok for r in results):
            accepted += 1
        else:
            assert all(r.codes == ["statement_mismatch"] for r in results), (name, results[0].reasons)
            variants.append(name)
    assert accepted >= 200 and len(variants) <= 10, (accepted, variants)

"""The migrated proofs as a Lake project; per-file build errors → triage; fixes re-run failures only."""

from __future__ import annotations

import subprocess

from burnqed_assets.lean.lake_project import LIB, parse_lake_build_log, read_lake_project, write_lake_project
import re

from burnqed_assets.lean.migration import RenameRule, Verdict, migrate_batch, triage

PROOFS = [{"problem_id": "lean_workbook_1", "full_proof": "import Mathlib\n\ntheorem a : 1 = 1 := by\n  rfl"},
          {"problem_id": "amc12-2000.p5", "full_proof": "import Mathlib\n\ntheorem b : 2 = 2 := by\n  rfl\n"}]


def test_lake_project_layout_and_deterministic_commit(tmp_path):
    p = write_lake_project(tmp_path / "proj", PROOFS, "v4.27.0", "v4.27.0")
    assert (p.dir / "lean-toolchain").read_text() == "leanprover/lean4:v4.27.0\n"
    lakefile = (p.dir / "lakefile.toml").read_text()
    assert 'name = "mathlib"' in lakefile and 'rev = "v4.27.0"' in lakefile and f'globs = ["{LIB}.+"]' in lakefile
    assert list(p.modules) == [f"{LIB}.P_lean_workbook_1", f"{LIB}.P_amc12_2000_p5"]  # one module per proof
    assert p.module_file(f"{LIB}.P_amc12_2000_p5").read_text() == PROOFS[1]["full_proof"]
    log = subprocess.run(["git", "-C", str(p.dir), "log", "--format=%H %s"], capture_output=True, text=True).stdout
    assert log.split()[0] == p.commit and "2 migrated proofs" in log
    again = write_lake_project(tmp_path / "other", PROOFS, "v4.27.0", "v4.27.0")
    assert again.commit == p.commit  # same proofs, same commit
    # A proof dropped on a re-run leaves the project, in a new commit.
    fewer = write_lake_project(tmp_path / "proj", PROOFS[:1], "v4.27.0", "v4.27.0")
    assert fewer.commit != p.commit and not p.module_file(f"{LIB}.P_amc12_2000_p5").exists()
    assert read_lake_project(tmp_path / "proj").modules == {f"{LIB}.P_lean_workbook_1": "lean_workbook_1"}
    # The commit depends on the files only, not on the history: rebuilt (as migration chunks
    # finish), the project of the same proofs has the commit of one written at once.
    rebuilt = write_lake_project(tmp_path / "proj", PROOFS, "v4.27.0", "v4.27.0")
    assert rebuilt.commit == p.commit == read_lake_project(tmp_path / "proj").commit


def test_lake_build_log_per_file_errors_feed_triage():
    log = (f"✖ [3/5] Building {LIB}.P_x\n"
           f"error: ././././{LIB}/P_x.lean:4:2: unknown identifier 'div_le_div_iff'\n"
           f"error: ././././{LIB}/P_x.lean:9:0: unsolved goals\n  x : ℕ\n  ⊢ x = x\n"
           f"{LIB}/P_y.lean:2:10: error: unexpected token 'in'; expected ','\n"
           f"{LIB}/P_z.lean:1:0: warning: declaration uses 'sorry'\n"
           "error: build failed\n")
    parsed = parse_lake_build_log(log)
    per_file = parsed.per_file()
    assert set(per_file) == {f"{LIB}/P_x.lean", f"{LIB}/P_y.lean", f"{LIB}/P_z.lean"}
    x = per_file[f"{LIB}/P_x.lean"]
    assert [(m.line, m.severity) for m in x] == [(4, "error"), (9, "error")] and "⊢ x = x" in x[1].text
    assert {m.module for m in x} == {f"{LIB}.P_x"}  # from the `✖ [3/5] Building` line
    assert per_file[f"{LIB}/P_z.lean"][0].severity == "warning" and parsed.build_failed
    verdict = lambda texts: Verdict(False, [], texts, "lean")  # noqa: E731
    assert triage(verdict(parsed.errors_of_module(f"{LIB}.P_x")[:1])) == "api_rename"
    assert triage(verdict(parsed.errors_of_module(f"{LIB}.P_y"))) == "syntax_change"
    assert parsed.errors_of_module(f"{LIB}.P_z") == []  # a warning only


def test_auto_fix_recompiles_only_the_failures():
    rules = [RenameRule("r1", re.compile(r"old_lemma"), "new_lemma", "renamed in Mathlib")]
    records = [{"problem_id": "ok", "full_proof": "theorem ok : True := by trivial"},
               {"problem_id": "fixable", "full_proof": "theorem f : True := by exact old_lemma"},
               {"problem_id": "hopeless", "full_proof": "theorem h : True := by linarith"}]
    batches: list[list[str]] = []

    def check_many(items):
        batches.append([rec["problem_id"] for rec, _ in items])
        return [Verdict("old_lemma" not in code and "linarith" not in code, [],
                        [] if "linarith" not in code and "old_lemma" not in code else
                        ["unknown identifier 'old_lemma'" if "old_lemma" in code else "linarith failed"], "lean")
                for _, code in items]

    result = migrate_batch(records, check_many, rules, "lean")
    assert batches == [["ok", "fixable", "hopeless"], ["fixable"]]  # the fix pass re-runs failures only
    assert {r.problem_id: r.status for r in result.migrated} == {"ok": "compiled", "fixable": "fixed_by_rename"}
    assert [(d.problem_id, d.category) for d in result.dropped] == [("hopeless", "tactic_regression")]

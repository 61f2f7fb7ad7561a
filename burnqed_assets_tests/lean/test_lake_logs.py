"""`parse_lake_build_log` on real `lake build` logs of 2023–2026 (lake_logs/, sources in
lake_logs/SOURCE.md): every located message with its file, position, severity and whole text,
the errors without a position, the failed-module list, and the triage category of the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnqed_assets.lean.lake_project import (
    LakeBuildRun,
    LakeProject,
    normalise_log_path,
    parse_lake_build_log,
    verdicts_from_build,
)
from burnqed_assets.lean.migration import Verdict, triage

LOGS = Path(__file__).with_name("lake_logs")


def _parse(name: str):
    return parse_lake_build_log((LOGS / name).read_text(encoding="utf-8"))


def _where(log) -> list[tuple]:
    return [(m.file, m.line, m.column, m.severity) for m in log.messages]


def _category(texts: list[str]) -> str:
    return triage(Verdict(False, [], texts, "lean"))


def test_every_fixture_has_a_source_note():
    note = (LOGS / "SOURCE.md").read_text(encoding="utf-8")
    logs = sorted(p.name for p in LOGS.glob("*.log"))
    assert len(logs) >= 8
    for name in logs:
        assert f"`{name}`" in note, f"{name} has no source in SOURCE.md"
    assert note.count("https://github.com/") >= len(logs)


def test_2023_lake_stdout_block_with_unindented_continuations():
    log = _parse("lake_2023_stdout_block.log")
    f = "lake-packages/aesop/Aesop/Util/Basic.lean"  # `./lake-packages/aesop/././Aesop/...` normalised
    assert _where(log) == [(f, 94, 20, "error"), (f, 96, 15, "error"), (f, 98, 22, "error"), (f, 100, 24, "error")]
    assert log.messages[0].text == "unknown identifier 'getConst?'"
    # `has type` is not indented, yet it belongs to the message above it
    assert log.messages[1].text.splitlines() == [
        "invalid field notation, type is not of the form (C ...) where C is a constant", "  info", "has type",
        "  ?m.2849 decl"]
    # the `error: > LEAN_PATH=...` command line and `error: stdout:` are not diagnostics
    assert not log.unlocated and not log.failed_modules and not log.build_failed
    # the progress line ran ahead of the failing command: no module is claimed for these errors
    assert {m.module for m in log.messages} == {None}
    assert _category([log.messages[0].text]) == "api_rename"


def test_2023_message_with_a_blank_line_inside():
    log = _parse("lake_2023_std_rfl.log")
    f = "lake-packages/std/Std/Tactic/Relation/Rfl.lean"
    assert _where(log) == [(f, 21, 39, "error"), (f, 25, 43, "error")]
    first = log.messages[0].text
    assert first.startswith("overloaded, errors\n  failed to synthesize instance")
    assert "\n\n  invalid {...} notation" in first and first.endswith("    WhnfCoreConfig")
    assert log.messages[1].text.splitlines()[-2:] == ["but is expected to have type", "  Type : Type 1"]
    assert _category([first]) == "definitional_change"


def test_double_severity_and_a_file_level_error():
    log = _parse("lake_2024_package_config.log")
    f = ".lake/packages/mathlib/lakefile.lean"
    assert len(log.messages) == 11 and {m.file for m in log.messages} == {f}
    assert _where(log)[:2] == [(f, 45, 47, "error"), (f, 45, 51, "error")]
    assert [m.text for m in log.messages[:2]] == ["unknown identifier 'git'", "unexpected token; expected command"]
    last = log.messages[-1]
    assert (last.line, last.column, last.text) == (None, None, "package configuration has errors")
    assert not log.unlocated  # the `info: mathlib: updating repository ...` line is no error
    assert _category([log.messages[1].text]) == "syntax_change"


def test_a_crash_without_a_located_message_still_fails_its_module():
    log = _parse("lake_2024_windows_crash.log")
    assert log.messages == ()  # the Windows `trace:` line holds paths, not diagnostics
    assert [(u.module, u.text) for u in log.unlocated] == [("Mathlib.Tactic.Explode", "Lean exited with code 3221225477")]
    assert log.failed_modules == ("Mathlib.Tactic.Explode",) and log.build_failed  # `Some builds logged failures:`
    assert log.errors_of_module("Mathlib.Tactic.Explode") == ["Lean exited with code 3221225477"]


def test_warnings_carry_the_module_being_built():
    log = _parse("lake_2025_sorry_warnings.log")
    f = "FormalConjectures/ForMathlib/Combinatorics/Basic.lean"
    assert _where(log) == [(f, 41, 6, "warning"), (f, 45, 6, "warning")]
    assert {m.module for m in log.messages} == {"FormalConjectures.ForMathlib.Combinatorics.Basic"}
    assert log.per_file(("error",)) == {}
    assert log.errors_of_module("FormalConjectures.ForMathlib.Combinatorics.Basic") == []  # warnings are no errors


def test_bad_import_and_an_unlocated_error_with_its_file_line():
    log = _parse("lake_2025_bad_import.log")
    (bad,) = log.messages
    assert bad.file == "/home/marc/Documents/Provers/GlimpseOfLean/GlimpseOfLean/Exercises/03Forall.lean"
    assert (bad.line, bad.text) == (None, "bad import 'Mathlib.Topology.Instances.Real.Defs'")
    assert bad.module is None  # `Running setup (/path)` is not a module
    (missing,) = log.unlocated
    assert missing.module == "Mathlib.Topology.Instances.Real.Defs"
    assert missing.text.splitlines()[1].strip().startswith("file: ././.lake/packages/mathlib/")
    assert log.failed_modules[0] == "Mathlib.Topology.Instances.Real.Defs" and len(log.failed_modules) == 2


def test_newer_lake_relative_paths_and_multiline_messages():
    log = _parse("lake_2025_app_type_mismatch.log")
    assert _where(log) == [("Batteries/Linter/UnreachableTactic.lean", 30, 95, "error")]
    assert log.messages[0].text.splitlines() == [
        "Application type mismatch: The argument", "  o", "has type", "  Options", "but is expected to have type",
        "  LinterOptions", "in the application", "  getLinterValue linter.unreachableTactic o"]
    assert [u.text for u in log.unlocated] == ["Lean exited with code 1"]
    assert log.errors_of_module("Batteries.Linter.UnreachableTactic")[0].startswith("Application type mismatch")
    assert _category([log.messages[0].text]) == "definitional_change"


def test_current_lake_format_end_to_end():
    log = _parse("lake_2026_required_targets.log")
    assert _where(log) == [("BVModEq/SolveMLE.lean", 182, 11, "error"), ("BVModEq/SolveMLE.lean", 196, 11, "error")]
    assert all(len(m.text.splitlines()) == 8 for m in log.messages)
    assert log.failed_modules == ("BVModEq.SolveMLE",) and log.build_failed
    errors = log.errors_of_module("BVModEq.SolveMLE")
    assert len(errors) == 2 and all(e.startswith("Application type mismatch") for e in errors)
    assert log.errors_of_module("BVModEq.Other") == []


def test_v4_27_rc1_log_with_absolute_trace_paths():
    log = _parse("lake_v4_27_rc1_not_found.log")
    (m,) = log.messages
    assert (m.file, m.line, m.column, m.module) == ("TPiL/InductiveTypes.lean", 1699, 38, "TPiL.InductiveTypes")
    assert m.text == "Not found: 'h' : m.succ = n.succ'"
    assert log.errors_of_module("TPiL.InductiveTypes") == [m.text]


@pytest.mark.parametrize("raw, want", [
    ("././././LoVe/LoVe08.lean", "LoVe/LoVe08.lean"),
    ("./lake-packages/aesop/././Aesop/Util/Basic.lean", "lake-packages/aesop/Aesop/Util/Basic.lean"),
    (r".\.\.lake/packages\mathlib\.\.\Mathlib\Tactic\Explode.lean", ".lake/packages/mathlib/Mathlib/Tactic/Explode.lean"),
    ("/home/u/book/TPiL/InductiveTypes.lean", "/home/u/book/TPiL/InductiveTypes.lean"),
])
def test_one_spelling_per_file(raw, want):
    assert normalise_log_path(raw) == want


@pytest.mark.parametrize("message, category", [
    ("Unknown identifier `abs_add`", "api_rename"),  # Lean 4.2x capitalises and back-quotes
    ("`simp` made no progress", "tactic_regression"),
    ("No goals to be solved", "tactic_regression"),
    ("Tactic `rewrite` failed: did not find instance of the pattern", "tactic_regression"),
    ("(deterministic) timeout at `whnf`, maximum number of heartbeats (200000) has been reached", "timeout"),
])
def test_current_lean_messages_triage(message, category):
    assert _category([message]) == category


def test_verdict_rules_of_a_build():
    """Per-proof verdicts from one build of the migrated project (modules written here, in the
    format of the logs above): a sorry warning fails its proof, a finished build vouches for the
    silent modules, a killed build (no `error: build failed` summary) vouches for none."""
    project = LakeProject(Path("/p"), {"GoedelMigrated.P_a": "a", "GoedelMigrated.P_b": "b",
                                       "GoedelMigrated.P_c": "c"}, None)

    def verdicts(returncode: int, log: str) -> dict[str, tuple]:
        run = LakeBuildRun(returncode, log, parse_lake_build_log(log), 1.0)
        return {k: (v.ok, triage(v) if not v.ok else None) for k, v in verdicts_from_build(run, project).items()}

    done = ("⚠ [2/4] Built GoedelMigrated.P_b (1.0s)\n"
            "warning: GoedelMigrated/P_b.lean:3:8: declaration uses 'sorry'\n"
            "Build completed successfully (4 jobs).\n")
    assert verdicts(0, done) == {"a": (True, None), "b": (False, "banned_construct"), "c": (True, None)}
    failed = ("✖ [3/4] Building GoedelMigrated.P_c (0.9s)\n"
              "error: GoedelMigrated/P_c.lean:5:2: `simp` made no progress\n"
              "error: Lean exited with code 1\n"
              "Some required targets logged failures:\n- GoedelMigrated.P_c\nerror: build failed\n")
    assert verdicts(1, failed) == {"a": (True, None), "b": (True, None), "c": (False, "tactic_regression")}
    killed = "✔ [2/4] Built GoedelMigrated.P_a (1.0s)\n✖ [3/4] Building GoedelMigrated.P_b\n"
    assert {k: ok for k, (ok, _) in verdicts(-9, killed).items()} == {"a": False, "b": False, "c": False}

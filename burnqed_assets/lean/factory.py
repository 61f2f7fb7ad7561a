"""The profile's Lean REPL command and env: Lean (full) or the REPL stand-in (demo), one client.

`settings.lean.backend`:
- `"repl"`: Lean 4 through lean-interact (`lake env <repl>` in the project);
- `"standin"`: the REPL stand-in program (`python -m burnqed_assets.lean.repl_standin`), which
  answers from the recorded transitions and transcripts in data/demo. Same `ReplProcess`,
  `ReplLeanEnv`, worker pool, tracer and verifier; only the process at the end of the pipe
  differs, and everything it verifies is labelled `verified_by="stand-in"`.
Both launch through the sandbox launcher (`launcher.py`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from burnqed_assets.lean.replay import ReplayLeanEnv, build_replay_env
from burnqed_assets.paths import DEMO_MINIF2F_SEARCH_TRACES, LEAN_REPL_BIN_IN_CACHE
from burnqed_assets.settings import Settings

# Real InternLM miniF2F-test search traces: evaluation material, used ONLY as recorded answers
# of the stand-in (never as training data).
MINIF2F_SEARCH_TRACES = DEMO_MINIF2F_SEARCH_TRACES
BACKENDS = ("repl", "standin")
STANDIN_MODULE = "burnqed_assets.lean.repl_standin"
REPO_ROOT = Path(__file__).resolve().parents[2]


class LeanSetupError(RuntimeError):
    """The Lean toolchain / project / REPL could not be prepared."""


@dataclass(frozen=True)
class ReplCommand:
    """What to launch for one REPL process (picklable: pool workers and Ray actors get it)."""

    argv: tuple[str, ...]
    cwd: str | None
    verified_by: str  # "lean" | "stand-in"
    label: str


def replay_sources(settings: Settings) -> dict[str, list[Path]]:
    """The recorded files the stand-in's table is built from (missing ones are simply absent)."""
    traced_dir = settings.inputs.goedel_recorded_traces.path
    if traced_dir.is_dir():
        traced = sorted(set(traced_dir.glob("*_traces.jsonl")) | set(traced_dir.glob("*dead_ends*.jsonl")))
        trace_rows = sorted(traced_dir.glob("*_traces.jsonl"))
        statements = sorted(traced_dir.glob("*statements*.jsonl"))
    else:
        traced = trace_rows = ([traced_dir] if traced_dir.exists() else [])
        statements = []
    bench = settings.inputs.minif2f_v1.path
    return {
        "traced": traced,
        "trace_rows": trace_rows,
        "sstrace": [MINIF2F_SEARCH_TRACES] if MINIF2F_SEARCH_TRACES.exists() else [],
        "transcripts": [settings.inputs.lean_repl_transcripts.path],
        "benchmark_goals": [bench] if bench.exists() else [],
        "statements": statements,
        # Proof files with the verify result recorded next to them (the Goedel proofs).
        "verdicts": [settings.inputs.goedel_proofs.path] if settings.inputs.goedel_proofs.path.is_file() else [],
    }


def standin_argv(settings: Settings, extra: Sequence[str] = ()) -> list[str]:
    """The stand-in's command line: its recorded sources, its latency, and any fault flags."""
    src = replay_sources(settings)
    argv = [sys.executable, "-m", STANDIN_MODULE]
    for flag, key in (("--traced", "traced"), ("--trace-rows", "trace_rows"), ("--sstrace", "sstrace"),
                      ("--benchmark-goals", "benchmark_goals"), ("--statements", "statements"),
                      ("--verdicts", "verdicts")):
        if src[key]:
            argv += [flag, *map(str, src[key])]
    if src["transcripts"] and src["transcripts"][0].is_dir():
        argv += ["--transcripts", str(src["transcripts"][0])]
    if settings.lean.standin_import_latency_s:
        argv += ["--import-latency", str(settings.lean.standin_import_latency_s)]
    return [*argv, *extra]


def lean_repl_command(settings: Settings) -> ReplCommand:
    """Lean's REPL for `settings.lean.project_dir`, prepared by lean-interact."""
    project_dir = settings.lean.project_dir
    if project_dir is None or not Path(project_dir).is_dir():
        raise LeanSetupError(
            f"Lean project directory {project_dir} not found: create the Lean {settings.lean.lean_version} + "
            "Mathlib project first (docs/lean.md, 'Full-profile setup')")
    try:
        from lean_interact import LeanREPLConfig, LocalProject
    except ImportError as exc:  # pragma: no cover - lean-interact is a core dependency
        raise LeanSetupError("lean-interact is not installed (pip install lean-interact)") from exc
    try:
        config = LeanREPLConfig(project=LocalProject(directory=str(project_dir)),
                                memory_hard_limit_mb=settings.lean.memory_cap_mb, verbose=False)
    except Exception as exc:
        raise LeanSetupError(f"lean-interact could not prepare the REPL for {project_dir}: {exc} "
                             "(is `lake` on PATH? see docs/lean.md)") from exc
    repl_bin = Path(config.cache_repl_dir) / LEAN_REPL_BIN_IN_CACHE
    return ReplCommand((str(config.lake_path), "env", str(repl_bin)), str(config.working_dir), "lean",
                       f"Lean REPL ({settings.lean.lean_version}, {project_dir})")


def repl_command(settings: Settings, extra_standin_args: Sequence[str] = ()) -> ReplCommand:
    backend = settings.lean.backend
    if backend == "repl":
        return lean_repl_command(settings)
    if backend == "standin":
        return ReplCommand(tuple(standin_argv(settings, extra_standin_args)), str(REPO_ROOT), "stand-in",
                           "REPL stand-in (recorded transitions, not Lean)")
    raise ValueError(f"unknown settings.lean.backend {backend!r}; choose one of {BACKENDS}")


def make_lean_env(settings: Settings):  # -> ReplLeanEnv (import kept lazy: repl_env imports settings users)
    """The profile's supervised REPL env (Lean or the stand-in), through the launcher."""
    from burnqed_assets.lean.repl_env import ReplLeanEnv

    return ReplLeanEnv.from_settings(settings)


def make_replay_env(settings: Settings) -> ReplayLeanEnv:
    """The stand-in's recorded table in this process (a test helper; the graph uses the stand-in)."""
    src = replay_sources(settings)
    return build_replay_env(traced=src["traced"], sstrace=src["sstrace"], transcripts_dir=src["transcripts"][0],
                            benchmark_goals=src["benchmark_goals"], statements=src["statements"])


_TABLES: dict[str, ReplayLeanEnv] = {}


def answerable_filter(settings: Settings) -> Callable[[str], bool] | None:
    """Stand-in only: which benchmark theorems its recorded table can say anything about (a
    recorded root with recorded tactics). Evaluating others would only measure "not recorded"
    answers, so a demo evaluation is restricted to these and says so. None for Lean."""
    if settings.lean.backend != "standin":
        return None
    key = repr(sorted((k, [str(p) for p in v]) for k, v in replay_sources(settings).items()))
    if key not in _TABLES:
        _TABLES[key] = make_replay_env(settings)
    return _TABLES[key].can_answer

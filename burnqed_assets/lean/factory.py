"""`make_lean_env(settings)`: the profile's Lean backend (replay in demo, supervised REPL in full)."""

from __future__ import annotations

from pathlib import Path

from burnqed_assets.lean.env import LeanEnv
from burnqed_assets.lean.replay import ReplayLeanEnv, build_replay_env
from burnqed_assets.paths import DEMO_MINIF2F_SEARCH_TRACES
from burnqed_assets.settings import Settings

# Real InternLM miniF2F-test search traces: evaluation material, used ONLY as the Lean stand-in
# of the replay backend (never as training data).
MINIF2F_SEARCH_TRACES = DEMO_MINIF2F_SEARCH_TRACES


def replay_sources(settings: Settings) -> dict[str, list[Path]]:
    """The recorded files the replay table is built from (missing ones are simply absent)."""
    traced_dir = settings.inputs.goedel_recorded_traces.path
    if traced_dir.is_dir():
        traced = sorted(set(traced_dir.glob("*_traces.jsonl")) | set(traced_dir.glob("*dead_ends*.jsonl")))
        statements = sorted(traced_dir.glob("*statements*.jsonl"))
    else:
        traced, statements = ([traced_dir] if traced_dir.exists() else []), []
    bench = settings.inputs.minif2f_v1.path
    return {
        "traced": traced,
        "sstrace": [MINIF2F_SEARCH_TRACES] if MINIF2F_SEARCH_TRACES.exists() else [],
        "transcripts": [settings.inputs.lean_repl_transcripts.path],
        "benchmark_goals": [bench] if bench.exists() else [],
        "statements": statements,
    }


def make_replay_env(settings: Settings) -> ReplayLeanEnv:
    src = replay_sources(settings)
    return build_replay_env(traced=src["traced"], sstrace=src["sstrace"], transcripts_dir=src["transcripts"][0],
                            benchmark_goals=src["benchmark_goals"], statements=src["statements"])


def make_lean_env(settings: Settings) -> LeanEnv:
    """Replay backend for `lean.backend == "replay"`, supervised Lean REPL for `"repl"`."""
    backend = settings.lean.backend
    if backend == "replay":
        return make_replay_env(settings)
    if backend == "repl":
        from burnqed_assets.lean.repl_env import ReplLeanEnv  # lean-interact setup only when needed

        return ReplLeanEnv.from_settings(settings)
    raise ValueError(f"unknown settings.lean.backend {backend!r}; choose 'replay' or 'repl'")

"""Helpers for the Lean-layer tests: fake REPL command lines and fixture paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FAKE_REPL = HERE / "fake_repl.py"
_SHARED = REPO.parent / "shared" / "fixtures" / "lean-repl"
# Tests may read ../shared; the repo's data/demo/lean_repl holds the same transcripts.
TRANSCRIPTS = _SHARED if _SHARED.is_dir() else REPO / "data" / "demo" / "lean_repl"
SHARED_FIXTURES = Path(os.environ.get("BURNQED_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))
# Real samples shipped in the repository (their licences allow it: data/demo/README.md).
DEMO_SAMPLES = REPO / "data" / "demo" / "raw_samples"
# Not shipped: the licence of the Kimina-Prover-Preview proofs is unclear.
HOW_TO_GET = {
    "real_kimina_minif2f_test_proofs.jsonl":
        "not shipped (licence unclear): build it from MoonshotAI/Kimina-Prover-Preview @8dec4f5 "
        "(minif2f_test_solved/, see data/demo/raw_samples/README-real-samples.md) and put it in "
        "$BURNQED_SHARED_FIXTURES",
}


def real_sample(name: str) -> Path:
    """The in-repo copy of a real-sample fixture, else the workspace's shared one."""
    shipped = DEMO_SAMPLES / name
    return shipped if shipped.exists() else SHARED_FIXTURES / name


def missing_sample_reason(name: str) -> str:
    return (f"{name} is absent from {DEMO_SAMPLES} and {SHARED_FIXTURES}: "
            f"{HOW_TO_GET.get(name, 'restore it with `git checkout data/demo/raw_samples`')}")


def fake_argv(*args: str) -> list[str]:
    return [sys.executable, str(FAKE_REPL), *args]

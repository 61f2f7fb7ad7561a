"""Helpers for the Lean-layer tests: fake REPL command lines and fixture paths."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FAKE_REPL = HERE / "fake_repl.py"
_SHARED = REPO.parent / "shared" / "fixtures" / "lean-repl"
# Tests may read ../shared; the repo's data/demo/lean_repl holds the same transcripts.
TRANSCRIPTS = _SHARED if _SHARED.is_dir() else REPO / "data" / "demo" / "lean_repl"
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def fake_argv(*args: str) -> list[str]:
    return [sys.executable, str(FAKE_REPL), *args]

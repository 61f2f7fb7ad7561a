"""The `LeanEnv` interface used by search, evaluation, tracing and verification.

Backends: `repl` (Lean 4.27 through lean-interact, supervised) and `replay` (recorded
transitions for the demo profile; never presented as Lean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

TacticStatus = Literal["open", "proved", "error"]


@dataclass(frozen=True)
class ProofState:
    """A proof state: the backend's handle plus the pretty-printed goals."""

    handle: Any  # backend-specific (REPL proofState id, replay state key)
    goals: tuple[str, ...]

    @property
    def pp(self) -> str:
        """LeanDojo-style pretty print: goals separated by a blank line."""
        return "\n\n".join(self.goals)


@dataclass(frozen=True)
class TacticResult:
    status: TacticStatus  # open: new state with goals; proved: no goals left; error: tactic failed
    state: ProofState | None = None
    error: str | None = None
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    severity: str  # error | warning | info
    text: str
    line: int | None = None
    column: int | None = None


@dataclass
class CheckResult:
    """Lean's verdict on a whole file."""

    ok: bool  # no error message, no sorry
    messages: list[Message] = field(default_factory=list)
    sorries: int = 0
    axioms: dict[str, list[str]] = field(default_factory=dict)  # theorem -> axioms used
    error: str | None = None  # backend failure (timeout, crash), not a Lean message


@runtime_checkable
class LeanEnv(Protocol):
    """What every consumer of Lean needs."""

    name: str

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        """Elaborate `header` + `statement` (ending in `:= by`) and return the root state."""

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        """Apply one tactic to a state."""

    def check_file(self, code: str) -> CheckResult:
        """Compile a whole file and report messages, sorries and axioms of its theorems."""

    def stats(self) -> dict[str, int | float]:
        """Counters for asset metadata (calls, restarts, timeouts, crashes...)."""

    def close(self) -> None:
        """Release the backend (kill processes)."""

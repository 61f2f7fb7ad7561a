"""`ReplLeanEnv`: the Lean REPL protocol through `ReplProcess`, in both profiles.

Full: lean-interact (`LeanREPLConfig` + `LocalProject`) builds the REPL for the project's
toolchain and gives the command line (`lake env <repl>` in the project). Demo: the same class
talks to the REPL stand-in program (`repl_standin`). Both run through the launcher (sandbox).
Header environments (`import Mathlib ...`) are elaborated once per process generation and
reused with `env`; after any restart they are rebuilt, and proof states of the old process
are reported as lost instead of being sent to a process that never saw them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from burnqed_assets.lean.env import CheckResult, Message, ProofState, TacticResult
from burnqed_assets.lean.factory import LeanSetupError  # noqa: F401 - re-exported
from burnqed_assets.lean.launcher import LeanLauncher
from burnqed_assets.lean.repl_client import ReplCrashError, ReplError, ReplProcess, ReplTimeoutError
from burnqed_assets.lean.verify import parse_axioms, static_scan, theorem_names
from burnqed_assets.settings import Settings

log = logging.getLogger(__name__)

_IMPORT_BLOCK = re.compile(r"\A(?:\s*(?:import\s+[^\n]+|--[^\n]*)\n)*")


class TheoremOpenError(RuntimeError):
    """Lean rejected a theorem statement (its messages are in the text)."""


def messages_from_response(resp: dict[str, Any]) -> list[Message]:
    out = []
    for m in resp.get("messages", []) or []:
        pos = m.get("pos") or {}
        out.append(Message(str(m.get("severity", "error")), str(m.get("data", "")), pos.get("line"), pos.get("column")))
    return out


def check_result_from_response(resp: dict[str, Any]) -> CheckResult:
    """A command response → CheckResult: ok only without error messages and without sorry."""
    if "message" in resp and "env" not in resp:  # REPL-level error (unknown env, ...)
        return CheckResult(ok=False, messages=[Message("error", str(resp["message"]))])
    messages = messages_from_response(resp)
    sorries = len(resp.get("sorries", []) or [])
    uses_sorry = any("declaration uses 'sorry'" in m.text or "declaration uses `sorry`" in m.text for m in messages)
    has_error = any(m.severity == "error" for m in messages)
    axioms = parse_axioms(m.text for m in messages if m.severity == "info")
    return CheckResult(ok=not has_error and sorries == 0 and not uses_sorry, messages=messages,
                       sorries=sorries, axioms=axioms)


def tactic_result_from_response(resp: dict[str, Any], generation: int = 0) -> TacticResult:
    """A tactic-mode response → TacticResult. Only proofStatus "Completed" with no goals is a proof."""
    if "message" in resp and "proofState" not in resp:
        return TacticResult("error", error=str(resp["message"]))
    messages = messages_from_response(resp)
    texts = tuple(m.text for m in messages)
    status = str(resp.get("proofStatus", ""))
    goals = tuple(resp.get("goals") or ())
    if resp.get("sorries") or "sorry" in status.lower():
        return TacticResult("error", error=f"tactic introduces sorry ({status or 'sorries reported'})", messages=texts)
    if status.startswith("Error") or any(m.severity == "error" for m in messages):
        err = status or next(m.text for m in messages if m.severity == "error")
        return TacticResult("error", error=err, messages=texts)
    if not goals:
        if status == "Completed" or (not status and "proofState" in resp):
            # Older REPLs have no proofStatus: no goals and no error is the only signal then.
            return TacticResult("proved", state=ProofState((generation, resp.get("proofState")), ()), messages=texts)
        return TacticResult("error", error=f"no goals left but proof status is {status!r}", messages=texts)
    return TacticResult("open", state=ProofState((generation, resp.get("proofState")), goals), messages=texts)


def launcher_from_settings(settings: Settings) -> LeanLauncher:
    """The one launcher of every Lean process of this profile (sandbox + rlimits)."""
    lean = settings.lean
    return LeanLauncher(sandbox=lean.sandbox, memory_cap_mb=lean.memory_cap_mb,
                        elan_home=str(lean.elan_home) if lean.elan_home else None)


def split_imports(code: str) -> tuple[str, str]:
    """(import block, rest): imports are only legal at the start of a file."""
    m = _IMPORT_BLOCK.match(code)
    head = m.group(0) if m else ""
    return head, code[len(head):]


class TheoremTimeoutError(ReplTimeoutError):
    """The theorem's own time budget ran out (its clock starts once its header env is ready)."""

    kind = "theorem timeout"


class ReplLeanEnv:
    """Lean through a supervised REPL process. `name = "repl"`; `verified_by` is "lean", or
    "stand-in" when the process at the end of the pipe is the REPL stand-in."""

    name = "repl"

    def __init__(self, process: ReplProcess, theorem_timeout_s: float | None = None, verified_by: str = "lean"):
        self.process = process
        self.theorem_timeout_s = theorem_timeout_s
        self.verified_by = verified_by
        self._header_env: dict[str, tuple[int, int]] = {}  # import block -> (generation, env id)
        self._deadline: float | None = None
        self._prepared = False  # between_theorems + prepare_header ran for the next theorem
        self._last_generation = -1  # process generation that answered the last request
        self.counters: dict[str, int] = {"theorems_opened": 0, "open_failures": 0, "tactic_errors": 0,
                                         "backend_failures": 0, "stale_states": 0, "files_checked": 0,
                                         "header_imports": 0, "header_reuses": 0, "theorem_timeouts": 0}

    @classmethod
    def from_argv(cls, argv: Sequence[str], settings: Settings, cwd: str | Path | None = None,
                  verified_by: str = "lean", launcher: LeanLauncher | None = None) -> ReplLeanEnv:
        lean = settings.lean
        proc = ReplProcess(argv, cwd=cwd, timeout_s=lean.command_timeout_s, memory_cap_mb=lean.memory_cap_mb,
                           restart_every=lean.restart_every, launcher=launcher,
                           recycle_rss_mb=lean.recycle_threshold_mb)
        return cls(proc, theorem_timeout_s=lean.theorem_timeout_s, verified_by=verified_by)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplLeanEnv:
        """The profile's REPL (Lean via lean-interact, or the stand-in) through the launcher."""
        from burnqed_assets.lean.factory import repl_command

        cmd = repl_command(settings)
        return cls.from_argv(cmd.argv, settings, cwd=cmd.cwd, verified_by=cmd.verified_by,
                             launcher=launcher_from_settings(settings))

    # ---- theorem lifecycle ------------------------------------------------------------------
    def between_theorems(self) -> bool:
        """Recycle the REPL if its measured memory (or command count) says so. Never call it
        inside a theorem: proof states die with the process."""
        self._deadline = None
        return self.process.recycle_if_due()

    def new_theorem(self) -> None:
        """Mark a theorem boundary: the next `prepare_header`/`open_theorem` may recycle."""
        self._prepared = False
        self._deadline = None

    def prepare_header(self, header: str) -> int | None:
        """Before a theorem's clock starts: recycle if due (between theorems), then elaborate
        the header's imports (once per process generation); returns the REPL env id."""
        if not self._prepared:
            self.between_theorems()
        imports, _ = split_imports(header)
        env_id = self._env_for(imports, count=True)
        self._prepared = True
        return env_id

    def start_clock(self, timeout_s: float | None = None) -> None:
        """Start this theorem's time budget (call once its header env is ready)."""
        budget = timeout_s if timeout_s is not None else self.theorem_timeout_s
        self._deadline = time.monotonic() + budget if budget else None

    def _send(self, request: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        timeout = timeout_s if timeout_s is not None else self.process.timeout_s
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self.counters["theorem_timeouts"] += 1
                raise TheoremTimeoutError("the theorem's time budget is spent", request)
            if remaining < timeout:
                try:
                    resp = self.process.send(request, timeout_s=remaining)
                    self._last_generation = self.process.generation
                    return resp
                except ReplTimeoutError as exc:
                    self.counters["theorem_timeouts"] += 1
                    raise TheoremTimeoutError(f"the theorem's time budget ran out ({exc})", request) from exc
        resp = self.process.send(request, timeout_s=timeout)
        self._last_generation = self.process.generation
        return resp

    # ---- helpers -----------------------------------------------------------------------------
    def _env_for(self, imports: str, count: bool = False) -> int | None:
        """REPL env id holding `imports` in the current process generation (None: no imports).
        `count`: this is a theorem's start (imports vs reuses are counted per theorem)."""
        if not imports.strip():
            return None
        cached = self._header_env.get(imports)
        self.process.start()
        if cached is not None and cached[0] == self.process.generation and self.process.is_alive():
            self.counters["header_reuses"] += int(count)
            return cached[1]
        # The header is not on any theorem's clock: it gets the theorem timeout of its own.
        resp = self.process.send({"cmd": imports.strip()}, timeout_s=self.theorem_timeout_s)
        self.counters["header_imports"] += 1
        result = check_result_from_response(resp)
        if not result.ok or "env" not in resp:
            raise TheoremOpenError("header failed to elaborate: " + "; ".join(m.text for m in result.messages[:3]))
        self._header_env[imports] = (self.process.generation, int(resp["env"]))
        return int(resp["env"])

    def _command(self, code: str, timeout_s: float | None = None, **options: Any) -> dict[str, Any]:
        imports, rest = split_imports(code)
        env_id = self._env_for(imports)
        request: dict[str, Any] = {"cmd": rest, **options}
        if env_id is not None:
            request["env"] = env_id
        return self._send(request, timeout_s=timeout_s)

    # ---- LeanEnv -----------------------------------------------------------------------------
    def open_theorem(self, statement: str, header: str = "", name: str | None = None) -> ProofState:
        """Elaborate `header + statement sorry`; the sorry's proof state is the root state."""
        if not self._prepared and self._deadline is None:
            self.between_theorems()  # a new theorem nobody prepared: recycle here if due
        self._prepared = False
        stmt = statement.rstrip()
        if not stmt.endswith("by"):
            raise TheoremOpenError(f"statement must end with `:= by`: {stmt[-60:]!r}")
        try:
            head = header if not header or header.endswith("\n") else header + "\n"  # "import Mathlib" + stmt
            resp = self._command(head + stmt + " sorry", timeout_s=self.theorem_timeout_s)
        except ReplError:
            self.counters["open_failures"] += 1
            raise
        result = check_result_from_response(resp)
        errors = [m.text for m in result.messages if m.severity == "error"]
        sorries = resp.get("sorries") or []
        if errors or len(sorries) != 1 or "proofState" not in sorries[0]:
            self.counters["open_failures"] += 1
            raise TheoremOpenError(f"Lean rejected the statement of {name or '?'}: "
                                   + ("; ".join(errors[:3]) or f"{len(sorries)} sorries"))
        self.counters["theorems_opened"] += 1
        s = sorries[0]
        return ProofState((self.process.generation, int(s["proofState"])), (str(s.get("goal", "")),))

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        banned = static_scan(tactic)
        if banned:
            self.counters["tactic_errors"] += 1
            return TacticResult("error", error=f"banned tactic: {banned[0].reason}")
        generation, ps = state.handle
        if generation != self.process.generation or not self.process.is_alive():
            self.counters["stale_states"] += 1
            return TacticResult("error", error="proof state lost: the REPL was restarted after a failure")
        try:
            resp = self._send({"tactic": tactic, "proofState": ps})
        except ReplError as exc:
            self.counters["backend_failures"] += 1
            return TacticResult("error", error=str(exc))
        result = tactic_result_from_response(resp, self.process.generation)
        if result.status == "error":
            self.counters["tactic_errors"] += 1
        return result

    def check_file(self, code: str) -> CheckResult:
        """Compile the whole file, then `#print axioms` of each of its theorems, in one command.
        Never recycles the REPL: a search verifies mid-theorem and keeps its proof states."""
        self.counters["files_checked"] += 1
        names = theorem_names(code)
        probe = "".join(f"\n\n#print axioms {n}" for n in names)
        try:
            resp = self._command(code.rstrip() + probe + "\n", timeout_s=self.theorem_timeout_s)
        except (ReplError, TheoremOpenError) as exc:
            self.counters["backend_failures"] += 1
            return CheckResult(ok=False, error=str(exc))
        return check_result_from_response(resp)

    def all_tactics(self, code: str) -> dict[str, Any]:
        """The REPL's tactic-level trace of a file (`allTactics`): the raw response."""
        return self._command(code, timeout_s=self.theorem_timeout_s, allTactics=True)

    def tactic_on(self, proof_state: int, tactic: str) -> dict[str, Any]:
        """Run a tactic on a proof state id of the current process (raw response). If the REPL
        died since that proof state was made, raise (the caller retries the theorem) instead of
        letting a fresh process answer "Unknown proof state"."""
        request = {"tactic": tactic, "proofState": proof_state}
        if not self.process.is_alive() or self.process.generation != self._last_generation:
            raise ReplCrashError("the REPL died mid-theorem: its proof states are gone", request)
        return self._send(request)

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {f"repl_{k}": v for k, v in self.process.stats().items()}
        out.update(self.counters)
        return out

    def close(self) -> None:
        self.process.close()

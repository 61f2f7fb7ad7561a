"""`ReplLeanEnv`: Lean 4 through the REPL, supervised by `ReplProcess` (full profile).

lean-interact (`LeanREPLConfig` + `LocalProject`) builds the REPL for the project's toolchain
and gives the command line (`lake env <repl>` in the project); `ReplProcess` runs it.
Header environments (`import Mathlib ...`) are elaborated once per process generation and
reused with `env`; after any restart they are rebuilt, and proof states of the old process
are reported as lost instead of being sent to a process that never saw them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from burnqed_assets.lean.env import CheckResult, Message, ProofState, TacticResult
from burnqed_assets.lean.repl_client import ReplError, ReplProcess
from burnqed_assets.lean.verify import parse_axioms, static_scan, theorem_names
from burnqed_assets.settings import Settings

log = logging.getLogger(__name__)

_IMPORT_BLOCK = re.compile(r"\A(?:\s*(?:import\s+[^\n]+|--[^\n]*)\n)*")


class LeanSetupError(RuntimeError):
    """The Lean toolchain / project / REPL could not be prepared."""


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


def split_imports(code: str) -> tuple[str, str]:
    """(import block, rest): imports are only legal at the start of a file."""
    m = _IMPORT_BLOCK.match(code)
    head = m.group(0) if m else ""
    return head, code[len(head):]


class ReplLeanEnv:
    """Lean through a supervised REPL process. `name = "repl"`, `verified_by = "lean"`."""

    name = "repl"
    verified_by = "lean"

    def __init__(self, process: ReplProcess, theorem_timeout_s: float | None = None):
        self.process = process
        self.theorem_timeout_s = theorem_timeout_s
        self._header_env: dict[str, tuple[int, int]] = {}  # import block -> (generation, env id)
        self.counters: dict[str, int] = {"theorems_opened": 0, "open_failures": 0, "tactic_errors": 0,
                                         "backend_failures": 0, "stale_states": 0, "files_checked": 0}

    @classmethod
    def from_argv(cls, argv: Sequence[str], settings: Settings, cwd: str | Path | None = None) -> ReplLeanEnv:
        lean = settings.lean
        proc = ReplProcess(argv, cwd=cwd, timeout_s=lean.command_timeout_s, memory_cap_mb=lean.memory_cap_mb,
                           restart_every=lean.restart_every)
        return cls(proc, theorem_timeout_s=lean.theorem_timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplLeanEnv:
        """Prepare the REPL with lean-interact for `settings.lean.project_dir` and supervise it."""
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
        repl_bin = Path(config.cache_repl_dir) / ".lake" / "build" / "bin" / "repl"
        argv = [str(config.lake_path), "env", str(repl_bin)]
        return cls.from_argv(argv, settings, cwd=config.working_dir)

    # ---- helpers -----------------------------------------------------------------------------
    def _env_for(self, imports: str) -> int | None:
        """REPL env id holding `imports` in the current process generation (None: no imports)."""
        if not imports.strip():
            return None
        cached = self._header_env.get(imports)
        self.process.start()
        if cached is not None and cached[0] == self.process.generation and self.process.is_alive():
            return cached[1]
        resp = self.process.send({"cmd": imports.strip()}, timeout_s=self.theorem_timeout_s)
        result = check_result_from_response(resp)
        if not result.ok or "env" not in resp:
            raise TheoremOpenError("header failed to elaborate: " + "; ".join(m.text for m in result.messages[:3]))
        self._header_env[imports] = (self.process.generation, int(resp["env"]))
        return int(resp["env"])

    def _command(self, code: str, timeout_s: float | None = None) -> dict[str, Any]:
        imports, rest = split_imports(code)
        env_id = self._env_for(imports)
        request: dict[str, Any] = {"cmd": rest}
        if env_id is not None:
            request["env"] = env_id
        return self.process.send(request, timeout_s=timeout_s)

    # ---- LeanEnv -----------------------------------------------------------------------------
    def open_theorem(self, statement: str, header: str = "", name: str | None = None) -> ProofState:
        """Elaborate `header + statement sorry`; the sorry's proof state is the root state."""
        self.process.recycle_if_due()  # between theorems only
        stmt = statement.rstrip()
        if not stmt.endswith("by"):
            raise TheoremOpenError(f"statement must end with `:= by`: {stmt[-60:]!r}")
        try:
            resp = self._command(header + stmt + " sorry", timeout_s=self.theorem_timeout_s)
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
            resp = self.process.send({"tactic": tactic, "proofState": ps})
        except ReplError as exc:
            self.counters["backend_failures"] += 1
            return TacticResult("error", error=str(exc))
        result = tactic_result_from_response(resp, self.process.generation)
        if result.status == "error":
            self.counters["tactic_errors"] += 1
        return result

    def check_file(self, code: str) -> CheckResult:
        """Compile the whole file, then `#print axioms` of each of its theorems, in one command."""
        self.process.recycle_if_due()
        self.counters["files_checked"] += 1
        names = theorem_names(code)
        probe = "".join(f"\n\n#print axioms {n}" for n in names)
        try:
            resp = self._command(code.rstrip() + probe + "\n", timeout_s=self.theorem_timeout_s)
        except (ReplError, TheoremOpenError) as exc:
            self.counters["backend_failures"] += 1
            return CheckResult(ok=False, error=str(exc))
        return check_result_from_response(resp)

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {f"repl_{k}": v for k, v in self.process.stats().items()}
        out.update(self.counters)
        return out

    def close(self) -> None:
        self.process.close()

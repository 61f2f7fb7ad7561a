"""`ReplayLeanEnv`: a REPLAY of recorded Lean transitions for the demo profile. It is not Lean.

The table maps (proof state, tactic) → the result Lean recorded for it, built from
- traced pairs `{theorem, state, tactic, state_after, depth, source}` (the recorded demo traces
  and hand-written dead ends: a row with `error` records a failing tactic; `state_after = null`
  records a tactic whose result is unknown);
- real InternLM miniF2F search traces `{state_before, tactic, state_after, _context.full_name}`;
- Lean REPL transcripts (`*.in` / `*.expected.out`): tactic-mode steps on recorded proof states;
- root goals of miniF2F v1 (`goal` field), so every benchmark theorem can be opened.

Keys are whitespace-normalised (every whitespace run → one space), so a state printed with
other line breaks or indentation still matches. A tactic that is not in the table gives an
error result that says so. `check_file` replays the proof's top-level tactics from the
recorded root state: success means "verified by replay", reported with `verified_by="replay"`;
axioms cannot be printed by a replay and are reported as not checked.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import LineReport, iter_jsonl
from burnqed_assets.lean.env import CheckResult, Message, ProofState, TacticResult
from burnqed_assets.lean.proof_text import NO_GOALS, normalise_ws, parse_proof_file, split_goals
from burnqed_assets.lean.verify import static_scan

log = logging.getLogger(__name__)

NOT_IN_TABLE = "replay: tactic not in the replay table for this state (no Lean available to run it)"
PROVED = "__proved__"


class UnknownTheoremError(LookupError):
    """The replay table has no root state for this theorem."""


@dataclass(frozen=True)
class Outcome:
    kind: str  # "proved" | "open" | "error" | "unknown"
    state_after: str = ""  # pretty-printed goals for "open"
    error: str = ""
    source: str = ""


def _key(text: str) -> str:
    return normalise_ws(text)


def _bare(name: str) -> str:
    return name.split("::", 1)[1] if "::" in name else name


def _outcome_from_after(state_after: Any, error: Any, source: str) -> Outcome:
    if error:
        return Outcome("error", error=str(error), source=source)
    if state_after is None:
        return Outcome("unknown", error="replay: this tactic was recorded but its result was not "
                       "(no Lean run produced the next state)", source=source)
    text = str(state_after).strip()
    if not text or text == NO_GOALS:
        return Outcome("proved", source=source)
    return Outcome("open", state_after=text, source=source)


def _tactic_outcome_from_repl(resp: dict[str, Any]) -> Outcome:
    """Map one tactic-mode REPL response to an outcome; only `Completed` is a proof."""
    if "message" in resp and "proofState" not in resp:
        return Outcome("error", error=str(resp["message"]), source="repl_transcript")
    status = str(resp.get("proofStatus", ""))
    if resp.get("sorries") or "sorry" in status:
        return Outcome("error", error=f"tactic leaves a sorry ({status or 'sorries reported'})",
                       source="repl_transcript")
    errors = [m for m in resp.get("messages", []) or [] if m.get("severity") == "error"]
    if status.startswith("Error") or errors:
        return Outcome("error", error=status or str(errors[0].get("data")), source="repl_transcript")
    goals = resp.get("goals") or []
    if not goals:
        if status == "Completed":
            return Outcome("proved", source="repl_transcript")
        return Outcome("error", error=f"no goals but proof status {status!r}", source="repl_transcript")
    return Outcome("open", state_after="\n\n".join(goals), source="repl_transcript")


def read_transcript_blocks(path: Path) -> list[dict[str, Any]]:
    """JSON objects of a REPL transcript file: blocks separated by blank lines.

    Like the REPL itself, the lines of a block are joined without their line breaks (a raw
    line break inside a JSON string is dropped, which is what `invalid_line_break` shows).
    """
    text = path.read_text(encoding="utf-8")
    blocks = [b for b in re.split(r"\n[ \t]*\n", text) if b.strip()]
    out = []
    for i, block in enumerate(blocks, start=1):
        try:
            out.append(json.loads("".join(block.splitlines())))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: block {i}: malformed JSON ({exc.msg})") from exc
    return out


class ReplayLeanEnv:
    """Replays recorded transitions; never runs Lean. `name` and `verified_by` say so."""

    name = "replay"
    verified_by = "replay"

    def __init__(self) -> None:
        self._table: dict[tuple[str, str], Outcome] = {}
        self._roots: dict[str, str] = {}  # theorem name (bare and prefixed) -> root state
        self._roots_by_statement: dict[str, str] = {}
        self._states_with_moves: set[str] = set()  # state keys with at least one recorded tactic
        self.report = LineReport()
        self._counters: dict[str, int] = {
            "calls": 0, "tactic_calls": 0, "hits": 0, "misses": 0, "open_theorem_calls": 0,
            "unknown_theorems": 0, "check_file_calls": 0, "check_file_ok": 0, "conflicts": 0,
            "transitions": 0, "roots": 0,
        }

    # ---- building the table -------------------------------------------------------------
    def add_transition(self, state: str, tactic: str, outcome: Outcome) -> None:
        key = (_key(state), _key(tactic))
        old = self._table.get(key)
        if old is not None:
            if old != outcome and old.kind != outcome.kind:
                self._counters["conflicts"] += 1
            if old.kind != "unknown":  # first known result wins
                return
        self._table[key] = outcome
        self._states_with_moves.add(key[0])
        self._counters["transitions"] = len(self._table)

    def add_root(self, name: str, state: str, statement: str | None = None, override: bool = False) -> None:
        for n in {name, _bare(name)}:
            if override or n not in self._roots:
                self._roots[n] = state
        if statement:
            self._roots_by_statement.setdefault(_statement_key(statement), state)
        self._counters["roots"] = len(self._roots)

    def load_traced_pairs(self, path: Path) -> int:
        """Rows `{theorem, state, tactic, state_after, depth}` (+ optional `error`)."""
        n = 0
        for _, rec in iter_jsonl(path, self.report, validate=_validate_pair):
            self.add_transition(rec["state"], rec["tactic"],
                                _outcome_from_after(rec.get("state_after"), rec.get("error"), str(path.name)))
            if int(rec.get("depth", -1)) == 0 and rec.get("theorem"):
                self.add_root(str(rec["theorem"]), rec["state"], rec.get("formal_statement"))
            n += 1
        return n

    def load_sstrace_pairs(self, path: Path) -> int:
        """Real search traces `{state_before, tactic, state_after, step_index, _context}`."""
        n = 0
        for _, rec in iter_jsonl(path, self.report, validate=_validate_sstrace):
            self.add_transition(rec["state_before"], rec["tactic"],
                                _outcome_from_after(rec.get("state_after"), None, str(path.name)))
            ctx = rec.get("_context") or {}
            if int(rec.get("step_index", -1)) == 0 and ctx.get("full_name"):
                # A search trace root is what the table is keyed on: it beats a benchmark goal.
                self.add_root(str(ctx["full_name"]), rec["state_before"], ctx.get("statement"), override=True)
            n += 1
        return n

    def load_transcript(self, in_path: Path, out_path: Path) -> int:
        """Tactic-mode steps of one REPL transcript (requests and responses in order)."""
        requests, responses = read_transcript_blocks(in_path), read_transcript_blocks(out_path)
        goals_of: dict[int, str] = {}
        n = 0
        for req, resp in zip(requests, responses):
            if "cmd" in req:
                for s in resp.get("sorries", []) or []:
                    if "proofState" in s and "goal" in s:
                        goals_of[int(s["proofState"])] = s["goal"]
                m = re.match(r"\s*(?:theorem|lemma)\s+(\S+)", req["cmd"])
                sorries = resp.get("sorries") or []
                if m and len(sorries) == 1 and "goal" in sorries[0]:
                    self.add_root(m.group(1), sorries[0]["goal"])
            elif "tactic" in req and "proofState" in req:
                before = goals_of.get(int(req["proofState"]))
                if "proofState" in resp and resp.get("goals") is not None:
                    goals_of[int(resp["proofState"])] = "\n\n".join(resp["goals"]) or NO_GOALS
                if before is None or before == NO_GOALS:
                    continue
                self.add_transition(before, req["tactic"], _tactic_outcome_from_repl(resp))
                n += 1
        return n

    def load_statements(self, path: Path) -> int:
        """Rows `{name or theorem, formal_statement}`: open a theorem by its statement text too."""
        n = 0
        for _, rec in iter_jsonl(path, self.report):
            name = rec.get("theorem") or rec.get("name")
            stmt = rec.get("formal_statement")
            root = self._roots.get(str(name)) if name else None
            if root is not None and stmt:
                self._roots_by_statement.setdefault(_statement_key(str(stmt)), root)
                n += 1
        return n

    def load_benchmark_goals(self, path: Path) -> int:
        """Root goals of miniF2F v1 records (`name`, `goal`, `formal_statement`)."""
        n = 0
        for _, rec in iter_jsonl(path, self.report):
            if rec.get("name") and rec.get("goal"):
                self.add_root(str(rec["name"]), str(rec["goal"]), rec.get("formal_statement"))
                n += 1
        return n

    # ---- LeanEnv ----------------------------------------------------------------------------
    def open_theorem(self, statement: str, header: str = "", name: str | None = None) -> ProofState:
        self._counters["calls"] += 1
        self._counters["open_theorem_calls"] += 1
        candidates = [name, _bare(name)] if name else []
        m = re.search(r"(?:theorem|lemma)\s+([^\s:({\[⦃]+)", statement or "")
        if m:
            candidates += [m.group(1), _bare(m.group(1))]
        for cand in candidates:
            if cand and cand in self._roots:
                return _state(self._roots[cand])
        by_stmt = self._roots_by_statement.get(_statement_key(statement or ""))
        if by_stmt is not None:
            return _state(by_stmt)
        self._counters["unknown_theorems"] += 1
        raise UnknownTheoremError(
            f"replay: no recorded root state for theorem {name or (m.group(1) if m else statement[:80])!r} "
            "(the replay backend only knows recorded theorems)")

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        self._counters["calls"] += 1
        self._counters["tactic_calls"] += 1
        banned = static_scan(tactic)
        if banned:
            return TacticResult("error", error=f"banned tactic: {banned[0].reason}")
        state_text = state.pp if state.goals else str(state.handle)
        outcome = self._table.get((_key(state_text), _key(tactic)))
        if outcome is None:
            self._counters["misses"] += 1
            return TacticResult("error", error=NOT_IN_TABLE)
        self._counters["hits"] += 1
        if outcome.kind == "proved":
            return TacticResult("proved", state=ProofState(PROVED, ()))
        if outcome.kind == "open":
            return TacticResult("open", state=_state(outcome.state_after))
        return TacticResult("error", error=outcome.error)

    def check_file(self, code: str) -> CheckResult:
        """Replay the file's top-level tactics from the recorded root state of its theorem."""
        self._counters["calls"] += 1
        self._counters["check_file_calls"] += 1
        banned = static_scan(code)
        if banned:
            return CheckResult(ok=False, messages=[Message("error", f"static scan: {v}", v.line) for v in banned])
        parsed = parse_proof_file(code)
        if parsed is None or parsed.name is None:
            return CheckResult(ok=False, messages=[Message("error", "replay: no theorem found in the file")])
        try:
            state = self.open_theorem(parsed.statement, parsed.header, name=parsed.name)
        except UnknownTheoremError as exc:
            return CheckResult(ok=False, messages=[Message("error", str(exc))])
        if not parsed.tactics:
            return CheckResult(ok=False, messages=[Message("error", "replay: empty proof")])
        for i, tactic in enumerate(parsed.tactics, start=1):
            res = self.run_tactic(state, tactic)
            if res.status == "error":
                return CheckResult(ok=False, messages=[Message("error", f"replay: tactic {i} ({tactic[:60]!r}): {res.error}")])
            if res.status == "proved":
                if i != len(parsed.tactics):
                    return CheckResult(ok=False, messages=[Message("error", f"replay: no goals left after tactic {i} "
                                                                             "but the proof goes on")])
                self._counters["check_file_ok"] += 1
                return CheckResult(ok=True, messages=[Message(
                    "info", f"verified by replay of {i} recorded transitions; axioms not checked (no Lean)")])
            assert res.state is not None
            state = res.state
        return CheckResult(ok=False, messages=[Message("error", "replay: unsolved goals after the last tactic\n" + state.pp)])

    def known_theorems(self) -> list[str]:
        return sorted(self._roots)

    def can_answer(self, name: str) -> bool:
        """True when the theorem's root state is recorded with at least one recorded tactic from it.

        The replay cannot say anything about other theorems (every tactic is "not in the table"),
        so a demo evaluation restricted to these measures the plumbing, not a benchmark rate."""
        root = self._roots.get(name) or self._roots.get(_bare(name))
        return root is not None and _key(root) in self._states_with_moves

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = dict(self._counters)
        out["bad_lines"] = self.report.bad_count
        return out

    def close(self) -> None:
        return None


def _state(text: str) -> ProofState:
    return ProofState(handle=_key(text), goals=split_goals(text))


def _statement_key(statement: str) -> str:
    s = normalise_ws(statement)
    for suffix in (":= by sorry", ":= sorry", ":= by"):
        if s.endswith(suffix):
            s = s[: -len(suffix)].rstrip()
    return s


def _validate_pair(rec: dict[str, Any]) -> str | None:
    for k in ("state", "tactic"):
        if not isinstance(rec.get(k), str) or not rec[k].strip():
            return f"missing or empty {k!r}"
    return None


def _validate_sstrace(rec: dict[str, Any]) -> str | None:
    for k in ("state_before", "tactic"):
        if not isinstance(rec.get(k), str) or not rec[k].strip():
            return f"missing or empty {k!r}"
    return None


def build_replay_env(traced: Iterable[Path] = (), sstrace: Iterable[Path] = (), transcripts_dir: Path | None = None,
                     benchmark_goals: Iterable[Path] = (), statements: Iterable[Path] = ()) -> ReplayLeanEnv:
    """A replay env from the given recorded sources (benchmark roots first, traces override)."""
    env = ReplayLeanEnv()
    for p in benchmark_goals:
        env.load_benchmark_goals(Path(p))
    if transcripts_dir is not None and Path(transcripts_dir).is_dir():
        for inp in sorted(Path(transcripts_dir).glob("*.in")):
            out = inp.with_suffix(".expected.out")
            if out.exists():
                env.load_transcript(inp, out)
    for p in traced:
        env.load_traced_pairs(Path(p))
    for p in sstrace:
        env.load_sstrace_pairs(Path(p))
    for p in statements:
        env.load_statements(Path(p))
    if env.report.bad_count:
        log.warning("replay table: %d bad input line(s), e.g. %s", env.report.bad_count, env.report.bad[0])
    return env

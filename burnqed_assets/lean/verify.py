"""The one proof verifier: static scan for cheats + Lean's verdict + the axiom check.

A proof counts only when
1. the static scan finds no banned construct (reasons below; comments and strings are
   blanked first, so `sorry` inside `/- ... -/` is not a cheat),
2. the backend accepts the whole file: no error message, no sorry (neither in the
   `sorries` list nor as a "declaration uses `sorry`" warning),
3. the theorem's axioms (`#print axioms <name>`, run after the file) are within
   `settings.lean.allowed_axioms` = {propext, Classical.choice, Quot.sound}.

Migration, the tracing filter, search success and evaluation all call `verify_proof`.
The replay backend cannot print axioms: its verdict says "verified by replay" and the
axiom step is reported as not run, never as passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from burnqed_assets.lean.env import CheckResult, LeanEnv

DEFAULT_ALLOWED_AXIOMS = ("propext", "Classical.choice", "Quot.sound")

# Imports a competition proof may use (everything else could smuggle in meta code).
ALLOWED_IMPORT_PREFIXES = ("Mathlib", "Aesop", "Batteries", "Std", "Init", "Qq", "ProofWidgets", "Plausible")

# `set_option`s that only tune resources, printing or linting; any other option is rejected
# because some (debug.skipKernelTC, debug.byAsSorry, ...) switch checking off.
ALLOWED_SET_OPTION_PREFIXES = (
    "maxHeartbeats", "maxRecDepth", "synthInstance.", "linter.", "pp.", "trace.", "profiler",
    "autoImplicit", "relaxedAutoImplicit", "tactic.hygienic", "tactic.simp.trace", "simprocs",
    "push_neg.use_distrib", "diagnostics", "exponentiation.threshold", "Elab.async",
)

_ID = r"[\w'.!?₀-₉ᵢ-ᵪ]"  # identifier characters (enough to stop `foo_sorry`, `h.sorry'` matches)


def _token(word: str) -> str:
    return rf"(?<![\w'.]){re.escape(word)}(?!{_ID})"


@dataclass(frozen=True)
class Rule:
    code: str
    pattern: re.Pattern[str]
    reason: str


def _rule(code: str, pattern: str, reason: str, flags: int = re.MULTILINE) -> Rule:
    return Rule(code, re.compile(pattern, flags), reason)


RULES: tuple[Rule, ...] = (
    _rule("sorry", _token("sorry"), "`sorry` leaves a goal unproved"),
    _rule("admit", _token("admit"), "`admit` is `sorry` under another name"),
    _rule("sorryAx", r"sorryAx", "`sorryAx` is the axiom behind `sorry`"),
    _rule("native_decide", _token("native_decide"),
          "`native_decide` trusts the compiler (axiom Lean.ofReduceBool), not the kernel"),
    _rule("decide_native", r"(?<![\w'.])decide\s*\+\s*native", "`decide +native` trusts the compiler"),
    _rule("ofReduceBool", r"ofReduce(Bool|Nat)", "`Lean.ofReduceBool` / `ofReduceNat` trust the compiler"),
    _rule("axiom", r"(?:^|[\s\]])(?:private\s+|protected\s+|noncomputable\s+|unsafe\s+)*axiom\s+\S",
          "a new `axiom` can assert anything"),
    _rule("implemented_by", _token("implemented_by"), "`implemented_by` swaps code the kernel never checks"),
    _rule("extern", r"(?:@\[|attribute\s*\[)[^\]]*(?<![\w'.])extern(?![\w'])",
          "`@[extern]` binds a declaration to unchecked native code"),
    _rule("skipKernelTC", r"skipKernelTC", "`debug.skipKernelTC` turns the kernel check off"),
    _rule("byAsSorry", r"byAsSorry", "`debug.byAsSorry` turns every `by` block into `sorry`"),
    _rule("eval", r"(?<![\w'.])#eval!?(?![\w'])", "`#eval` runs arbitrary code (IO) while the file is checked"),
    _rule("run_cmd", r"(?<![\w'.])run_(cmd|tac|elab|meta)(?![\w'])",
          "`run_cmd`/`run_tac`/`run_elab`/`run_meta` run arbitrary meta code (IO, environment edits)"),
    _rule("exit", r"(?<![\w'.])#exit(?![\w'])", "`#exit` stops checking: everything after it is never verified"),
    _rule("search_tactic", r"(?<![\w'.])(apply\?|exact\?|rw\?|aesop\?)(?![\w'])",
          "a proof-search tactic (`apply?`/`exact?`/`rw?`) left in the proof is not a finished proof"),
    _rule("macro", r"(?:^|[\s\]])(?:scoped\s+|local\s+)?(macro|macro_rules|elab|elab_rules|syntax)(?![\w'])",
          "`macro`/`elab`/`syntax` can redefine tactics (e.g. make `nlinarith` mean `sorry`)"),
    _rule("notation", r"(?:^|[\s\]])(?:scoped\s+|local\s+)?(notation|infix|infixl|infixr|prefix|postfix)(?![\w'])",
          "notation changes can alter what the statement means"),
    _rule("unsafe", _token("unsafe"), "`unsafe` code bypasses the kernel"),
    _rule("csimp", r"@\[[^\]]*csimp", "`@[csimp]` replaces code the compiler runs"),
    _rule("debug_option", r"set_option\s+debug\.", "`debug.*` options can disable checks"),
)

_SET_OPTION = re.compile(r"(?<![\w'.])set_option\s+([\w.]+)")
_IMPORT = re.compile(r"^\s*import\s+(.+)$", re.MULTILINE)
_DECL = re.compile(
    r"(?:^|\n)[ \t]*(?:@\[[^\]]*\][ \t\n]*)?(?:private\s+|protected\s+|nonrec\s+)*(theorem|lemma|example)\s*([^\s:({\[⦃]*)"
)
AXIOMS_LINE = re.compile(r"'?([^'\s]+)'? depends on axioms: \[([^\]]*)\]")
NO_AXIOMS_LINE = re.compile(r"'?([^'\s]+)'? does not depend on any axioms")


@dataclass(frozen=True)
class Violation:
    code: str
    reason: str
    line: int
    snippet: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.code}: {self.reason} ({self.snippet!r})"


@dataclass
class VerifyResult:
    """The verdict and every reason behind it (reasons are empty iff `ok`)."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    check: CheckResult | None = None
    axioms: list[str] | None = None  # None when the backend could not report them
    verified_by: str = "static"  # static (scan only) | lean | replay

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "ok"


def strip_comments_and_strings(code: str) -> str:
    """Blank out comments (`--`, nested `/- -/`) and string literals, keeping newlines and offsets."""
    out: list[str] = []
    i, n, depth = 0, len(code), 0
    while i < n:
        c = code[i]
        two = code[i:i + 2]
        if depth > 0:
            if two == "/-":
                depth += 1
                out.append("  ")
                i += 2
            elif two == "-/":
                depth -= 1
                out.append("  ")
                i += 2
            else:
                out.append("\n" if c == "\n" else " ")
                i += 1
        elif two == "/-":
            depth = 1
            out.append("  ")
            i += 2
        elif two == "--":
            j = code.find("\n", i)
            j = n if j == -1 else j
            out.append(" " * (j - i))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('"' + "".join("\n" if ch == "\n" else " " for ch in code[i + 1:j - 1]) + '"')
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def static_scan(code: str) -> list[Violation]:
    """Every banned construct in `code` (comments and strings ignored), with its line."""
    clean = strip_comments_and_strings(code)
    lines = code.splitlines()
    found: list[Violation] = []

    def add(code_: str, reason: str, pos: int) -> None:
        line = clean.count("\n", 0, pos) + 1
        snippet = lines[line - 1].strip()[:120] if line - 1 < len(lines) else ""
        found.append(Violation(code_, reason, line, snippet))

    for rule in RULES:
        for m in rule.pattern.finditer(clean):
            lead = len(m.group(0)) - len(m.group(0).lstrip(" \t\n]"))  # a rule may start at the separator
            add(rule.code, rule.reason, m.start() + lead)
    for m in _SET_OPTION.finditer(clean):
        option = m.group(1)
        if not any(option == p.rstrip(".") or option.startswith(p) for p in ALLOWED_SET_OPTION_PREFIXES):
            add("set_option", f"`set_option {option}` is not in the allowed list (it may disable checking)",
                m.start())
    for m in _IMPORT.finditer(clean):
        for module in m.group(1).split():
            if not module.startswith(ALLOWED_IMPORT_PREFIXES):
                add("import", f"`import {module}` is outside the allowed libraries", m.start())
    return found


def theorem_names(code: str) -> list[str]:
    """Names of the `theorem`/`lemma` declarations of a file, in order (`example` has none)."""
    clean = strip_comments_and_strings(code)
    return [m.group(2) for m in _DECL.finditer(clean) if m.group(1) != "example" and m.group(2)]


def parse_axioms(messages: Iterable[str]) -> dict[str, list[str]]:
    """Read `#print axioms` output lines into {theorem: [axioms]}."""
    result: dict[str, list[str]] = {}
    for text in messages:
        for m in AXIOMS_LINE.finditer(text):
            result[m.group(1)] = [a.strip() for a in m.group(2).replace("\n", " ").split(",") if a.strip()]
        for m in NO_AXIOMS_LINE.finditer(text):
            result[m.group(1)] = []
    return result


def _normalise(text: str) -> str:
    return " ".join(text.split())


def judge_check(check: CheckResult, theorem: str | None,
                allowed_axioms: Iterable[str] = DEFAULT_ALLOWED_AXIOMS,
                verified_by: str = "lean") -> VerifyResult:
    """Lean's verdict on a file (errors, sorries, axioms) turned into accept / reject with reasons."""
    reasons: list[str] = []
    if check.error:
        reasons.append(f"backend failure: {check.error}")
    errors = [m for m in check.messages if m.severity == "error"]
    for m in errors[:5]:
        where = f"line {m.line}: " if m.line is not None else ""
        reasons.append(f"Lean error: {where}{m.text.splitlines()[0] if m.text else ''}")
    if check.sorries:
        reasons.append(f"file contains {check.sorries} sorry")
    uses_sorry = any("declaration uses 'sorry'" in m.text or "declaration uses `sorry`" in m.text
                     for m in check.messages)
    if uses_sorry and not check.sorries:
        reasons.append("Lean reports a declaration using sorry")
    if not check.ok and not reasons:
        reasons.append("backend rejected the file")
    axioms: list[str] | None = None
    if verified_by == "lean":
        if theorem is None:
            reasons.append("no theorem name to check axioms of")
        elif theorem not in check.axioms:
            reasons.append(f"axioms of {theorem!r} were not reported (`#print axioms` missing)")
        else:
            axioms = list(check.axioms[theorem])
            extra = sorted(set(axioms) - set(allowed_axioms))
            if extra:
                reasons.append(f"uses axioms outside {sorted(allowed_axioms)}: {extra}")
    return VerifyResult(ok=not reasons, reasons=reasons, check=check, axioms=axioms, verified_by=verified_by)


def verify_proof(code: str, env: LeanEnv | None = None, theorem: str | None = None,
                 allowed_axioms: Iterable[str] = DEFAULT_ALLOWED_AXIOMS,
                 expected_statement: str | None = None) -> VerifyResult:
    """Verify a whole proof file: static scan, then the backend's verdict, then its axioms.

    `theorem` defaults to the last `theorem`/`lemma` of the file. With `expected_statement`
    the file must contain that statement (whitespace-normalised), so a proof of a different
    or weakened statement does not count. Without `env` only the static scan runs and the
    result says `verified_by="static"` (never a proof by itself: `ok` is False then).
    """
    violations = static_scan(code)
    reasons = [str(v) for v in violations]
    names = theorem_names(code)
    if theorem is None and names:
        theorem = names[-1]
    if theorem is not None and theorem not in names:
        reasons.append(f"theorem {theorem!r} is not declared in the file")
    if names and len(set(names)) != len(names):
        reasons.append("a theorem name is declared twice")
    if expected_statement is not None:
        stmt = _normalise(expected_statement)
        stmt = stmt[: -len(":= by")].rstrip() if stmt.endswith(":= by") else stmt
        if stmt not in _normalise(strip_comments_and_strings(code)):
            reasons.append("the file does not contain the expected statement")
    if env is None:
        reasons.append("no Lean backend given: static scan only")
        return VerifyResult(ok=False, reasons=reasons, violations=violations, verified_by="static")
    if violations:
        # Never send a cheat to Lean: `#eval` with IO would run on this machine.
        return VerifyResult(ok=False, reasons=reasons, violations=violations, verified_by="static")
    verified_by = getattr(env, "verified_by", "lean")
    check = env.check_file(code)
    judged = judge_check(check, theorem, allowed_axioms, verified_by=verified_by)
    reasons.extend(judged.reasons)
    return VerifyResult(ok=not reasons, reasons=reasons, violations=violations, check=check,
                        axioms=judged.axioms, verified_by=verified_by)

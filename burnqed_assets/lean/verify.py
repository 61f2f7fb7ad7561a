"""The one proof verifier: a Lean 4 lexer-based cheat scan, Lean's verdict, the axiom check.

A proof counts only when
1. the static scan finds no banned construct. The scan runs on the text as Lean's lexer sees
   it (`lex`): nested `/- -/` comments (doc comments included), `--` comments, strings with
   escapes, raw strings `r"…"`/`r#"…"#`, character literals (`'"'`), `«…»` identifiers. So a
   `sorry` inside a comment is no cheat, and nothing hides behind a quote or comment opener
   that Lean reads differently;
2. the checked theorem is the benchmark's theorem *by name*, declared once at top level, and
   its statement equals the benchmark statement after comment/whitespace normalisation
   (`normalise_statement`), not merely contains it;
3. the backend accepts the whole file plus the commands the verifier appends
   (`statement_check_commands`): `example : ∀ <binders>, <type> := @<name>` (Lean itself
   checks that the theorem proves the benchmark statement, in the same environment) and
   `#print axioms` of the theorem and of every helper lemma;
4. those axioms are within `settings.lean.allowed_axioms` = {propext, Classical.choice,
   Quot.sound} (helper lemmas' axioms count too).

Migration, the tracing filter, search success and evaluation all call `verify_proof`.
A backend that is not Lean (the replay stand-in, recorded verdicts) cannot print axioms or
type-check the appended `example`: its verdict says so and the axiom step is reported as
not run, never as passed.
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
# because some (debug.skipKernelTC, debug.byAsSorry, Elab.async, ...) switch checking or its
# reporting off.
ALLOWED_SET_OPTION_PREFIXES = (
    "maxHeartbeats", "maxRecDepth", "synthInstance.", "linter.", "pp.", "trace.", "profiler",
    "autoImplicit", "relaxedAutoImplicit", "tactic.hygienic", "tactic.simp.trace", "simprocs",
    "push_neg.use_distrib", "diagnostics", "exponentiation.threshold",
)

# `#` commands that only print; every other one (`#eval`, `#exit`, `#guard`, ...) is rejected.
ALLOWED_HASH_COMMANDS = frozenset({"#check", "#print", "#reduce", "#synth", "#align", "#align_import", "#noalign"})

# Attributes that only tag a lemma for existing automation; everything else can register
# elaborators, tactics, extensions, native code or instances and is rejected.
ALLOWED_ATTRIBUTES = frozenset({
    "simp", "norm_cast", "push_cast", "ext", "reducible", "irreducible", "semireducible", "inline",
    "noinline", "specialize", "elab_as_elim", "nolint", "mono", "gcongr", "symm", "refl", "trans",
    "congr", "simps", "field_simps", "deprecated", "measurability", "continuity", "fun_prop", "bound",
    "nontriviality", "pp_nodot", "local", "scoped", "match_pattern", "zify_simps", "qify_simps",
})

# Classes whose instances decide what arithmetic, order and logic in a statement mean: a new
# instance of one of them can make the benchmark text say something else.
CORE_CLASSES = frozenset({
    "Add", "Sub", "Mul", "Div", "Mod", "Neg", "Inv", "Pow", "HAdd", "HSub", "HMul", "HDiv", "HMod", "HPow",
    "SMul", "HSMul", "NPow", "ZPow", "OfNat", "OfScientific", "NatCast", "IntCast", "RatCast", "Zero", "One",
    "LT", "LE", "Max", "Min", "Ord", "Dvd", "Membership", "HasSubset", "HasSSubset", "Union", "Inter",
    "SDiff", "HasCompl", "Abs", "Decidable", "DecidableEq", "DecidablePred", "DecidableRel", "BEq",
    "Coe", "CoeTC", "CoeOut", "CoeSort", "CoeFun", "CoeHead", "CoeTail", "CoeDep", "CoeT", "Nonempty",
    "Inhabited", "Setoid", "HasEquiv", "Insert", "Singleton", "EmptyCollection", "Fact", "Preorder",
    "PartialOrder", "LinearOrder", "Lattice", "Sup", "Inf", "Max", "Bot", "Top", "Norm", "Dist",
})
_CORE_CLASS_SUFFIXES = ("Ring", "Semiring", "Field", "Group", "Monoid", "Order", "Lattice", "Algebra", "Module")

# Identifier letters as Lean 4 defines them (Lean.isLetterLike / isSubScriptAlnum): ASCII
# letters only, plus Greek (not λ, Π, Σ), Coptic, letter-like symbols (ℝ, ℕ), math alphanumerics.


def _is_letter_like(c: str) -> bool:
    v = ord(c)
    return ((0x3B1 <= v <= 0x3C9 and v != 0x3BB) or (0x391 <= v <= 0x3A9 and v not in (0x3A0, 0x3A3))
            or 0x3CA <= v <= 0x3FB or 0x1F00 <= v <= 0x1FFE or 0x2100 <= v <= 0x214F
            or 0x1D49C <= v <= 0x1D59F)


def _is_id_first(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c == "_" or _is_letter_like(c)


def _is_id_rest(c: str) -> bool:
    if _is_id_first(c) or ("0" <= c <= "9") or c in "'!?":
        return True
    v = ord(c)
    return 0x2080 <= v <= 0x2089 or 0x2090 <= v <= 0x209C or 0x1D62 <= v <= 0x1D6A


_ID = r"[\w'.!?₀-₉ᵢ-ᵪ]"  # identifier characters (enough to stop `foo_sorry`, `h.sorry'` matches)


# ---- the lexer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LexIssue:
    """Text Lean's lexer would stop at, or that the scan cannot see through."""

    code: str
    reason: str
    pos: int


def _raw_string_end(code: str, i: int) -> tuple[int, int] | None:
    """At `r` of `r#*"`: (hash count, offset just after the opening quote), else None."""
    j = i + 1
    while j < len(code) and code[j] == "#":
        j += 1
    if j < len(code) and code[j] == '"':
        return j - i - 1, j + 1
    return None


def _char_literal_end(code: str, i: int) -> int | None:
    """At `'`: offset just after a well-formed character literal (Lean's charLitFnAux), else None."""
    n = len(code)
    j = i + 1
    if j >= n or code[j] == "'":
        return None
    if code[j] == "\\":
        j += 1
        if j >= n:
            return None
        if code[j] == "x":
            j += 3
        elif code[j] == "u":
            j += 5
        else:
            j += 1
    else:
        j += 1
    return j + 1 if j < n and code[j] == "'" else None


def lex(code: str) -> tuple[str, list[LexIssue]]:
    """Blank comments and literal contents the way Lean 4's lexer reads them.

    Returns the cleaned text (same length and line breaks as `code`: every offset still points
    at the same place) and the issues found. Follows Lean's `whitespace`, `finishCommentBlock`,
    `strLitFnAux`, `charLitFnAux`, `rawStrLitFnAux` and `identFn`:
    - `--` runs to the end of the line; `/-` opens a nested block comment whose body starts
      after the third character (so `/--` and `/-!` doc comments too, and `/-/- -/` closes at the
      first `-/`), strings are not special inside comments;
    - `"…"` with backslash escapes; `r"…"`, `r#"…"#` raw strings without escapes;
    - `'x'`, `'\\n'`, `'"'` character literals, only where a token starts (`h'` is an identifier);
    - `«…»` identifier parts are kept (the scan sees `«sorryAx»`), but their quotes and comment
      openers are not read as such.
    A `{` inside a string is reported: in `s!"…"`, `m!"…"` or `throwError "…"` it opens
    interpolated code, which a plain string reading would hide.
    """
    out = list(code)
    issues: list[LexIssue] = []
    n = len(code)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < n:
        c = code[i]
        if c == "-" and code.startswith("--", i):
            j = code.find("\n", i)
            j = n if j == -1 else j
            blank(i, j)
            i = j
        elif c == "/" and code.startswith("/-", i):
            j, depth = i + 3, 1  # Lean skips the character after `/-` unexamined
            while j < n and depth:
                if code.startswith("-/", j):
                    depth -= 1
                    j += 2
                elif code.startswith("/-", j):
                    depth += 1
                    j += 2
                else:
                    j += 1
            if depth:
                issues.append(LexIssue("unterminated", "unterminated `/-` comment", i))
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            if j >= n:
                issues.append(LexIssue("unterminated", "unterminated string literal", i))
            elif "{" in code[i + 1:j]:
                issues.append(LexIssue("interpolation", "`{` inside a string literal: in `s!`/`m!`/`throwError` "
                                                        "strings it runs code the scan would not see", i))
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            end = _char_literal_end(code, i)
            if end is None:
                i += 1  # not a literal: leave it visible (Lean reports a parse error)
            else:
                blank(i + 1, end - 1)
                i = end
        elif c == "r" and (raw := _raw_string_end(code, i)) is not None:
            hashes, body = raw
            close = '"' + "#" * hashes
            j = code.find(close, body)
            if j == -1:
                issues.append(LexIssue("unterminated", "unterminated raw string literal", i))
                j = n
            blank(i, j + len(close))
            out[i] = '"'
            if j + len(close) - 1 < n:
                out[j + len(close) - 1] = '"'
            i = j + len(close)
        elif _is_id_first(c) or c == "«":
            j = i
            while j < n:
                if code[j] == "«":
                    k = code.find("»", j + 1)
                    if k == -1:
                        issues.append(LexIssue("unterminated", "unterminated `«` identifier", j))
                        j += 1
                        break
                    j = k + 1
                elif _is_id_first(code[j]):
                    j += 1
                    while j < n and _is_id_rest(code[j]):
                        j += 1
                else:
                    break
                if j + 1 < n and code[j] == "." and (_is_id_first(code[j + 1]) or code[j + 1] == "«"):
                    j += 1
                    continue
                break
            i = max(j, i + 1)
        elif "0" <= c <= "9":
            while i < n and "0" <= code[i] <= "9":
                i += 1
        else:
            i += 1
    return "".join(out), issues


def strip_comments_and_strings(code: str) -> str:
    """Blank out comments and literal contents as Lean's lexer reads them (offsets kept)."""
    return lex(code)[0]


def _token(word: str) -> str:
    return rf"(?<![\w'.]){re.escape(word)}(?!{_ID})"


def _tokens(*words: str) -> str:
    return r"(?<![\w'.])(?:" + "|".join(re.escape(w) for w in words) + rf")(?!{_ID})"


@dataclass(frozen=True)
class Rule:
    code: str
    pattern: re.Pattern[str]
    reason: str


def _rule(code: str, pattern: str, reason: str, flags: int = re.MULTILINE) -> Rule:
    return Rule(code, re.compile(pattern, flags), reason)


RULES: tuple[Rule, ...] = (
    _rule("sorry", _token("sorry"), "`sorry` leaves a goal unproved"),
    _rule("admit", rf"(?<![\w']){re.escape('admit')}(?!{_ID})",
          "`admit` / `.admit` is `sorry` under another name"),
    _rule("stop", _token("stop"), "`stop` skips the rest of the proof with `sorry`"),
    _rule("sorryAx", r"sorryAx", "`sorryAx` is the axiom behind `sorry`"),
    _rule("elab_admit", r"admitGoal|mkSorry|mkLabeledSorry|reportUnsolvedGoals",
          "`Lean.Elab.admitGoal`-style calls close goals with `sorry`"),
    _rule("native_decide", _token("native_decide"),
          "`native_decide` trusts the compiler (axiom Lean.ofReduceBool), not the kernel"),
    _rule("decide_native", _token("native"), "`decide +native` / `native := true` trust the compiler"),
    _rule("ofReduceBool", r"[rR]educe(Bool|Nat)|trustCompiler",
          "`Lean.ofReduceBool` / `reduceBool` / `trustCompiler` trust the compiler"),
    _rule("axiom", _token("axiom"), "a new `axiom` can assert anything"),
    _rule("implemented_by", _token("implemented_by"), "`implemented_by` swaps code the kernel never checks"),
    _rule("extern", _token("extern"), "`@[extern]` binds a declaration to unchecked native code"),
    _rule("skipKernelTC", r"skipKernelTC", "`debug.skipKernelTC` turns the kernel check off"),
    _rule("byAsSorry", r"byAsSorry", "`debug.byAsSorry` turns every `by` block into `sorry`"),
    _rule("eval", r"(?<![\w'.])#eval!?(?![\w'])", "`#eval` runs arbitrary code (IO) while the file is checked"),
    _rule("run_cmd", r"(?<![\w'.])run_(cmd|tac|elab|meta)(?![\w'])",
          "`run_cmd`/`run_tac`/`run_elab`/`run_meta` run arbitrary meta code (IO, environment edits)"),
    _rule("exit", r"(?<![\w'.])#exit(?![\w'])", "`#exit` stops checking: everything after it is never verified"),
    _rule("initialize", _tokens("initialize", "builtin_initialize"),
          "`initialize` runs code when the file is loaded"),
    _rule("search_tactic", r"(?<![\w'.])(apply\?|exact\?|rw\?|aesop\?)(?![\w'])",
          "a proof-search tactic (`apply?`/`exact?`/`rw?`) left in the proof is not a finished proof"),
    _rule("macro", _tokens("macro", "macro_rules", "elab", "elab_rules", "syntax", "declare_syntax_cat",
                           "simproc", "dsimproc", "simproc_decl", "unif_hint", "binder_predicate",
                           "register_simp_attr", "declare_simp_like_tactic"),
          "`macro`/`elab`/`syntax`/`simproc` register code at elaboration time (e.g. make `nlinarith` mean `sorry`)"),
    _rule("notation", _tokens("notation", "notation3", "infix", "infixl", "infixr", "prefix", "postfix"),
          "notation changes can alter what the statement means"),
    _rule("unsafe", _token("unsafe"), "`unsafe` code bypasses the kernel"),
    _rule("csimp", _token("csimp"), "`@[csimp]` replaces code the compiler runs"),
    _rule("debug_option", r"set_option\s+debug\.", "`debug.*` options can disable checks"),
    _rule("include", _tokens("include", "omit"),
          "`include` adds section variables (even `h : False`) as hypotheses the statement does not show"),
    _rule("meta_code", r"(?<![\w'])(?:Lean\.(?:Elab|Meta|Parser|Compiler|IR|Kernel|Environment|addDecl)"
                       r"|IO\.|EIO|BaseIO|unsafeCast|unsafeIO|unsafeBaseIO|unsafeEIO|ptrAddrUnsafe)",
          "meta-level code (Lean.Elab/Lean.Meta, IO) has no place in a competition proof"),
)

_SET_OPTION = re.compile(r"(?<![\w'.])set_option\s+([\w.]+)")
_IMPORT = re.compile(r"^\s*import\s+(.+)$", re.MULTILINE)
_HASH_COMMAND = re.compile(r"(?<![\w'.#\"])#[A-Za-z_][\w]*")
_ATTR_OPEN = re.compile(r"@\[|(?<![\w'.])attribute\s*\[")
_INSTANCE = re.compile(_token("instance"))
_NAME = r"([^\s:({\[⦃]+)"
_THEOREM = re.compile(r"(?<![\w'.])(theorem|lemma)\s+" + _NAME)
_HELPER_DECL = re.compile(r"(?<![\w'.])(def|abbrev|opaque|structure|class|inductive|instance)\s+" + _NAME)
_SCOPE = re.compile(r"(?<![\w'.])(namespace|section|end)(?![\w'.!?])[ \t]*([^\s]*)")
_IDENT = re.compile(r"[A-Za-z_\u0370-\u03ff\u1f00-\u1fff\u2100-\u214f«][\w'!?«»\u0370-\u03ff\u2100-\u214f.₀-₉]*")
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
    verified_by: str = "static"  # static (scan only) | lean | replay | recorded
    codes: list[str] = field(default_factory=list)  # one rule code per reason

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "ok"


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _attribute_entries(clean: str, start: int) -> tuple[list[str], int]:
    """Attribute names inside the `[...]` opening at `start` (the `[`), and the end offset."""
    depth, j = 0, start
    while j < len(clean):
        if clean[j] in "[(":
            depth += 1
        elif clean[j] in "])":
            depth -= 1
            if depth == 0:
                break
        j += 1
    body = clean[start + 1:j]
    names: list[str] = []
    part_depth, cur = 0, []
    for ch in body + ",":
        if ch in "[(":
            part_depth += 1
        elif ch in "])":
            part_depth -= 1
        if ch == "," and part_depth == 0:
            entry = "".join(cur).strip()
            entry = re.sub(r"^(?:(?:local|scoped)\s+|-\s*)+", "", entry)
            m = re.match(r"[\w.!?]+", entry)
            if m:
                names.append(m.group(0))
            cur = []
        else:
            cur.append(ch)
    return names, j


_ATTRIBUTE_REASONS = {
    "instance": "`instance` attribute: a new instance can change what the statement's operators mean",
    "default_instance": "`default_instance` changes how numerals and operators elaborate",
    "extern": "`@[extern]` binds a declaration to unchecked native code",
    "implemented_by": "`implemented_by` swaps code the kernel never checks",
    "csimp": "`@[csimp]` replaces code the compiler runs",
    "init": "`@[init]` runs code when the file is loaded",
}


def _is_core_class(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].strip("«»")
    return last in CORE_CLASSES or last.endswith(_CORE_CLASS_SUFFIXES)


def static_scan(code: str) -> list[Violation]:
    """Every banned construct in `code` (as Lean's lexer reads it), with its line."""
    clean, issues = lex(code)
    lines = code.splitlines()
    found: list[Violation] = []

    def add(code_: str, reason: str, pos: int) -> None:
        line = _line_of(clean, pos)
        snippet = lines[line - 1].strip()[:120] if line - 1 < len(lines) else ""
        found.append(Violation(code_, reason, line, snippet))

    for issue in issues:
        add(issue.code, issue.reason, issue.pos)
    for rule in RULES:
        for m in rule.pattern.finditer(clean):
            add(rule.code, rule.reason, m.start())
    for m in _SET_OPTION.finditer(clean):
        option = m.group(1)
        if not any(option == p.rstrip(".") or option.startswith(p) for p in ALLOWED_SET_OPTION_PREFIXES):
            add("set_option", f"`set_option {option}` is not in the allowed list (it may disable checking "
                              "or its reporting)", m.start())
    for m in _IMPORT.finditer(clean):
        for module in m.group(1).split():
            if not module.startswith(ALLOWED_IMPORT_PREFIXES):
                add("import", f"`import {module}` is outside the allowed libraries", m.start())
    for m in _HASH_COMMAND.finditer(clean):
        if m.group(0) not in ALLOWED_HASH_COMMANDS and m.group(0) not in ("#eval", "#eval!", "#exit"):
            add("hash_command", f"`{m.group(0)}` is not a printing command (it may run code)", m.start())
    for m in _ATTR_OPEN.finditer(clean):
        names, _ = _attribute_entries(clean, m.end() - 1)
        for name in names:
            if name in ALLOWED_ATTRIBUTES:
                continue
            reason = _ATTRIBUTE_REASONS.get(
                name, f"attribute `{name}` is not in the allowed list (attributes can register "
                      "elaborators, tactics, extensions or code)")
            add("attribute", reason, m.start())
    for m in _INSTANCE.finditer(clean):
        header = clean[m.end():_statement_end(clean, m.end())]
        header = re.split(r"(?<![\w'.])where(?![\w'])", header)[0]
        shadowed = sorted({t for t in _IDENT.findall(header) if _is_core_class(t)})
        if shadowed:
            add("core_instance", f"an instance of {', '.join(shadowed)} can change what arithmetic, order "
                                 "or logic in the statement means", m.start())
    return sorted(found, key=lambda v: v.line)


# ---- declarations and statements -------------------------------------------------------------


@dataclass(frozen=True)
class Declaration:
    kind: str  # theorem | lemma
    name: str
    start: int  # offset of the keyword
    namespace: str  # enclosing `namespace` path ("" at top level)


def _scopes_at(clean: str) -> list[tuple[int, str]]:
    """(offset, namespace path) after each `namespace`/`section`/`end`, in order."""
    stack: list[tuple[str, str]] = []
    out: list[tuple[int, str]] = []
    for m in _SCOPE.finditer(clean):
        kind, arg = m.group(1), m.group(2)
        if kind in ("namespace", "section"):
            stack.append((kind, arg if kind == "namespace" else ""))
        elif stack:
            stack.pop()
        out.append((m.start(), ".".join(a for k, a in stack if k == "namespace" and a)))
    return out


def declarations(code: str) -> list[Declaration]:
    """The `theorem`/`lemma` declarations of a file, in order, with their namespace."""
    clean = strip_comments_and_strings(code)
    scopes = _scopes_at(clean)
    out = []
    for m in _THEOREM.finditer(clean):
        ns = ""
        for pos, path in scopes:
            if pos < m.start():
                ns = path
        out.append(Declaration(m.group(1), m.group(2), m.start(), ns))
    return out


def theorem_names(code: str) -> list[str]:
    """Names of the `theorem`/`lemma` declarations of a file, in order (`example` has none)."""
    return [d.name for d in declarations(code)]


def top_level_assign(clean: str, start: int, alternatives: bool = False) -> int | None:
    """Offset of the first `:=` outside brackets from `start` in comment/string-free text (with
    `alternatives`, a line opening a `|` match alternative ends the search too); None if absent."""
    depth = 0
    i = start
    while i < len(clean):
        c = clean[i]
        if c in "([{⦃⟨":
            depth += 1
        elif c in ")]}⦄⟩":
            depth -= 1
        elif depth == 0 and clean.startswith(":=", i):
            return i
        elif alternatives and depth == 0 and re.match(r"\n\s*\|", clean[i:i + 200]) is not None:
            return i
        i += 1
    return None


def _statement_end(clean: str, start: int) -> int:
    """Offset of the top-level `:=` (or `|` / `where`) ending the statement that starts at `start`."""
    end = top_level_assign(clean, start, alternatives=True)
    return len(clean) if end is None else end


_WORD = re.compile(r"[\w'!?«»₀-₉.]")


def normalise_statement(text: str) -> str:
    """A statement with comments removed, `lemma` read as `theorem`, the proof part (`:= …`)
    dropped, and whitespace kept only where it separates two word characters."""
    clean = strip_comments_and_strings(text)
    end = _statement_end(clean, 0)
    clean = clean[:end]
    tokens = clean.split()
    out = ""
    for tok in tokens:
        if out and _WORD.match(out[-1]) and _WORD.match(tok[0]):
            out += " "
        out += tok
    return re.sub(r"^lemma(?![\w'])", "theorem", out)


def statement_name(statement: str) -> str | None:
    m = _THEOREM.search(strip_comments_and_strings(statement))
    return m.group(2) if m else None


def _statement_text(code: str, decl: Declaration) -> str:
    clean = strip_comments_and_strings(code)
    return code[decl.start:_statement_end(clean, decl.start)]


def binders_and_type(statement: str) -> tuple[str, str] | None:
    """(`binders`, `type`) of `theorem name binders : type := …` (comments removed)."""
    clean = strip_comments_and_strings(statement)
    m = _THEOREM.search(clean)
    if m is None:
        return None
    end = _statement_end(clean, m.end())
    depth = 0
    for i in range(m.end(), end):
        c = clean[i]
        if c in "([{⦃⟨":
            depth += 1
        elif c in ")]}⦄⟩":
            depth -= 1
        elif c == ":" and depth == 0 and clean[i + 1:i + 2] != "=":
            return " ".join(clean[m.end():i].split()), " ".join(clean[i + 1:end].split())
    return None


def statement_check_commands(name: str, expected_statement: str | None, helpers: Iterable[str] = ()) -> str:
    """Commands appended to the file so that Lean itself checks the theorem.

    `example : ∀ <binders>, <type> := @<name>` type-checks only if `<name>` proves exactly the
    benchmark statement (elaborated in the same environment); `#print axioms` of the theorem
    and of every helper lemma lets the verdict count their axioms.
    """
    parts = []
    split = binders_and_type(expected_statement) if expected_statement else None
    if split is not None:
        binders, type_ = split
        prop = f"∀ {binders}, {type_}" if binders else type_
        parts.append(f"example : {prop} := @{name}")
    for n in dict.fromkeys([name, *helpers]):
        parts.append(f"#print axioms {n}")
    return "\n\n" + "\n\n".join(parts) + "\n"


def parse_axioms(messages: Iterable[str]) -> dict[str, list[str]]:
    """Read `#print axioms` output lines into {theorem: [axioms]}."""
    result: dict[str, list[str]] = {}
    for text in messages:
        for m in AXIOMS_LINE.finditer(text):
            result[m.group(1)] = [a.strip() for a in m.group(2).replace("\n", " ").split(",") if a.strip()]
        for m in NO_AXIOMS_LINE.finditer(text):
            result[m.group(1)] = []
    return result


def judge_check(check: CheckResult, theorem: str | None,
                allowed_axioms: Iterable[str] = DEFAULT_ALLOWED_AXIOMS,
                verified_by: str = "lean") -> VerifyResult:
    """Lean's verdict on a file (errors, sorries, axioms of the theorem and its helpers)."""
    reasons: list[str] = []
    codes: list[str] = []

    def reject(code: str, reason: str) -> None:
        codes.append(code)
        reasons.append(reason)

    if check.error:
        reject("backend", f"backend failure: {check.error}")
    errors = [m for m in check.messages if m.severity == "error"]
    for m in errors[:5]:
        where = f"line {m.line}: " if m.line is not None else ""
        reject("lean_error", f"Lean error: {where}{m.text.splitlines()[0] if m.text else ''}")
    if check.sorries:
        reject("sorry", f"file contains {check.sorries} sorry")
    uses_sorry = any("declaration uses 'sorry'" in m.text or "declaration uses `sorry`" in m.text
                     for m in check.messages)
    if uses_sorry and not check.sorries:
        reject("sorry", "Lean reports a declaration using sorry")
    if not check.ok and not reasons:
        reject("backend", "backend rejected the file")
    axioms: list[str] | None = None
    allowed = set(allowed_axioms)
    if verified_by == "lean":
        if theorem is None:
            reject("axioms_missing", "no theorem name to check axioms of")
        elif theorem not in check.axioms:
            reject("axioms_missing", f"axioms of {theorem!r} were not reported (`#print axioms` missing)")
        else:
            axioms = list(check.axioms[theorem])
        for name, used in sorted(check.axioms.items()):
            extra = sorted(set(used) - allowed)
            if extra:
                reject("axioms", f"{name!r} uses axioms outside {sorted(allowed)}: {extra}")
    return VerifyResult(ok=not reasons, reasons=reasons, check=check, axioms=axioms, verified_by=verified_by,
                        codes=codes)


def verify_proof(code: str, env: LeanEnv | None = None, theorem: str | None = None,
                 allowed_axioms: Iterable[str] = DEFAULT_ALLOWED_AXIOMS,
                 expected_statement: str | None = None) -> VerifyResult:
    """Verify a whole proof file: static scan, the theorem by name and statement, Lean's verdict
    on the file plus `statement_check_commands`, then the axioms.

    The theorem is `theorem`, else the one `expected_statement` declares, else the file's last
    `theorem`/`lemma`. With `expected_statement` the theorem's statement must equal it after
    normalisation (`normalise_statement`). Without `env` only the static part runs and the
    result says `verified_by="static"` (never a proof by itself: `ok` is False then).
    """
    violations = static_scan(code)
    clean = strip_comments_and_strings(code)
    lines = code.splitlines()

    def add(code_: str, reason: str, pos: int) -> None:
        line = _line_of(clean, pos)
        snippet = lines[line - 1].strip()[:120] if 0 <= line - 1 < len(lines) else ""
        violations.append(Violation(code_, reason, line, snippet))

    decls = declarations(code)
    names = [d.name for d in decls]
    if theorem is None and expected_statement is not None:
        theorem = statement_name(expected_statement)
    if theorem is None and names:
        theorem = names[-1]
    targets = [d for d in decls if d.name == theorem]
    if theorem is None:
        add("theorem_missing", "the file declares no theorem", 0)
    elif not targets:
        add("theorem_missing", f"theorem {theorem!r} is not declared in the file", 0)
    if len(set(names)) != len(names):
        add("duplicate_theorem", "a theorem name is declared twice", 0)
    target = targets[-1] if targets else None
    if target is not None and target.namespace:
        add("namespace", f"theorem {theorem!r} is declared inside `namespace {target.namespace}`, so it is "
                         f"{target.namespace}.{theorem}, not the benchmark's theorem", target.start)
    if target is not None and expected_statement is not None:
        if normalise_statement(_statement_text(code, target)) != normalise_statement(expected_statement):
            add("statement_mismatch", f"the statement of {theorem!r} is not the benchmark statement "
                                      "(compared after comment and whitespace normalisation)", target.start)
        used = {t.rsplit(".", 1)[-1] for t in _IDENT.findall(strip_comments_and_strings(expected_statement))}
        for m in _HELPER_DECL.finditer(clean):
            last = m.group(2).rsplit(".", 1)[-1]
            if last in used and m.group(2) != theorem:
                add("shadowing", f"helper `{m.group(1)} {m.group(2)}` shadows `{last}` used in the statement",
                    m.start())
    verified_by = getattr(env, "verified_by", "lean") if env is not None else "static"
    if target is not None and verified_by in ("replay", "stand-in") and names and names[-1] != theorem:
        # the replay stand-ins check one theorem per file, the last: a decoy after it would pass
        add("not_last", f"the {verified_by} backend checks a file's last theorem; {theorem!r} must come last",
            target.start)
    violations.sort(key=lambda v: v.line)
    reasons = [str(v) for v in violations]
    codes = [v.code for v in violations]
    if env is None:
        return VerifyResult(ok=False, reasons=reasons + ["no Lean backend given: static scan only"],
                            violations=violations, verified_by="static", codes=codes + ["no_backend"])
    if violations:
        # Never send a cheat to Lean: `#eval` with IO would run on this machine.
        return VerifyResult(ok=False, reasons=reasons, violations=violations, verified_by="static", codes=codes)
    assert theorem is not None
    probe = statement_check_commands(theorem, expected_statement, [n for n in names if n != theorem])
    check = env.check_file(code.rstrip() + "\n" + probe)
    judged = judge_check(check, theorem, allowed_axioms, verified_by=verified_by)
    return VerifyResult(ok=judged.ok, reasons=judged.reasons, violations=violations, check=check,
                        axioms=judged.axioms, verified_by=verified_by, codes=judged.codes)

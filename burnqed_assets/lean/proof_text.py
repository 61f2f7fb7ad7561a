"""Plain-text helpers for Lean proof files: normalisation, statement/body split, tactic split."""

from __future__ import annotations

import re
from dataclasses import dataclass

from burnqed_assets.lean.verify import strip_comments_and_strings, top_level_assign

NO_GOALS = "no goals"
# A line starting at column 0 with one of these ends the tactic block before it (a new command).
_COMMAND_AT_COL0 = re.compile(
    r"(?m)^(?:(?:theorem|lemma|example|def|abbrev|instance|structure|class|inductive|namespace|section|end|"
    r"open|set_option|variable|universe|noncomputable|private|protected|attribute)(?![\w'])|@\[|#[A-Za-z])")
_DECL = re.compile(r"(?m)^[ \t]*(?:@\[[^\]]*\][ \t]*)?(?:private\s+|protected\s+)*(theorem|lemma)\s+([^\s:({\[⦃]+)")


def normalise_ws(text: str) -> str:
    """Collapse every whitespace run to one space (keys of the replay table)."""
    return " ".join(text.split())


def split_goals(state: str) -> tuple[str, ...]:
    """LeanDojo / REPL pretty print: goals are separated by a blank line."""
    state = state.strip()
    if not state or state == NO_GOALS:
        return ()
    return tuple(g.strip() for g in re.split(r"\n\s*\n", state) if g.strip())


@dataclass(frozen=True)
class ProofFile:
    name: str | None
    statement: str  # from `theorem` up to and including `:= by`
    header: str  # everything before the theorem
    tactics: tuple[str, ...]  # top-level tactics of the `by` block


def _by_position(clean: str, start: int) -> int | None:
    """Offset just after the `:= by` that opens the proof of the declaration at `start`."""
    i = top_level_assign(clean, start)
    if i is None:
        return None
    m = re.match(r":=\s*by(?![\w'])", clean[i:])
    return i + m.end() if m else None


def split_tactics(body: str) -> tuple[str, ...]:
    """Top-level tactics of a `by` block (comments removed).

    A line indented deeper than the block's first line continues the previous tactic, and so
    does a line after one ending in `<;>`, `,`, `(` or `[`: the same grouping as LeanDojo's
    top-level tactics for the straight-line proofs the replay table holds.
    """
    clean = strip_comments_and_strings(body)
    lines = [ln.rstrip() for ln in clean.splitlines()]
    tactics: list[list[str]] = []
    base: int | None = None
    first = lines[0].strip() if lines else ""
    rest = lines[1:]
    if first:
        tactics.append([first])
    for ln in rest:
        if not ln.strip():
            continue
        indent = len(ln) - len(ln.lstrip())
        if base is None:
            base = indent
        prev = tactics[-1][-1] if tactics else ""
        continues = prev.rstrip().endswith(("<;>", ",", "(", "[", "by", "=>", "·"))
        continues = continues or ln.strip().startswith(("<;>", ")", "]", "|"))
        if tactics and (indent > base or continues):
            tactics[-1].append(ln.strip())
        else:
            tactics.append([ln.strip()])
    out: list[str] = []
    for group in tactics:
        text = "\n".join(group)
        # `tac1; tac2` at the top level is two tactics.
        out.extend(t.strip() for t in _split_semicolons(text) if t.strip())
    return tuple(out)


def _split_semicolons(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for i, c in enumerate(text):
        if c in "([{⟨":
            depth += 1
        elif c in ")]}⟩":
            depth -= 1
        if c == ";" and depth == 0 and text[i - 1:i + 2] != "<;>":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def parse_proof_file(code: str, name: str | None = None) -> ProofFile | None:
    """Find the theorem (`name`, else the last one) and split it into header, statement, tactics."""
    clean = strip_comments_and_strings(code)
    decls = list(_DECL.finditer(clean))
    if name is not None:
        decls = [d for d in decls if d.group(2) == name or d.group(2).endswith("." + name)]
    if not decls:
        return None
    decl = decls[-1]
    by_end = _by_position(clean, decl.end())
    if by_end is None:
        return ProofFile(decl.group(2), code[decl.start():].strip(), code[:decl.start()], ())
    return ProofFile(
        name=decl.group(2),
        statement=code[decl.start():by_end].strip(),
        header=code[:decl.start()],
        tactics=split_tactics(code[by_end:_block_end(clean, by_end)]),
    )


def _block_end(clean: str, start: int) -> int:
    """Where the `by` block starting at `start` ends: the next command at column 0, else the end."""
    m = _COMMAND_AT_COL0.search(clean, start)
    return m.start() if m else len(clean)

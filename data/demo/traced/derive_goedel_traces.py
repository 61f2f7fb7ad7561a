"""Derive traced pairs from the 100 real Goedel proofs in data/demo/goedel (no Lean run).

Usage: python data/demo/traced/derive_goedel_traces.py   (rewrites goedel_derived_traces.jsonl)

What is honest without Lean: the ROOT state of a proof, rebuilt from the theorem binders
(`(a b c : ℝ) (h : P) : goal` -> `a b c : ℝ\\nh : P\\n⊢ goal`), and the first top-level
tactic applied to it. A proof whose body is ONE top-level tactic (a `<;>` chain counts as one)
closes the goal, so its pair gets `state_after = "no goals"`. A longer proof gives only its
first tactic at the root, with `state_after = null` (the next state is unknown without Lean).
Proofs whose signature cannot be parsed are skipped and counted. Every row carries `_derived`.
The printed root state is approximate: Lean's pretty printer would also re-parenthesise and
re-space some terms; only `>=`/`<=`/`!=`, `^` spacing and whitespace are normalised here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "goedel" / "goedel_workbook_proofs.jsonl"
OUT = HERE / "goedel_derived_traces.jsonl"
DERIVED_NOTE = "root state reconstructed from the theorem signature; no Lean run"
OPEN, CLOSE = "([{⦃", ")]}⦄"


def strip_comments(text: str) -> str:
    """Remove nested `/- ... -/` blocks and `--` line comments."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith("/-", i):
            depth += 1
            i += 2
        elif depth and text.startswith("-/", i):
            depth -= 1
            i += 2
        elif depth:
            i += 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def normalise_term(term: str) -> str:
    term = " ".join(term.split())
    term = term.replace(">=", "≥").replace("<=", "≤").replace("!=", "≠")
    term = re.sub(r"\s*\^\s*", " ^ ", term)
    return term


def split_signature(sig: str) -> tuple[list[str], str] | None:
    """`(a b : ℝ) (h : P) : goal` -> (binder texts incl. brackets, goal) or None."""
    binders, i, n = [], 0, len(sig)
    while i < n:
        ch = sig[i]
        if ch.isspace():
            i += 1
            continue
        if ch in OPEN:
            depth, j = 0, i
            while j < n:
                if sig[j] in OPEN:
                    depth += 1
                elif sig[j] in CLOSE:
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth != 0:
                return None
            binders.append(sig[i : j + 1])
            i = j + 1
            continue
        if ch == ":":
            return binders, sig[i + 1 :].strip()
        return None  # an unbracketed binder or something we do not understand
    return None


def binder_hypotheses(binder: str) -> list[str] | None:
    inner = binder[1:-1].strip()
    depth, colon = 0, -1
    for k, ch in enumerate(inner):
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
        elif ch == ":" and depth == 0 and not inner.startswith(":=", k):
            colon = k
            break
    if colon < 0:
        if binder[0] == "[":  # anonymous instance binder
            return [f"inst✝ : {normalise_term(inner)}"]
        return None
    names, typ = inner[:colon].split(), normalise_term(inner[colon + 1 :])
    if not names or not typ:
        return None
    return [f"{' '.join(names)} : {typ}"]


def top_level_tactics(body: str) -> list[str]:
    """Split a tactic block into top-level tactics; `<;>` chains and deeper lines join."""
    lines = [ln.rstrip() for ln in strip_comments(body).splitlines() if ln.strip()]
    if not lines:
        return []
    base = len(lines[0]) - len(lines[0].lstrip())
    tactics: list[list[str]] = []
    for ln in lines:
        indent = len(ln) - len(ln.lstrip())
        stripped = ln.strip()
        continuation = bool(tactics) and (
            indent > base or stripped.startswith("<;>") or tactics[-1][-1].rstrip().endswith("<;>")
        )
        if continuation:
            tactics[-1].append(ln[base:] if indent >= base else stripped)
        else:
            tactics.append([stripped])
    return ["\n".join(t).strip() for t in tactics]


def derive(record: dict) -> tuple[list[dict], str | None]:
    name, proof = record["problem_id"], record["full_proof"]
    match = re.search(rf"theorem\s+{re.escape(name)}\b", proof)
    if not match:
        return [], "theorem name not found"
    rest = proof[match.end() :]
    by = re.search(r":=\s*by\b", rest)
    if not by:
        return [], "not a tactic proof (no `:= by`)"
    parsed = split_signature(strip_comments(rest[: by.start()]))
    if parsed is None:
        return [], "signature not parseable into bracketed binders"
    binders, goal = parsed
    hyps: list[str] = []
    for b in binders:
        h = binder_hypotheses(b)
        if h is None:
            return [], f"binder not understood: {b[:40]}"
        hyps.extend(h)
    if not goal:
        return [], "empty goal"
    state = "\n".join(hyps + [f"⊢ {normalise_term(goal)}"])
    tactics = top_level_tactics(rest[by.end() :])
    if not tactics:
        return [], "empty tactic body"
    if re.search(r"\b(sorry|admit)\b", "\n".join(tactics)):
        return [], "proof contains sorry/admit"
    single = len(tactics) == 1
    row = {
        "theorem": f"goedel::{name}",
        "state": state,
        "tactic": tactics[0],
        "state_after": "no goals" if single else None,
        "depth": 0,
        "source": "goedel_workbook",
        "_derived": DERIVED_NOTE + ("" if single else f"; first of {len(tactics)} top-level tactics, next state unknown"),
    }
    return [row], None


def main() -> int:
    rows, skipped = [], {}
    with open(SOURCE, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out, why = derive(json.loads(line))
                rows.extend(out)
                if why:
                    skipped[why] = skipped.get(why, 0) + 1
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    closed = sum(r["state_after"] == "no goals" for r in rows)
    print(f"wrote {len(rows)} pairs ({closed} single-tactic proofs) to {OUT}; skipped {sum(skipped.values())}: {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

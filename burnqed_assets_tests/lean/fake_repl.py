"""A fake Lean REPL process for contract and fault tests (no Lean needed).

Reads requests like the real REPL (blocks separated by a blank line, lines joined without
their breaks) and answers with a JSON object followed by a blank line.

Modes
  --transcript IN OUT   answer the i-th request with the i-th recorded response of OUT,
                        verbatim (pretty-printed, as Lean printed it); a request that differs
                        from the i-th request of IN gets {"message": "fake: unexpected request"}.
  --rules               a Lean 4.27 stand-in: errors on old syntax (`∑ x in s`, `div_le_div_iff`),
                        sorries for `sorry`, `#print axioms` answers, tactic steps.
Faults (1-based request number)
  --hang-on N  --crash-on N  --garbage-on N  --grow-on N  --spawn-child
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

# The REPL's framing (requests joined from non-blank lines, answers ended by a blank line) is
# the stand-in's, so the contract tests exercise that code too.
from burnqed_assets.lean.repl_standin import emit, read_requests

BLOCK_SPLIT = re.compile(r"\n[ \t]*\n")
# How late a FAKE_DELAY request is answered: far longer than the 0.3 s after which the tests
# interrupt the caller, so a timer thread delayed by a loaded machine still fires first.
FAKE_DELAY_S = 4.0


def read_blocks(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [b for b in BLOCK_SPLIT.split(fh.read()) if b.strip()]



class Rules:
    """Just enough of Lean 4.27 to drive the full-profile code paths in tests."""

    AXIOMS = "[propext, Classical.choice, Quot.sound]"

    def __init__(self) -> None:
        self.env = -1
        self.proof_state = -1

    def cmd(self, req: dict) -> dict:
        code = req["cmd"]
        self.env += 1
        messages, sorries = [], []

        def err(line: int, text: str) -> None:
            messages.append({"severity": "error", "pos": {"line": line, "column": 0},
                             "endPos": {"line": line, "column": 1}, "data": text})

        for i, line in enumerate(code.splitlines(), start=1):
            if re.search(r"[∑∏]\s*[^,∈]*?\s+in\s+", line):
                err(i, "unexpected token 'in'; expected ','")
            if re.search(r"(?<![\w.])div_le_div_iff(?![\w'])", line):
                err(i, "unknown identifier 'div_le_div_iff'")
            if "FAKE_ERROR" in line:
                err(i, "fake elaboration error")
            for _ in re.finditer(r"(?<![\w'.])sorry(?![\w'])", line):
                self.proof_state += 1
                m = re.search(r":\s*([^:]+?)\s*:=\s*by\s*sorry", code.replace("\n", " "))
                goal = "⊢ " + (m.group(1) if m else "fake goal")
                sorries.append({"proofState": self.proof_state, "pos": {"line": i, "column": 0},
                                "goal": goal, "endPos": {"line": i, "column": 5}})
        if sorries:
            messages.append({"severity": "warning", "pos": {"line": 1, "column": 0},
                             "endPos": {"line": 1, "column": 1}, "data": "declaration uses `sorry`"})
        if "FAKE_SLOW" in code:
            time.sleep(3600)
        if "FAKE_DELAY" in code:  # answers, but late (an interrupted caller must not get it)
            time.sleep(FAKE_DELAY_S)
        for m in re.finditer(r"#print axioms (\S+)", code):
            axioms = "[propext, sorryAx]" if "FAKE_AXIOM" in code else self.AXIOMS
            messages.append({"severity": "info", "pos": {"line": 1, "column": 0},
                             "endPos": {"line": 1, "column": 1},
                             "data": f"'{m.group(1)}' depends on axioms: {axioms}"})
        out: dict = {}
        if sorries:
            out["sorries"] = sorries
        if messages:
            out["messages"] = messages
        out["env"] = self.env
        return out

    def tactic(self, req: dict) -> dict:
        tac = req["tactic"]
        if req.get("proofState", 0) > self.proof_state:
            return {"message": f"Unknown proof state: {req['proofState']}"}
        if tac.startswith("hang"):
            time.sleep(3600)
        if tac.startswith("fail"):
            return {"message": "Lean error:\nfake tactic failure"}
        self.proof_state += 1
        if tac.startswith("open"):
            return {"proofStatus": "Incomplete: open goals remain", "proofState": self.proof_state,
                    "goals": ["x : Nat\n⊢ x = x"]}
        return {"proofStatus": "Completed", "proofState": self.proof_state, "goals": []}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcript", nargs=2, metavar=("IN", "OUT"))
    ap.add_argument("--rules", action="store_true")
    ap.add_argument("--hang-on", type=int, default=0)
    ap.add_argument("--crash-on", type=int, default=0)
    ap.add_argument("--garbage-on", type=int, default=0)
    ap.add_argument("--grow-on", type=int, default=0)
    ap.add_argument("--spawn-child", action="store_true")
    args = ap.parse_args()

    child = None
    if args.spawn_child:  # a grandchild like `lake` -> `lean`: must die with the group
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"child {child.pid}", file=sys.stderr, flush=True)
    expected_in = read_blocks(args.transcript[0]) if args.transcript else []
    expected_out = read_blocks(args.transcript[1]) if args.transcript else []
    rules = Rules()
    hog: list[bytes] = []
    for n, raw in enumerate(read_requests(sys.stdin), start=1):
        if n == args.hang_on:
            time.sleep(3600)
        if n == args.crash_on:
            print("fake: crashing (simulated segfault)", file=sys.stderr, flush=True)
            os._exit(139)
        if n == args.garbage_on:
            emit("uncaught exception: <garbage> {not json")
            continue
        if n == args.grow_on:
            while True:  # grow until the supervisor kills us
                hog.append(b"x" * (16 * 1024 * 1024))
                time.sleep(0.02)
        try:
            req = json.loads(raw)
        except json.JSONDecodeError as exc:
            emit(json.dumps({"message": f"Could not parse JSON:\n{exc.msg}"}))
            continue
        if args.transcript:
            i = n - 1
            if i < len(expected_in) and json.loads("".join(expected_in[i].splitlines())) != req:
                emit(json.dumps({"message": f"fake: unexpected request {raw[:200]}"}))
            elif i < len(expected_out):
                emit(expected_out[i])
            else:
                emit(json.dumps({"message": "fake: no recorded response"}))
        elif "cmd" in req:
            emit(json.dumps(rules.cmd(req), ensure_ascii=False))
        elif "tactic" in req:
            emit(json.dumps(rules.tactic(req), ensure_ascii=False))
        else:
            emit(json.dumps({"message": "fake: unknown request"}))
    if child is not None:
        child.wait()


if __name__ == "__main__":
    main()

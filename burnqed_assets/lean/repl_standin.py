"""The Lean REPL STAND-IN: a separate program that speaks the REPL's JSON protocol. It is not Lean.

    python -m burnqed_assets.lean.repl_standin --traced F.jsonl ... --transcripts DIR [faults]

The demo profile runs the same client (`ReplProcess`), env (`ReplLeanEnv`), worker pool,
tracer and verifier as the full profile; only the process at the end of the pipe differs:
this program instead of `lake env repl`. It answers from the recorded transitions and
transcripts shipped in data/demo (the replay table of `replay.py`, now internal to it):

- requests are read like the REPL reads them: the lines of a block joined without their
  line breaks, blocks separated by a blank line; answers are pretty-printed JSON objects
  followed by a blank line;
- `{"cmd": ..., "env"?: N}`: a leading import block creates a header environment (with
  `--import-latency` seconds of "import Mathlib"); a theorem ending in `:= by sorry` is opened
  (one `sorries` entry whose `proofState` holds the recorded root goal); any other proof is
  answered with the verdict recorded for that exact file (`--verdicts`: the Goedel proofs'
  kimina-lean-server results, Lean v4.15), else checked by replaying its top-level tactics
  through the recorded table (messages say so:
  "verified by stand-in replay ... axioms not checked"); `#print axioms` is not answered
  (the verifier then reports the axioms as not checked, `verified_by="stand-in"`);
  `"allTactics": true` returns the recorded trace rows of the theorem as the REPL's `tactics`
  list (goals before, a `proofState` per tactic; recorded provenance keys such as `_derived`
  ride along, underscore-prefixed, so rows stay labelled as not run through Lean);
- `{"tactic": ..., "proofState": N}`: the recorded result, else an error that says the
  transition is not recorded;
- `pickleTo` / `unpickleEnvFrom`: the environment's header is written to / read from a file;
- unknown env / proof state: the REPL's own messages ("Unknown environment.", ...).

Faults for tests (request numbers are 1-based, per process): `--hang-on N`, `--crash-on N`,
`--garbage-on N`, `--grow-mb MB` (keep MB more memory after every request),
`--import-latency S`, `--tactic-latency S`, `--hang-on-text TEXT` (hang on any request whose
JSON contains TEXT).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import iter_jsonl
from burnqed_assets.lean.env import ProofState
from burnqed_assets.lean.proof_text import NO_GOALS, normalise_ws, parse_proof_file, split_goals
from burnqed_assets.lean.replay import ReplayLeanEnv, UnknownTheoremError, build_replay_env

NAME = "Lean REPL stand-in (recorded transitions; not Lean)"
_IMPORT_BLOCK = re.compile(r"\A(?:\s*(?:import\s+[^\n]+|--[^\n]*)\n?)*")
_PRINT_AXIOMS = re.compile(r"(?m)^[ \t]*#print\s+axioms\s+(\S+)[ \t]*$")
NOT_RECORDED = "stand-in: tactic not in the recorded table for this state (no Lean runs here)"


def _pos(line: int, column: int) -> dict[str, int]:
    return {"line": line, "column": column}


def _message(severity: str, text: str, line: int = 1) -> dict[str, Any]:
    return {"severity": severity, "pos": _pos(line, 0), "endPos": _pos(line, 1), "data": text}


class StandIn:
    """The request → response logic (no I/O), one per process like a REPL's state."""

    def __init__(self, table: ReplayLeanEnv, traces: dict[str, list[dict[str, Any]]],
                 import_latency_s: float = 0.0, tactic_latency_s: float = 0.0,
                 verdicts: dict[str, dict[str, Any]] | None = None):
        self.table = table
        self.verdicts = verdicts or {}  # file_key(proof) -> recorded verify result
        self.traces = traces  # bare theorem name -> recorded rows, in recorded order
        self.import_latency_s = import_latency_s
        self.tactic_latency_s = tactic_latency_s
        self.envs: list[str] = []  # env id -> the header (import block) it holds
        self.states: list[str] = []  # proofState id -> pretty-printed goals

    # ---- helpers ------------------------------------------------------------------------
    def _new_env(self, header: str) -> int:
        self.envs.append(header)
        return len(self.envs) - 1

    def _new_state(self, text: str) -> int:
        self.states.append(text)
        return len(self.states) - 1

    # ---- requests -------------------------------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        if "cmd" in req:
            return self.cmd(req)
        if "tactic" in req:
            return self.tactic(req)
        if "pickleTo" in req and "env" in req:
            return self.pickle(req)
        if "unpickleEnvFrom" in req:
            return self.unpickle(req)
        return {"message": "stand-in: unsupported request (cmd, tactic, pickleTo/unpickleEnvFrom only)"}

    def cmd(self, req: dict[str, Any]) -> dict[str, Any]:
        code = str(req["cmd"])
        header = ""
        if "env" in req:
            env = req["env"]
            if not isinstance(env, int) or not 0 <= env < len(self.envs):
                return {"message": "Unknown environment."}
            header = self.envs[env]
        m = _IMPORT_BLOCK.match(code)
        imports = m.group(0) if m and "import" in m.group(0) else ""
        rest = code[len(imports):]
        if imports:
            if "env" in req:
                return {"messages": [_message("error", "invalid 'import' command, it must be used in the "
                                                       "beginning of the file")], "env": self._new_env(header)}
            time.sleep(self.import_latency_s)  # the cost of `import Mathlib`, paid once per env
            header = imports
        axioms_of = _PRINT_AXIOMS.findall(rest)
        body = _PRINT_AXIOMS.sub("", rest)
        out: dict[str, Any] = {}
        messages: list[dict[str, Any]] = []
        parsed = parse_proof_file(body) if body.strip() else None
        if parsed is not None and parsed.name is not None:
            if req.get("allTactics"):
                tactics, err = self.all_tactics(parsed.name)
                if err:
                    messages.append(_message("error", err))
                else:
                    out["tactics"] = tactics
            elif parsed.tactics == ("sorry",):
                try:
                    root = self.table.open_theorem(parsed.statement, name=parsed.name)
                    pid = self._new_state(root.pp)
                    out["sorries"] = [{"proofState": pid, "pos": _pos(1, 0), "goal": root.pp, "endPos": _pos(1, 5)}]
                    messages.append(_message("warning", "declaration uses `sorry`"))
                except UnknownTheoremError as exc:
                    messages.append(_message("error", "stand-in: " + str(exc)))
            elif file_key(body) in self.verdicts:
                messages += recorded_verdict_messages(self.verdicts[file_key(body)])
            else:
                check = self.table.check_file(body)
                for msg in check.messages:
                    text = msg.text.replace("replay", "stand-in replay")
                    messages.append(_message(msg.severity, text, msg.line or 1))
        for name in axioms_of:
            messages.append(_message("info", f"stand-in: #print axioms {name}: not answered (no Lean runs here)"))
        if messages:
            out["messages"] = messages
        out["env"] = self._new_env(header)
        return out

    def all_tactics(self, name: str) -> tuple[list[dict[str, Any]], str | None]:
        bare = name.split("::", 1)[-1]
        rows = self.traces.get(bare)
        if rows is None:
            return [], f"stand-in: no recorded trace for theorem {bare}"
        tactics = []
        for i, row in enumerate(rows, start=1):
            entry: dict[str, Any] = {"usedConstants": [], "tactic": row["tactic"],
                                     "proofState": self._new_state(row["state"]), "pos": _pos(i, 2),
                                     "goals": row["state"], "endPos": _pos(i, 2 + len(row["tactic"]))}
            entry.update({k: v for k, v in row.items() if k.startswith("_")})
            tactics.append(entry)
        return tactics, None

    def tactic(self, req: dict[str, Any]) -> dict[str, Any]:
        ps = req.get("proofState")
        if not isinstance(ps, int) or not 0 <= ps < len(self.states):
            return {"message": "Unknown proof state."}
        time.sleep(self.tactic_latency_s)
        before = self.states[ps]
        res = self.table.run_tactic(ProofState(before, split_goals(before)), str(req["tactic"]))
        if res.status == "error":
            # The REPL's shape for a failing tactic; the text is the recorded error or says why not.
            err = NOT_RECORDED if res.error and res.error.startswith("replay: tactic not in") else res.error
            return {"message": f"stand-in: {err}" if err and not err.startswith("stand-in") else err}
        goals = list(res.state.goals) if res.status == "open" and res.state is not None else []
        pid = self._new_state("\n\n".join(goals) if goals else NO_GOALS)
        status = "Completed" if res.status == "proved" else "Incomplete: open goals remain"
        return {"proofStatus": status, "proofState": pid, "goals": goals}

    def pickle(self, req: dict[str, Any]) -> dict[str, Any]:
        env = req["env"]
        if not isinstance(env, int) or not 0 <= env < len(self.envs):
            return {"message": "Unknown environment."}
        Path(req["pickleTo"]).write_text(json.dumps({"stand_in_env": self.envs[env]}), encoding="utf-8")
        return {"env": env}

    def unpickle(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            data = json.loads(Path(req["unpickleEnvFrom"]).read_text(encoding="utf-8"))
            header = str(data["stand_in_env"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return {"message": f"stand-in: cannot unpickle: {exc}"}
        time.sleep(self.import_latency_s)
        return {"env": self._new_env(header)}


def file_key(code: str) -> str:
    """A proof file's identity for recorded verdicts: imports, `#print axioms` and line
    comments dropped (the client sends imports as a separate header env), whitespace collapsed."""
    lines = [ln for ln in _PRINT_AXIOMS.sub("", code).splitlines()
             if not ln.strip().startswith(("import ", "--"))]
    return normalise_ws("\n".join(lines))


def recorded_verdict_messages(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """A recorded verify result (`{error, response: {messages, sorries}}`) as REPL messages."""
    if ev.get("error"):
        return [_message("error", f"stand-in: recorded verdict: {ev['error']}")]
    resp = ev.get("response") or {}
    out = [m for m in resp.get("messages", []) or [] if isinstance(m, dict)]
    if resp.get("sorries"):
        out.append(_message("warning", "declaration uses `sorry`"))
    out.append(_message("info", "stand-in: recorded verdict (kimina-lean-server, Lean v4.15); axioms not checked"))
    return out


def load_verdicts(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in paths:
        for _, rec in iter_jsonl(Path(p)):
            ev = rec.get("expected_verify_result")
            if isinstance(rec.get("full_proof"), str) and isinstance(ev, dict):
                out.setdefault(file_key(rec["full_proof"]), ev)
    return out


# ---------------------------------------------------------------------------- the program
def load_traces(paths: Sequence[Path]) -> dict[str, list[dict[str, Any]]]:
    """Recorded trace rows by bare theorem name (the `allTactics` answers)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in paths:
        for _, rec in iter_jsonl(Path(p)):
            if isinstance(rec.get("theorem"), str) and isinstance(rec.get("state"), str) and rec.get("tactic"):
                out.setdefault(rec["theorem"].split("::", 1)[-1], []).append(rec)
    return out


def read_requests(stream: Any) -> Iterator[str]:
    """Blocks of non-blank lines, joined without their line breaks (as the REPL does)."""
    buf: list[str] = []
    for line in stream:
        if line.strip():
            buf.append(line.rstrip("\n"))
        elif buf:
            yield "".join(buf)
            buf = []
    if buf:
        yield "".join(buf)


def emit(obj: dict[str, Any] | str) -> None:
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, indent=1)
    sys.stdout.write(text.rstrip("\n") + "\n\n")
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="repl_standin", description=NAME)
    ap.add_argument("--traced", nargs="*", default=[], help="recorded pairs (replay table)")
    ap.add_argument("--trace-rows", nargs="*", default=[], help="recorded traces answered to allTactics")
    ap.add_argument("--sstrace", nargs="*", default=[])
    ap.add_argument("--transcripts", default=None)
    ap.add_argument("--benchmark-goals", nargs="*", default=[])
    ap.add_argument("--statements", nargs="*", default=[])
    ap.add_argument("--verdicts", nargs="*", default=[], help="proof files with a recorded verify result")
    ap.add_argument("--import-latency", type=float, default=0.0)
    ap.add_argument("--tactic-latency", type=float, default=0.0)
    ap.add_argument("--grow-mb", type=int, default=0)
    ap.add_argument("--hang-on", type=int, default=0)
    ap.add_argument("--crash-on", type=int, default=0)
    ap.add_argument("--garbage-on", type=int, default=0)
    ap.add_argument("--hang-on-text", default=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    table = build_replay_env(traced=[Path(p) for p in args.traced], sstrace=[Path(p) for p in args.sstrace],
                             transcripts_dir=Path(args.transcripts) if args.transcripts else None,
                             benchmark_goals=[Path(p) for p in args.benchmark_goals],
                             statements=[Path(p) for p in args.statements])
    standin = StandIn(table, load_traces([Path(p) for p in args.trace_rows]), args.import_latency,
                      args.tactic_latency, load_verdicts([Path(p) for p in args.verdicts]))
    print(f"{NAME}: {table.stats()['transitions']} transitions, {len(standin.traces)} traced theorems",
          file=sys.stderr, flush=True)
    hog: list[bytes] = []
    for n, raw in enumerate(read_requests(sys.stdin), start=1):
        if n == args.hang_on or (args.hang_on_text and args.hang_on_text in raw):
            time.sleep(3600)
        if n == args.crash_on:
            print("stand-in: crashing on purpose (--crash-on)", file=sys.stderr, flush=True)
            os._exit(139)
        if n == args.garbage_on:
            emit("stand-in: uncaught exception <garbage> {not json")
            continue
        if args.grow_mb:
            hog.append(b"\x01" * (args.grow_mb * 1024 * 1024))
        try:
            req = json.loads(raw)
        except json.JSONDecodeError as exc:
            emit({"message": f"Could not parse JSON:\n{exc.msg}"})
            continue
        if not isinstance(req, dict):
            emit({"message": "Could not parse JSON: expected an object"})
            continue
        emit(standin.handle(req))
    return 0


if __name__ == "__main__":
    sys.exit(main())

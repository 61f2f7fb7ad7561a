"""Goedel Lean 4.9 → 4.27 migration (plan Tasks M.1–M.3): compile, auto-fix, triage.

`migrate_proofs` runs one pass per proof:
1. compile the original (a `ProofChecker` gives the verdict: Lean through `verify_proof`, or,
   in the demo, the verdict recorded with the data — labelled `recorded`, never as a run);
2. if it fails, apply the rename table (data/demo/migration/rename_table.json) and compile again;
3. triage what still fails into the plan's categories and drop it, with the reason.
Survival = (compiled + fixed) / total. Every applied edit goes into the changelog.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import BadInputError, BadLine, LineReport, file_sha256, iter_jsonl, read_json, write_json
from burnqed_assets.lean.env import CheckResult, LeanEnv, Message
from burnqed_assets.lean.verify import DEFAULT_ALLOWED_AXIOMS, VerifyResult, verify_proof

TRIAGE = {
    "api_rename": "Mathlib API rename → regex fix (add a rule to the rename table)",
    "syntax_change": "Lean/Mathlib syntax change → regex fix",
    "definitional_change": "definitional / elaboration change → manual proof patch",
    "tactic_regression": "tactic no longer closes the goal → manual proof patch",
    "timeout": "Lean timed out → re-run with more time or patch",
    "banned_construct": "proof uses a banned construct (verifier) → drop",
    "other": "fundamental incompatibility → drop",
}


# ---------------------------------------------------------------------------- rename table
@dataclass(frozen=True)
class RenameRule:
    id: str
    pattern: re.Pattern[str]
    replacement: str
    reason: str
    confidence: str = "medium"


@dataclass(frozen=True)
class Edit:
    rule: str
    count: int
    reason: str
    confidence: str
    examples: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "count": self.count, "reason": self.reason, "confidence": self.confidence,
                "examples": list(self.examples)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        return cls(str(d["rule"]), int(d["count"]), str(d["reason"]), str(d["confidence"]),
                   tuple(str(x) for x in d.get("examples") or ()))


def load_rename_table(path: str | Path) -> list[RenameRule]:
    """Rules of the rename table; a malformed rule raises naming the file and rule index."""
    path = Path(path)
    data = read_json(path)
    rules_raw = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules_raw, list):
        raise ValueError(f"{path}: expected an object with a 'rules' list")
    rules = []
    for i, r in enumerate(rules_raw):
        where = f"{path}: rules[{i}]"
        try:
            kind = r["kind"]
            if kind == "identifier":
                pattern = rf"(?<![\w'.]){re.escape(r['old'])}(?![\w'])"
                replacement = r["new"].replace("\\", "\\\\")
            elif kind == "regex":
                pattern, replacement = r["pattern"], r["replacement"]
            else:
                raise ValueError(f"unknown kind {kind!r} (identifier | regex)")
            rules.append(RenameRule(str(r.get("id", f"rule_{i}")), re.compile(pattern), replacement,
                                    str(r.get("reason", "")), str(r.get("confidence", "medium"))))
        except (KeyError, TypeError, re.error, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return rules


def apply_renames(code: str, rules: Iterable[RenameRule]) -> tuple[str, list[Edit]]:
    """The rewritten text and one `Edit` per rule that changed something."""
    edits = []
    for rule in rules:
        matches = [m.group(0) for m in rule.pattern.finditer(code)]
        if not matches:
            continue
        code = rule.pattern.sub(rule.replacement, code)
        edits.append(Edit(rule.id, len(matches), rule.reason, rule.confidence, tuple(matches[:3])))
    return code, edits


# ---------------------------------------------------------------------------- verdicts
@dataclass
class Verdict:
    ok: bool
    reasons: list[str]
    errors: list[str]  # Lean error texts (for triage)
    source: str  # "lean" | "replay" | "recorded"
    timed_out: bool = False
    banned: bool = False


ProofChecker = Callable[[dict[str, Any], str], Verdict]  # (record, code) -> verdict


def verdict_from_verify(result: VerifyResult) -> Verdict:
    errors = [m.text for m in (result.check.messages if result.check else []) if m.severity == "error"]
    backend_error = result.check.error if result.check else None
    timed_out = bool(backend_error and "timeout" in backend_error.lower())
    return Verdict(result.ok, result.reasons, errors + ([backend_error] if backend_error else []),
                   result.verified_by, timed_out=timed_out, banned=bool(result.violations))


def lean_checker(env: LeanEnv, allowed_axioms: Iterable[str] = DEFAULT_ALLOWED_AXIOMS) -> ProofChecker:
    """Full profile: the shared verifier on the Lean backend (errors, sorries, axioms)."""
    allowed = tuple(allowed_axioms)

    def check(record: dict[str, Any], code: str) -> Verdict:
        return verdict_from_verify(verify_proof(code, env, allowed_axioms=allowed))

    return check


class RecordedVerdictEnv:
    """Answers `check_file` with the Lean verdict recorded next to the proof (no Lean run)."""

    name = "recorded"
    verified_by = "recorded"

    def __init__(self, recorded: dict[str, Any]):
        self.recorded = recorded

    def check_file(self, code: str) -> CheckResult:
        ev = self.recorded
        if ev.get("error"):
            return CheckResult(ok=False, error=f"recorded: {ev['error']}")
        resp = ev.get("response") or {}
        messages = [Message(str(m.get("severity")), str(m.get("data", "")), (m.get("pos") or {}).get("line"))
                    for m in resp.get("messages", []) or []]
        sorries = len(resp.get("sorries", []) or [])
        ok = not any(m.severity == "error" for m in messages) and not sorries
        return CheckResult(ok=ok, messages=messages, sorries=sorries)


def recorded_checker(record_key: str = "expected_verify_result") -> ProofChecker:
    """Demo: the verifier's static scan + the verdict recorded with the record (labelled `recorded`)."""

    def check(record: dict[str, Any], code: str) -> Verdict:
        ev = record.get(record_key)
        if not isinstance(ev, dict):
            return Verdict(False, [f"no recorded verdict ({record_key})"], [], "recorded")
        return verdict_from_verify(verify_proof(code, RecordedVerdictEnv(ev)))

    return check


# ---------------------------------------------------------------------------- triage
def triage(verdict: Verdict) -> str:
    if verdict.banned:
        return "banned_construct"
    if verdict.timed_out or any("timed out" in e.lower() or "timeout" in e.lower() for e in verdict.errors):
        return "timeout"
    text = "\n".join(verdict.errors + verdict.reasons).lower()
    if re.search(r"unknown (identifier|constant|declaration|namespace)|deprecated", text):
        return "api_rename"
    if re.search(r"unexpected token|expected ['`]|unknown tactic|invalid syntax", text):
        return "syntax_change"
    if re.search(r"type mismatch|failed to synthesize|application type mismatch|motive is not type correct", text):
        return "definitional_change"
    # lower-cased messages of Lean 4.9 (`linarith failed`) to 4.2x (`` `simp` made no progress ``)
    if re.search(r"`?linarith`? failed|unsolved goals|failed to prove|`?simp`? made no progress|omega could not"
                 r"|no goals to be solved|failed", text):
        return "tactic_regression"
    return "other"


# ---------------------------------------------------------------------------- the pass
@dataclass(frozen=True)
class MigratedProof:
    """A surviving proof: its 4.27 text, how it survived, and who gave the verdict."""

    problem_id: str
    full_proof: str
    status: str  # compiled | fixed_by_rename
    verdict_source: str

    def as_row(self) -> dict[str, Any]:
        """The `migrated_proofs.jsonl` row (key order is part of the file's bytes)."""
        return {"problem_id": self.problem_id, "full_proof": self.full_proof, "status": self.status,
                "verdict_source": self.verdict_source}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MigratedProof:
        return cls(str(row["problem_id"]), str(row["full_proof"]), str(row["status"]), str(row["verdict_source"]))


@dataclass(frozen=True)
class DroppedProof:
    """A proof that failed after the auto-fix pass, with its triage category and the reasons."""

    problem_id: str
    category: str
    action: str
    reasons: tuple[str, ...]
    verdict_source: str
    tried_edits: tuple[str, ...]

    def as_row(self) -> dict[str, Any]:
        return {"problem_id": self.problem_id, "category": self.category, "action": self.action,
                "reasons": list(self.reasons), "verdict_source": self.verdict_source,
                "tried_edits": list(self.tried_edits)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DroppedProof:
        return cls(str(row["problem_id"]), str(row["category"]), str(row["action"]),
                   tuple(str(r) for r in row.get("reasons") or ()), str(row["verdict_source"]),
                   tuple(str(e) for e in row.get("tried_edits") or ()))


@dataclass(frozen=True)
class ChangelogEntry:
    """The rename edits applied to one surviving proof."""

    problem_id: str
    status: str
    edits: tuple[Edit, ...]
    recompiled: bool  # False: the stand-in's verdict is for the original text (edits logged, not re-checked)

    def as_row(self) -> dict[str, Any]:
        return {"problem_id": self.problem_id, "status": self.status, "edits": [e.as_dict() for e in self.edits],
                "recompiled": self.recompiled}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ChangelogEntry:
        return cls(str(row["problem_id"]), str(row["status"]), tuple(Edit.from_dict(e) for e in row["edits"]),
                   bool(row["recompiled"]))


@dataclass(frozen=True)
class MigrationSummary:
    """The counts of a migration (M.3's survival and triage), as `migration_summary.json` holds them."""

    total: int
    compiled: int
    fixed_by_rename: int
    survivors: int
    dropped: int
    survival_rate: float
    triage: dict[str, int]
    edits_by_rule: dict[str, int]
    verdict_source: str

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "compiled": self.compiled, "fixed_by_rename": self.fixed_by_rename,
                "survivors": self.survivors, "dropped": self.dropped, "survival_rate": self.survival_rate,
                "triage": dict(self.triage), "triage_actions": TRIAGE, "edits_by_rule": dict(self.edits_by_rule),
                "verdict_source": self.verdict_source}


@dataclass
class MigrationResult:
    migrated: list[MigratedProof] = field(default_factory=list)
    dropped: list[DroppedProof] = field(default_factory=list)
    changelog: list[ChangelogEntry] = field(default_factory=list)
    total: int = 0
    verdict_source: str = ""

    @property
    def survivors(self) -> int:
        return len(self.migrated)

    @property
    def survival_rate(self) -> float:
        return self.survivors / self.total if self.total else 0.0

    def summary(self) -> MigrationSummary:
        status = Counter(r.status for r in self.migrated)
        categories = Counter(d.category for d in self.dropped)
        return MigrationSummary(
            total=self.total, compiled=status.get("compiled", 0), fixed_by_rename=status.get("fixed_by_rename", 0),
            survivors=self.survivors, dropped=len(self.dropped), survival_rate=round(self.survival_rate, 6),
            triage={k: categories.get(k, 0) for k in TRIAGE},
            edits_by_rule=dict(Counter(e.rule for c in self.changelog for e in c.edits)),
            verdict_source=self.verdict_source)

    def as_json(self) -> dict[str, Any]:
        """Rows of every part (a chunk's checkpoint file)."""
        return {"total": self.total, "verdict_source": self.verdict_source,
                "migrated": [r.as_row() for r in self.migrated], "dropped": [d.as_row() for d in self.dropped],
                "changelog": [c.as_row() for c in self.changelog]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MigrationResult:
        return cls(migrated=[MigratedProof.from_row(r) for r in data["migrated"]],
                   dropped=[DroppedProof.from_row(d) for d in data["dropped"]],
                   changelog=[ChangelogEntry.from_row(c) for c in data["changelog"]],
                   total=int(data["total"]), verdict_source=str(data["verdict_source"]))

    @classmethod
    def concat(cls, parts: Iterable[MigrationResult], verdict_source: str) -> MigrationResult:
        """The parts in order as one result: proofs are migrated independently, so the chunks of a
        corpus concatenated equal the corpus migrated in one go."""
        out = cls(verdict_source=verdict_source)
        for part in parts:
            out.migrated += part.migrated
            out.dropped += part.dropped
            out.changelog += part.changelog
            out.total += part.total
        return out


CheckMany = Callable[[list[tuple[dict[str, Any], str]]], list["Verdict"]]  # [(record, code)] -> verdicts


def one_at_a_time(checker: ProofChecker, progress: Callable[[int], None] | None = None) -> CheckMany:
    """A batch checker from a one-proof checker (one given env: tests, notebooks)."""
    done = 0

    def check_many(items: list[tuple[dict[str, Any], str]]) -> list[Verdict]:
        nonlocal done
        out = []
        for rec, code in items:
            out.append(checker(rec, code))
            done += 1
            if progress is not None:
                progress(done)
        return out

    return check_many


def migrate_proofs(records: Iterable[dict[str, Any]], checker: ProofChecker, rules: list[RenameRule],
                   verdict_label: str, recompile_after_fix: bool = True,
                   progress: Callable[[int], None] | None = None) -> MigrationResult:
    """`migrate_batch` with a one-proof-at-a-time checker."""
    return migrate_batch(list(records), one_at_a_time(checker, progress), rules, verdict_label, recompile_after_fix)


def migrate_batch(records: list[dict[str, Any]], check_many: CheckMany, rules: list[RenameRule],
                  verdict_label: str, recompile_after_fix: bool = True) -> MigrationResult:
    """Compile every proof → auto-fix the failures → re-compile only those → triage, for
    `{problem_id, full_proof}` records. `check_many` compiles a batch (in parallel on the warm
    pool, or with `lake build`). Each proof's outcome depends on that proof alone, so a corpus
    cut into chunks gives the same rows, chunk after chunk, as the corpus in one batch.

    `recompile_after_fix=False` (the stand-in's verdicts are recorded for the original texts
    only): the verdict of the original stands and the rename edits are applied and logged for
    4.27, labelled as not re-compiled.
    """
    result = MigrationResult(verdict_source=verdict_label, total=len(records))
    firsts = check_many([(rec, rec["full_proof"]) for rec in records])
    fixes = [apply_renames(rec["full_proof"], rules) for rec in records]
    retry = [i for i, (first, (_, edits)) in enumerate(zip(firsts, fixes))
             if not first.ok and edits and recompile_after_fix]
    seconds = dict(zip(retry, check_many([(records[i], fixes[i][0]) for i in retry]))) if retry else {}
    for i, rec in enumerate(records):
        pid, code = rec["problem_id"], rec["full_proof"]
        first = firsts[i]
        fixed, edits = fixes[i]
        status, final, verdict = None, code, first
        if first.ok and not edits:
            status = "compiled"
        elif first.ok and edits and not recompile_after_fix:
            status, final = "compiled", fixed  # verdict on the original; edits logged for 4.27
        elif first.ok and edits:
            status = "compiled"  # compiles as is on this Lean: keep the original text
            edits = []
        elif i in seconds:
            verdict = seconds[i]
            if verdict.ok:
                status, final = "fixed_by_rename", fixed
        if edits and status is not None:
            result.changelog.append(ChangelogEntry(pid, status, tuple(edits), recompile_after_fix))
        if status is None:
            category = triage(verdict)
            result.dropped.append(DroppedProof(pid, category, TRIAGE[category], tuple(verdict.reasons[:5]),
                                               verdict.source, tuple(e.rule for e in edits)))
        else:
            result.migrated.append(MigratedProof(pid, final, status, verdict.source))
    return result


# ---------------------------------------------------------------------------- resumable chunks
@dataclass(frozen=True)
class ChunkDone:
    """The done marker of one migration chunk, written after its results file: `chunk_id` says
    which proofs and which pass settings it holds, `results_sha256` vouches for the results file."""

    chunk_id: str
    total: int
    survivors: int
    dropped: int
    results_sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "total": self.total, "survivors": self.survivors,
                "dropped": self.dropped, "results_sha256": self.results_sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkDone:
        return cls(str(data["chunk_id"]), int(data["total"]), int(data["survivors"]), int(data["dropped"]),
                   str(data["results_sha256"]))


def migration_chunk_files(checkpoint_dir: Path, index: int) -> tuple[Path, Path]:
    """(results file, done marker) of migration chunk `index`."""
    return checkpoint_dir / f"chunk_{index:05d}.json", checkpoint_dir / f"chunk_{index:05d}.done.json"


def migration_chunk_id(records: Sequence[dict[str, Any]], pass_key: str) -> str:
    """Identity of a chunk's work: its proofs (ids and texts, in order) and the pass settings
    (`pass_key`: rename table, verdict source, re-compile, axioms). Any change re-does the chunk."""
    h = hashlib.sha256(pass_key.encode("utf-8"))
    for rec in records:
        h.update(b"\0" + str(rec["problem_id"]).encode("utf-8") + b"\0" + str(rec["full_proof"]).encode("utf-8"))
    return h.hexdigest()[:16]


def finished_migration_chunk(checkpoint_dir: Path, index: int, chunk_id: str) -> MigrationResult | None:
    """The stored result of a chunk finished with exactly this work, else None."""
    results_path, done_path = migration_chunk_files(checkpoint_dir, index)
    try:
        marker = ChunkDone.from_json(json.loads(done_path.read_text(encoding="utf-8")))
        if marker.chunk_id != chunk_id or file_sha256(results_path) != marker.results_sha256:
            return None
        return MigrationResult.from_json(json.loads(results_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def migrate_chunk(index: int, records: list[dict[str, Any]], check_many: CheckMany, rules: list[RenameRule],
                  verdict_label: str, recompile_after_fix: bool, checkpoint_dir: Path,
                  pass_key: str) -> tuple[MigrationResult, bool]:
    """Migrate one chunk into its checkpoint unless it is finished already: (result, skipped).
    The results file is written first and the done marker last, both atomically, so a run
    killed at any point leaves either a finished chunk or one that is migrated again, whole."""
    chunk_id = migration_chunk_id(records, pass_key)
    done = finished_migration_chunk(checkpoint_dir, index, chunk_id)
    if done is not None:
        return done, True
    result = migrate_batch(records, check_many, rules, verdict_label, recompile_after_fix)
    results_path, done_path = migration_chunk_files(checkpoint_dir, index)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    done_path.unlink(missing_ok=True)
    write_json(results_path, result.as_json())
    write_json(done_path, ChunkDone(chunk_id, result.total, result.survivors, len(result.dropped),
                                    file_sha256(results_path)).as_json())
    return result, False


def pool_check_many(pool: Any, allowed_axioms: Iterable[str] = DEFAULT_ALLOWED_AXIOMS,
                    progress: Callable[[int], None] | None = None) -> CheckMany:
    """Compile a batch on the warm Lean pool: every proof in its worker's header env, in parallel.
    A proof whose REPL crashed twice or timed out gets that as its verdict (triaged as such)."""
    from burnqed_assets.lean.pool import CheckJob

    job = CheckJob(tuple(allowed_axioms))
    done = 0

    def check_many(items: list[tuple[dict[str, Any], str]]) -> list[Verdict]:
        nonlocal done
        out: list[Verdict | None] = [None] * len(items)
        for res in pool.map_unordered(job, [code for _, code in items]):
            if res.ok:
                out[res.index] = verdict_from_verify(res.value)
            else:
                source = getattr(pool, "verified_by", "lean")
                out[res.index] = Verdict(False, [f"backend {res.status}: {res.error}"[:500]],
                                         [f"{res.status}: {res.error}"[:500]], source,
                                         timed_out=res.status == "timeout")
            done += 1
            if progress is not None:
                progress(done)
        missing = [items[i][0]["problem_id"] for i, v in enumerate(out) if v is None]
        if missing:
            raise RuntimeError(f"the Lean pool returned no verdict for {missing[:3]}")
        return [v for v in out if v is not None]

    return check_many


# ---------------------------------------------------------------------------- source loading
def load_goedel_source(path: str | Path, report: LineReport) -> Iterator[dict[str, Any]]:
    """Goedel proofs `{problem_id, full_proof, ...}` from a JSONL file or a dataset folder
    (JSONL / Parquet files, as `huggingface-cli download` leaves them). Bad rows go to `report`."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        [*path.rglob("*.jsonl"), *path.rglob("*.parquet")]) if path.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no Goedel proofs (*.jsonl / *.parquet) at {path}")
    seen: set[str] = set()
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            missing = {"problem_id", "full_proof"} - set(table.column_names)
            if missing:
                raise BadInputError([BadLine(f, 0, f"missing column(s) {sorted(missing)}")])
            rows: Iterable[tuple[int, dict[str, Any]]] = enumerate(table.to_pylist(), start=1)
        else:
            rows = iter_jsonl(f, report, validate=_validate_goedel)
        for line, rec in rows:
            if f.suffix == ".parquet":
                reason = _validate_goedel(rec)
                if reason:
                    report.add(f, line, reason)
                    continue
                report.rows += 1
            if rec["problem_id"] in seen:
                report.add(f, line, f"duplicate problem_id {rec['problem_id']!r}")
                continue
            seen.add(rec["problem_id"])
            yield rec


def _validate_goedel(rec: dict[str, Any]) -> str | None:
    for k in ("problem_id", "full_proof"):
        if not isinstance(rec.get(k), str) or not rec[k].strip():
            return f"missing or empty {k!r}"
    if not re.search(r"(?m)^\s*(theorem|lemma)\s", rec["full_proof"]):
        return "full_proof has no theorem declaration"
    return None

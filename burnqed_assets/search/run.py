"""Resumable search runs: theorem selection, per-theorem part files, merge, stats, evaluation.

Each finished theorem is written at once as its own Parquet part (rows of its tree, the
search summary in the file metadata), atomically. A run that is interrupted resumes by
skipping theorems whose part exists, so no theorem is searched or written twice; the parts
are merged into the final Parquet at the end and then removed. A fingerprint of the run
configuration guards the parts: a run with another model or budget starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from burnqed_assets.data.io import atomic_path, read_json, write_json
from burnqed_assets.data.schema import TRAJECTORY_LABELS, TRAJECTORY_SCHEMA
from burnqed_assets.search.engine import (
    EnergyScorer,
    SearchConfig,
    SearchResult,
    Theorem,
    Verifier,
    trajectory_rows,
)
from burnqed_assets.search.policy import Policy
from burnqed_assets.search.pooled import (  # noqa: F401 - PolicyEndpoint / as_endpoints: part of this API
    EnvPool,
    PolicyEndpoint,
    as_endpoints,
    is_pool,
    perf_clock,
    search_on_pool,
)

log = logging.getLogger(__name__)

RESULT_META_KEY = b"burnqed.search_result"
from burnqed_assets.paths import RUN_FINGERPRINT_FILE as FINGERPRINT_FILE  # noqa: E402
DEEP_STATE_DEPTH = 4  # plan: share of states at depth >= 4

RESULTS_SCHEMA = pa.schema([
    ("theorem", pa.string()), ("source", pa.string()), ("proved", pa.bool_()), ("proof", pa.string()),
    ("proof_length", pa.int32()), ("nodes", pa.int64()), ("expansions", pa.int64()),
    ("tactic_calls", pa.int64()), ("tactic_errors", pa.int64()), ("tactic_crashes", pa.int64()),
    ("duplicate_states", pa.int64()),
    ("verify_rejections", pa.int64()), ("max_depth", pa.int32()), ("elapsed_s", pa.float64()),
    ("policy_s", pa.float64()), ("lean_s", pa.float64()), ("scorer_s", pa.float64()),
    ("stop_reason", pa.string()), ("error", pa.string()),
])


# --------------------------------------------------------------------------- theorem selection

# Harder competitions first (plan Task 1.3: USAMO, IMO > AMC); matched in name and source.
HARDNESS_TIERS: tuple[tuple[str, ...], ...] = (
    ("imo", "usamo", "usajmo", "putnam", "tstst", "apmo", "balkan"),
    ("aime", "hmmt", "olymp", "induction"),
    ("amc", "mathd", "algebra", "numbertheory"),
)


def hardness_tier(entry: dict[str, Any]) -> int:
    text = f"{entry.get('theorem', '')} {entry.get('source', '')}".lower()
    for tier, words in enumerate(HARDNESS_TIERS):
        if any(re.search(rf"(^|[^a-z]){w}", text) for w in words):
            return tier
    return len(HARDNESS_TIERS)


@dataclass
class PoolSelection:
    selected: list[dict[str, Any]]
    candidates: int
    too_shallow: int
    missing_statement: int
    missing_statement_examples: list[str] = field(default_factory=list)
    tier_counts: dict[str, int] = field(default_factory=dict)


def select_contrastive_pool(entries: Sequence[dict[str, Any]], max_theorems: int, min_depth: int = 3,
                            source_path: str = "contrastive_pool.json") -> PoolSelection:
    """≤ `max_theorems` entries with `max_depth >= min_depth` and a formal statement (search must
    open the theorem), harder sources first, then deeper proofs, then more pairs, then name."""
    too_shallow = 0
    missing: list[str] = []
    eligible = []
    for i, e in enumerate(entries):
        if int(e.get("max_depth") or 0) < min_depth:
            too_shallow += 1
            continue
        if not (e.get("formal_statement") or "").strip():
            missing.append(f"{source_path}[{i}] {e.get('theorem')}: no formal_statement, cannot open it in Lean")
            continue
        eligible.append(e)
    eligible.sort(key=lambda e: (hardness_tier(e), -int(e.get("max_depth") or 0), -int(e.get("num_pairs") or 0),
                                 str(e.get("theorem"))))
    selected = eligible[:max_theorems]
    tiers = Counter(hardness_tier(e) for e in selected)
    return PoolSelection(selected, len(entries), too_shallow, len(missing), missing[:10],
                         {f"tier_{k}": v for k, v in sorted(tiers.items())})


def theorems_from_records(records: Iterable[dict[str, Any]], name_key: str = "theorem") -> list[Theorem]:
    """Theorems from pool entries (`theorem`) or benchmark records (`name`)."""
    out = []
    for r in records:
        name = r.get(name_key) or r.get("name") or r.get("theorem")
        out.append(Theorem(name=str(name), formal_statement=str(r.get("formal_statement") or ""),
                           header=str(r.get("header") or ""), source=str(r.get("source") or "")))
    return out


# --------------------------------------------------------------------------- part files


def part_name(theorem: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", theorem)[:80]
    digest = hashlib.sha1(theorem.encode("utf-8")).hexdigest()[:12]
    return f"{safe}.{digest}.parquet"


class PartStore:
    """One atomic Parquet part per finished theorem under `directory`."""

    def __init__(self, directory: Path, fingerprint: dict[str, Any]):
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self._lock = threading.Lock()

    def open(self) -> int:
        """Create the folder; drop parts of a different run configuration. Returns parts kept."""
        fp_path = self.directory / FINGERPRINT_FILE
        if self.directory.exists():
            old = read_json(fp_path) if fp_path.exists() else None
            if old != _jsonable(self.fingerprint):
                log.info("run configuration changed: discarding %s", self.directory)
                shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(fp_path, self.fingerprint)
        return len(list(self.directory.glob("*.parquet")))

    def path(self, theorem: str) -> Path:
        return self.directory / part_name(theorem)

    def has(self, theorem: str) -> bool:
        return self.path(theorem).exists()

    def write(self, result: SearchResult) -> None:
        table = pa.Table.from_pylist(trajectory_rows(result), schema=TRAJECTORY_SCHEMA)
        meta = {RESULT_META_KEY: json.dumps(result.summary()).encode("utf-8")}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        with atomic_path(self.path(result.theorem)) as tmp:
            pq.write_table(table, tmp)

    def read(self, theorem: str) -> tuple[pa.Table, dict[str, Any]]:
        table = pq.read_table(self.path(theorem))
        summary = json.loads(table.schema.metadata[RESULT_META_KEY])
        return table.replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA), summary

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


# --------------------------------------------------------------------------- resumable run


@dataclass
class RunOutput:
    results: list[dict[str, Any]]  # per-theorem summaries (RESULTS_SCHEMA rows), in input order
    resumed: int  # theorems taken from an earlier interrupted run
    searched: int  # theorems searched in this run
    path: Path  # merged trajectories Parquet
    rows: int = 0
    depth_counts: Counter = field(default_factory=Counter)
    label_counts: Counter = field(default_factory=Counter)
    endpoint_theorems: dict[str, int] = field(default_factory=dict)  # fan-out: theorems per policy endpoint

    @property
    def proved(self) -> int:
        return sum(1 for r in self.results if r["proved"])

    @property
    def attempted(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r["stop_reason"] == "error")

    def stats(self) -> TrajectoryStats:
        return trajectory_stats(self.results, self.depth_counts, self.label_counts)


def run_search(theorems: Sequence[Theorem], lean: Any, policy: Policy | Sequence[PolicyEndpoint],
               cfg: SearchConfig,
               out_path: Path, concurrency: int = 1, scorer: EnergyScorer | None = None,
               verifier_factory: Callable[[Any], Verifier] | None = None,
               fingerprint: dict[str, Any] | None = None, keep_parts: bool = False,
               progress: Callable[[int, int, SearchResult], None] | None = None,
               clock_factory: Callable[[], Callable[[], float]] = perf_clock) -> RunOutput:
    """Search every theorem (resuming an interrupted run), then write the merged trajectory
    Parquet to `out_path` atomically. Duplicate theorem names are searched once.

    `lean`: a warm Lean pool (`lean.pool.LeanPool`: one job per theorem on a worker's warm REPL)
    or a plain env / env factory (run through `EnvPool`, the same path). `policy`: one policy
    (`concurrency` searches at once) or a list of `PolicyEndpoint`s, each with its own
    concurrency, all taking theorems from one queue (fan-out)."""
    unique: dict[str, Theorem] = {}
    for th in theorems:
        unique.setdefault(th.name, th)
    order = list(unique)
    parts = PartStore(Path(str(out_path) + ".parts"),
                      {"config": cfg.engine_fields(), "scorer": scorer is not None, **(fingerprint or {})})
    parts.open()
    todo = [unique[n] for n in order if not parts.has(n)]
    resumed = len(order) - len(todo)
    if resumed:
        log.info("resuming: %d of %d theorem(s) already searched", resumed, len(order))
    done = [resumed]
    lock = threading.Lock()

    def on_result(res: SearchResult) -> None:
        parts.write(res)
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], len(order), res)
            else:
                log.info("[%d/%d] %s proved=%s nodes=%d %.1fs %s", done[0], len(order), res.theorem,
                         res.proved, len(res.nodes), res.elapsed_s, res.error or "")

    endpoints = as_endpoints(policy, concurrency)
    owned = not is_pool(lean)
    pool = EnvPool(lean, sum(max(1, e.concurrency) for e in endpoints)) if owned else lean
    try:
        searched = search_on_pool(todo, pool, endpoints, cfg, scorer, verifier_factory, on_result, clock_factory)
    finally:
        if owned:
            pool.close()

    # Stream the parts into one file (a full run holds ~10^6 rows: never all in memory at once).
    results: list[dict[str, Any]] = []
    depth_counts: Counter = Counter()
    label_counts: Counter = Counter()
    rows = 0
    with atomic_path(out_path) as tmp:
        with pq.ParquetWriter(tmp, TRAJECTORY_SCHEMA) as writer:
            for name in order:
                table, summary = parts.read(name)
                results.append(summary)
                if table.num_rows:
                    writer.write_table(table)
                    rows += table.num_rows
                    depth_counts.update(table.column("depth").to_pylist())
                    label_counts.update(table.column("label").to_pylist())
    if not keep_parts:
        parts.remove()
    return RunOutput(results, resumed=resumed, searched=len(todo), path=Path(out_path), rows=rows,
                     depth_counts=depth_counts, label_counts=label_counts,
                     endpoint_theorems=searched.endpoint_theorems)


def write_results(results: Sequence[dict[str, Any]], path: Path) -> Path:
    table = pa.Table.from_pylist([{k: r.get(k) for k in RESULTS_SCHEMA.names} for r in results],
                                 schema=RESULTS_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Per-theorem summaries written by `write_results` (RESULTS_SCHEMA rows)."""
    return pq.read_table(path).cast(RESULTS_SCHEMA).to_pylist()


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class TrajectoryStats:
    """trajectory_stats.json: proved/failed counts, depth and label distributions, deep share."""

    theorems_attempted: int
    theorems_proved: int
    theorems_failed: int
    prove_rate: float
    errors: int
    stop_reasons: dict[str, int]
    total_records: int
    label_counts: dict[str, int]
    depth_distribution: dict[str, int]
    max_depth: int
    deep_state_share: float
    deep_state_depth: int
    mean_nodes_per_theorem: float
    mean_elapsed_s: float
    proof_length_distribution: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trajectory_stats(results: Sequence[dict[str, Any]], depth_counts: Counter,
                     label_counts: Counter) -> TrajectoryStats:
    n = sum(depth_counts.values())
    proved = sum(1 for r in results if r["proved"])
    stop = Counter(r["stop_reason"] for r in results)
    return TrajectoryStats(
        theorems_attempted=len(results),
        theorems_proved=proved,
        theorems_failed=len(results) - proved,
        prove_rate=proved / len(results) if results else 0.0,
        errors=stop.get("error", 0),
        stop_reasons=dict(sorted(stop.items())),
        total_records=n,
        label_counts={lab: label_counts.get(lab, 0) for lab in TRAJECTORY_LABELS},
        depth_distribution={str(d): depth_counts[d] for d in sorted(depth_counts)},
        max_depth=max(depth_counts, default=0),
        deep_state_share=(sum(c for d, c in depth_counts.items() if d >= DEEP_STATE_DEPTH) / n) if n else 0.0,
        deep_state_depth=DEEP_STATE_DEPTH,
        mean_nodes_per_theorem=(sum(r["nodes"] for r in results) / len(results)) if results else 0.0,
        mean_elapsed_s=(sum(r["elapsed_s"] for r in results) / len(results)) if results else 0.0,
        proof_length_distribution=dict(sorted(Counter(str(r["proof_length"]) for r in results
                                                      if r["proved"]).items())),
    )


# --------------------------------------------------------------------------- benchmark evaluation


def load_benchmark(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Normalised benchmark records ({name, header, formal_statement, split, source, goal}),
    JSON list or JSONL; the first `limit` in file order."""
    path = Path(path)
    if path.suffix == ".jsonl":
        from burnqed_assets.data.io import iter_jsonl

        records = [r for _, r in iter_jsonl(path)]
    else:
        records = read_json(path)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of benchmark records, got {type(records).__name__}")
    bad = [f"{path}[{i}]: missing {k!r}" for i, r in enumerate(records)
           for k in ("name", "formal_statement") if not (isinstance(r, dict) and r.get(k))]
    if bad:
        from burnqed_assets.data.io import BadInputError, BadLine

        raise BadInputError([BadLine(path, int(b.split("[")[1].split("]")[0]) + 1, b) for b in bad])
    return records[:limit] if limit is not None else records


@dataclass(frozen=True)
class BenchmarkEvaluation:
    """One benchmark search (Tasks 1.4 / 2.6): rate, counts, where the outputs are."""

    proved: int
    attempted: int
    rate: float
    errors: int
    resumed: int
    searched: int
    ebm_guided: bool
    results_path: str
    trajectories_path: str
    proved_names: list[str]
    stats: TrajectoryStats
    endpoint_theorems: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The summary fields (JSON), without the run's fan-out bookkeeping."""
        out = asdict(self)
        out.pop("endpoint_theorems")
        return out


def evaluate_benchmark(problems: Sequence[dict[str, Any]], lean: Any, policy: Policy | Sequence[PolicyEndpoint],
                       settings: Any, scorer: EnergyScorer | None = None, out_path: Path | str | None = None,
                       trajectories_path: Path | str | None = None,
                       verifier_factory: Callable[[Any], Verifier] | None = None,
                       fingerprint: dict[str, Any] | None = None,
                       progress: Callable[[int, int, SearchResult], None] | None = None) -> BenchmarkEvaluation:
    """Search every problem with the evaluation budget (settings.search.eval_max_nodes) and
    write per-problem results to `out_path` (Parquet). With a scorer the priority subtracts
    λ·energy (EBM-guided)."""
    if out_path is None:
        raise ValueError("evaluate_benchmark needs out_path for its per-problem results")
    out_path = Path(out_path)
    traj_path = (Path(trajectories_path) if trajectories_path
                 else out_path.with_name(out_path.stem + "_trajectories.parquet"))
    cfg = settings.search.for_evaluation()
    theorems = theorems_from_records(problems, name_key="name")
    run = run_search(theorems, lean, policy, cfg, traj_path, concurrency=settings.search.concurrency,
                     scorer=scorer, verifier_factory=verifier_factory, fingerprint=fingerprint, progress=progress)
    write_results(run.results, out_path)
    proved, attempted = run.proved, run.attempted
    return BenchmarkEvaluation(
        proved=proved, attempted=attempted, rate=proved / attempted if attempted else 0.0, errors=run.errors,
        resumed=run.resumed, searched=run.searched, ebm_guided=scorer is not None, results_path=str(out_path),
        trajectories_path=str(traj_path), proved_names=[r["theorem"] for r in run.results if r["proved"]],
        stats=run.stats(), endpoint_theorems=run.endpoint_theorems)

"""JointDataset (plan Task 3.1): two interleaved streams for joint SFT + EBM training.

Stream 1: SFT records `{prompt, completion, theorem, source}` (loss on the completion only).
Stream 2: contrastive groups from the iter-0 search trajectories: one positive state (on a
found proof path) with K negatives, `round(K * hard_ratio)` of them hard (siblings of the
positive: children of the same parent expansion), the rest easy (negatives from elsewhere).

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from burnqed_assets.data.io import BadInputError, LineReport, iter_jsonl
from burnqed_assets.data.schema import TRAJECTORY_LABELS

SFT_FIELDS = ("prompt", "completion", "theorem", "source")
TRAJECTORY_COLUMNS = ("theorem", "state_id", "parent_id", "state_pp", "depth", "label")


@dataclass(frozen=True)
class TrajectoryState:
    theorem: str
    state_id: int
    parent_id: int
    state_pp: str
    depth: int
    label: str


@dataclass(frozen=True)
class ContrastiveCandidate:
    """A positive state with the pools its negatives are drawn from."""

    theorem: str
    goal: str  # root goal of the theorem (depth 0)
    positive: TrajectoryState
    siblings: tuple[TrajectoryState, ...]  # negative children of the positive's parent


@dataclass(frozen=True)
class ContrastiveGroup:
    """One InfoNCE row: positive first, then hard negatives, then easy negatives.

    The training step sends the positive and the FIRST hard negative through the backbone
    with gradient; every other negative is embedded without gradient (plan Task 3.4).
    """

    theorem: str
    goal: str
    positive: str
    hard_negatives: tuple[str, ...]
    easy_negatives: tuple[str, ...]
    depth: int

    @property
    def negatives(self) -> tuple[str, ...]:
        return self.hard_negatives + self.easy_negatives


@dataclass
class JointBatch:
    step: int
    sft: list[dict[str, Any]]
    groups: list[ContrastiveGroup]


@dataclass
class TrajectoryReport:
    """What the trajectory reader saw: rows, rejected rows with their location, groups."""

    rows: int = 0
    bad: list[str] = field(default_factory=list)
    positives: int = 0
    negatives: int = 0
    theorems_with_positive: int = 0
    positives_without_siblings: int = 0

    def as_metadata(self) -> dict[str, Any]:
        return {"trajectory_rows": self.rows, "trajectory_bad_rows": len(self.bad),
                "trajectory_bad_examples": self.bad[:10], "positives": self.positives,
                "negatives": self.negatives, "theorems_with_positive": self.theorems_with_positive,
                "positives_without_siblings": self.positives_without_siblings}


def _validate_sft(rec: dict[str, Any]) -> str | None:
    for name in SFT_FIELDS:
        if not isinstance(rec.get(name), str):
            return f"field {name!r} missing or not a string"
    if not rec["completion"].strip():
        return "empty completion"
    return None


def load_sft_records(path: str | Path, report: LineReport | None = None) -> list[dict[str, Any]]:
    """SFT records of a JSONL file; bad lines go to `report` (or raise when there is none)."""
    return [rec for _, rec in iter_jsonl(path, report=report, validate=_validate_sft)]


def read_trajectory_states(path: str | Path, report: TrajectoryReport | None = None) -> list[TrajectoryState]:
    """Trajectory rows as states; a bad row is reported as `file:row N: reason`."""
    path = Path(path)
    table = pq.read_table(path)
    missing = [c for c in TRAJECTORY_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: trajectory file lacks column(s) {missing} (see data.schema.TRAJECTORY_SCHEMA)")
    report = report if report is not None else TrajectoryReport()
    states: list[TrajectoryState] = []
    cols = {c: table.column(c).to_pylist() for c in TRAJECTORY_COLUMNS}
    problems: list[str] = []
    for i in range(table.num_rows):
        row = {c: cols[c][i] for c in TRAJECTORY_COLUMNS}
        reason = None
        if not row["theorem"] or row["state_id"] is None or row["parent_id"] is None or row["depth"] is None:
            reason = "null theorem/state_id/parent_id/depth"
        elif not isinstance(row["state_pp"], str) or not row["state_pp"].strip():
            reason = "empty state_pp"
        elif row["label"] not in TRAJECTORY_LABELS:
            reason = f"label {row['label']!r} not in {TRAJECTORY_LABELS}"
        if reason:
            problems.append(f"{path}:row {i}: {reason}")
            continue
        states.append(TrajectoryState(str(row["theorem"]), int(row["state_id"]), int(row["parent_id"]),
                                      row["state_pp"], int(row["depth"]), row["label"]))
    report.rows += len(states)
    report.bad.extend(problems)
    return states


def build_candidates(states: Sequence[TrajectoryState],
                     report: TrajectoryReport | None = None) -> tuple[list[ContrastiveCandidate], list[str]]:
    """Positive candidates (depth > 0, with a known root goal) and the pool of all negatives."""
    report = report if report is not None else TrajectoryReport()
    by_theorem: dict[str, list[TrajectoryState]] = defaultdict(list)
    for s in states:
        by_theorem[s.theorem].append(s)
    candidates: list[ContrastiveCandidate] = []
    negative_pool: list[str] = []
    for theorem in sorted(by_theorem):
        rows = by_theorem[theorem]
        roots = [s for s in rows if s.parent_id < 0 or s.depth == 0]
        negatives = [s for s in rows if s.label == "negative"]
        negative_pool.extend(s.state_pp for s in negatives)
        report.negatives += len(negatives)
        if not roots:
            continue
        goal = min(roots, key=lambda s: s.state_id).state_pp
        children: dict[int, list[TrajectoryState]] = defaultdict(list)
        for s in negatives:
            children[s.parent_id].append(s)
        positives = [s for s in rows if s.label == "positive" and s.depth > 0]
        report.positives += len(positives)
        if positives:
            report.theorems_with_positive += 1
        for p in sorted(positives, key=lambda s: s.state_id):
            sibs = tuple(s for s in children.get(p.parent_id, []) if s.state_pp != p.state_pp)
            if not sibs:
                report.positives_without_siblings += 1
            candidates.append(ContrastiveCandidate(theorem, goal, p, sibs))
    return candidates, negative_pool


def sample_group(candidate: ContrastiveCandidate, negative_pool: Sequence[str], k_negatives: int,
                 hard_ratio: float, rng: random.Random) -> ContrastiveGroup:
    """K negatives: round(K·hard_ratio) siblings where available, easy ones fill the rest.

    Easy negatives come from the whole negative pool minus the positive and its siblings;
    when the pool is too small they repeat (InfoNCE needs a fixed K per row).
    """
    n_hard = min(len(candidate.siblings), round(k_negatives * hard_ratio))
    hard = [s.state_pp for s in rng.sample(list(candidate.siblings), n_hard)]
    excluded = {candidate.positive.state_pp, *(s.state_pp for s in candidate.siblings)}
    n_easy = k_negatives - n_hard
    easy: list[str] = []
    if n_easy:
        # Rejection sampling keeps this O(K) on a large pool.
        tries = 0
        while len(easy) < n_easy and tries < 20 * n_easy and negative_pool:
            cand = negative_pool[rng.randrange(len(negative_pool))]
            tries += 1
            if cand not in excluded:
                easy.append(cand)
        fallback = [s.state_pp for s in candidate.siblings] or [candidate.goal]
        while len(easy) < n_easy:
            easy.append(fallback[rng.randrange(len(fallback))])
    return ContrastiveGroup(candidate.theorem, candidate.goal, candidate.positive.state_pp,
                            tuple(hard), tuple(easy), candidate.positive.depth)


def split_candidates(candidates: Sequence[ContrastiveCandidate], holdout_theorems: set[str]
                     ) -> tuple[list[ContrastiveCandidate], list[ContrastiveCandidate], bool]:
    """Train on theorems outside `holdout_theorems`, probe on the held-out ones.

    The holdout is the EBM validation split (ebm.dataset.theorem_split), so config C's head is
    scored on theorems the joint run never trained on, like configs A and B. With too few
    theorems one side would be empty: then both use every candidate and the flag says so.
    """
    train = [c for c in candidates if c.theorem not in holdout_theorems]
    probe = [c for c in candidates if c.theorem in holdout_theorems]
    if train and probe:
        return train, probe, True
    return list(candidates), list(candidates), False


def trajectory_holdout(path: str | Path, val_fraction: float, seed: int) -> set[str]:
    """The EBM phase's validation theorems for these trajectories (same function, same seed)."""
    from burnqed_assets.ebm.dataset import theorem_split

    frame = pq.read_table(path, columns=["theorem", "proved"]).to_pandas()
    frame["proved"] = frame["proved"].fillna(False).astype(bool)
    return theorem_split(frame, val_fraction, seed)[1]


class JointDataset:
    """Interleaves the SFT stream and the contrastive stream: each step takes one batch of each.

    Each stream walks a seeded permutation of its items, reshuffled every epoch; negatives are
    re-sampled per step. `batch(step)` depends only on (seed, step).
    """

    def __init__(self, sft_records: Sequence[dict[str, Any]], candidates: Sequence[ContrastiveCandidate],
                 negative_pool: Sequence[str], k_negatives: int = 3, hard_ratio: float = 0.6,
                 sft_batch_size: int = 4, contrastive_batch_size: int = 4, seed: int = 42):
        if not sft_records:
            raise ValueError("JointDataset: no SFT records (is data/sft/train.jsonl empty?)")
        if not candidates:
            raise ValueError("JointDataset: no contrastive positives with a root goal in the trajectories "
                             "(the iter-0 search proved nothing, or labels are missing)")
        self.sft_records = list(sft_records)
        self.candidates = list(candidates)
        self.negative_pool = list(negative_pool)
        self.k_negatives = k_negatives
        self.hard_ratio = hard_ratio
        self.sft_batch_size = sft_batch_size
        self.contrastive_batch_size = contrastive_batch_size
        self.seed = seed
        self._perms: dict[tuple[int, int, int], list[int]] = {}

    def _permutation(self, n_items: int, seed: int, epoch: int) -> list[int]:
        # Cached: shuffling 300K SFT records for every item of every step would cost ~0.5 s/step.
        key = (n_items, seed, epoch)
        if key not in self._perms:
            perm = list(range(n_items))
            random.Random(f"{seed}:{epoch}").shuffle(perm)
            if len(self._perms) >= 4:
                self._perms.pop(next(iter(self._perms)))
            self._perms[key] = perm
        return self._perms[key]

    def _take(self, n_items: int, batch_size: int, step: int, seed: int) -> list[int]:
        """Indices of the items a step uses: the step's window of the per-epoch permutations."""
        out: list[int] = []
        start = step * batch_size
        for pos in range(start, start + batch_size):
            epoch, offset = divmod(pos, n_items)
            out.append(self._permutation(n_items, seed, epoch)[offset])
        return out

    def batch(self, step: int) -> JointBatch:
        sft_idx = self._take(len(self.sft_records), self.sft_batch_size, step, self.seed)
        grp_idx = self._take(len(self.candidates), self.contrastive_batch_size, step, self.seed + 1)
        rng = random.Random(f"{self.seed}:negatives:{step}")
        groups = [sample_group(self.candidates[i], self.negative_pool, self.k_negatives, self.hard_ratio, rng)
                  for i in grp_idx]
        return JointBatch(step, [self.sft_records[i] for i in sft_idx], groups)

    def fixed_groups(self, candidates: Sequence[ContrastiveCandidate], max_groups: int) -> list[ContrastiveGroup]:
        """Deterministic groups for the separation probe (same negatives at every eval)."""
        rng = random.Random(f"{self.seed}:probe")
        chosen = list(candidates)
        rng.shuffle(chosen)  # spread over theorems rather than the first few by name
        chosen = chosen[:max_groups]
        return [sample_group(c, self.negative_pool, self.k_negatives, self.hard_ratio, rng) for c in chosen]


def raise_if_bad(report: LineReport, path: Path, max_bad_fraction: float = 0.0) -> None:
    """Stop when more lines are bad than allowed (the message lists file:line: reason)."""
    total = report.rows + report.bad_count
    if report.bad_count and report.bad_count > max_bad_fraction * max(total, 1):
        raise BadInputError(report.bad, total)

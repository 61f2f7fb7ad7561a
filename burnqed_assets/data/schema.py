"""Record schemas shared by every step (DESIGN.md: Data formats). Field names follow the plan."""

from __future__ import annotations

from typing import Any, TypedDict

import pyarrow as pa

# Source labels and theorem-name prefixes (source-prefixed names make dedup safe).
GOEDEL_SOURCE = "goedel_workbook"
LEAN_GITHUB_SOURCE = "lean_github"
SOURCE_PREFIX = {GOEDEL_SOURCE: "goedel::", LEAN_GITHUB_SOURCE: "github::"}

# The plan's M.6 contamination keywords (tactic) and state markers.
BANNED_TACTIC_WORDS = ("sorry", "admit", "cheat", "sorryAx")
BANNED_STATE_WORDS = ("sorry", "sorryAx")
TURNSTILE = "⊢"


class TracedPair(TypedDict, total=False):
    theorem: str  # source-prefixed, e.g. "goedel::lean_workbook_10009"
    state: str  # pretty-printed goal state before the tactic
    tactic: str
    state_after: str | None
    depth: int  # 0 = root state of the proof
    source: str


class SftRecord(TypedDict):
    prompt: str
    completion: str
    theorem: str
    source: str


class BenchmarkProblem(TypedDict, total=False):
    name: str
    header: str
    formal_statement: str
    split: str
    source: str  # "minif2f_v2s" | "minif2f_v2c" | "minif2f_v1"
    goal: str | None  # pretty-printed root goal where known


def prefixed(source: str, name: str) -> str:
    prefix = SOURCE_PREFIX[source]
    return name if name.startswith(prefix) else prefix + name


# Trajectory rows (data/trajectories/*.parquet): one row per search node.
TRAJECTORY_SCHEMA = pa.schema(
    [
        ("theorem", pa.string()),
        ("state_id", pa.int64()),  # unique within a theorem's search
        ("parent_id", pa.int64()),  # -1 for the root
        ("state_pp", pa.string()),
        ("tactic", pa.string()),  # tactic that produced this state ("" at the root)
        ("depth", pa.int32()),
        ("llm_logprob", pa.float64()),  # log-prob of `tactic` under the policy
        ("cumulative_logprob", pa.float64()),
        ("energy", pa.float64()),  # null when no EBM guided the search
        ("label", pa.string()),  # positive | negative | unknown
        ("sibling_group", pa.int64()),  # = parent_id: children of one expansion
        ("proved", pa.bool_()),  # the theorem was proved in this search
        ("expanded", pa.bool_()),
        ("elapsed_s", pa.float64()),  # time from search start to node creation
    ]
)

TRAJECTORY_LABELS = ("positive", "negative", "unknown")

# Embeddings (data/embeddings/iter_N/*.parquet).
STATE_EMBEDDING_SCHEMA = pa.schema(
    [
        ("theorem", pa.string()),
        ("state_id", pa.int64()),
        ("embedding", pa.list_(pa.float32())),
    ]
)
GOAL_EMBEDDING_SCHEMA = pa.schema([("theorem", pa.string()), ("embedding", pa.list_(pa.float32()))])


def trajectory_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRAJECTORY_SCHEMA)

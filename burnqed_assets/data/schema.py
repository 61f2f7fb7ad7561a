"""Record schemas shared by every step (DESIGN.md: Data formats). Field names follow the plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
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


TRAJECTORY_LABELS = ("positive", "negative", "unknown")


def _arrow_schemas() -> dict[str, Any]:
    """The Parquet schemas, built on first use: importing this module (every data step does)
    then costs no pyarrow import, ~35 MB of RSS in a step that never writes these files."""
    import pyarrow as pa

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
    # Embeddings (data/embeddings/iter_N/) are no Parquet schema: an .npy matrix + a Parquet index
    # per kind, see ebm.store.
    return {"TRAJECTORY_SCHEMA": TRAJECTORY_SCHEMA}


def __getattr__(name: str) -> Any:  # PEP 562: TRAJECTORY_SCHEMA & co. are built when first asked for
    if name == "TRAJECTORY_SCHEMA":
        if name in globals():
            return globals()[name]
        schemas = _arrow_schemas()
        globals().update(schemas)
        return schemas[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def trajectory_table(rows: list[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=__getattr__("TRAJECTORY_SCHEMA"))

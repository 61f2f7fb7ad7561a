"""Profiles (`demo` | `full`) and every number the graph uses.

`BURNQED_PROFILE` picks the profile (default `demo`); `BURNQED_DATA_ROOT` moves the
generated data (default `<repo>/data/profiles/<profile>`: one root per profile, see
data_root.py). The `full` profile carries the plan's numbers;
`demo` scales inputs, budgets and thresholds to the shipped samples so the whole graph
runs offline on a 2-core CPU in minutes. A demo number is never a research result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from burnqed_assets import paths as layout
from burnqed_assets.ebm.config import TEMPERATURE_CEILING, TEMPERATURE_FLOOR, EbmConfig
from burnqed_assets.joint.config import JointConfig
from burnqed_assets.models.config import SftConfig
from burnqed_assets.paths import DEMO_INPUTS, REPO_ROOT, Paths, default_data_root
from burnqed_assets.search.config import SearchConfig

__all__ = ["DEMO_INPUTS", "REPO_ROOT", "Paths"]  # re-exported: the layout itself lives in paths.py

# The trainer/engine sections are the domain's own config classes (one definition each); these
# names are kept for callers that spell them the old way.
SftSettings = SftConfig
EbmSettings = EbmConfig
JointSettings = JointConfig
SearchSettings = SearchConfig
PROFILE_ENV = "BURNQED_PROFILE"
DATA_ROOT_ENV = "BURNQED_DATA_ROOT"

# Tag that routes an op to the GPU concurrency pool (executor tag_concurrency_limits).
GPU_TAG_KEY = "burnqed/resource"
GPU_TAG = {GPU_TAG_KEY: "gpu"}
# Run-level tag of every run with a GPU step (set by run_coordinator.GpuRunCoordinator at
# submission); the instance's run queue allows one such run at a time (deploy/dagster*.yaml).
GPU_RUN_TAG_KEY = "burnqed/gpu_run"
GPU_RUN_TAG = {GPU_RUN_TAG_KEY: "true"}

class MissingInputError(FileNotFoundError):
    """A profile input is absent; the message names the path and how to obtain it."""

@dataclass(frozen=True)
class InputSpec:
    """One raw input of the plan, with the instruction a user needs when it is missing."""

    path: Path
    how_to_obtain: str

@dataclass(frozen=True)
class Inputs:
    goedel_proofs: InputSpec
    goedel_recorded_traces: InputSpec
    lean_github: InputSpec
    minif2f_v2s: InputSpec
    minif2f_v2c: InputSpec
    minif2f_v1: InputSpec
    lean_repl_transcripts: InputSpec
    rename_table: InputSpec

    def all(self) -> dict[str, InputSpec]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

@dataclass(frozen=True)
class ModelSettings:
    # Directory of a standard HF model; in demo the `base_model` asset builds it.
    base_model_path: Path
    base_model_id: str
    how_to_obtain: str
    dtype: str = "float32"  # "bfloat16" on GPU
    device: str = "auto"  # "auto" picks cuda when present

@dataclass(frozen=True)
class LeanSettings:
    # "repl": Lean through lean-interact (full) | "standin": the REPL stand-in program (demo).
    # Same client, pool, tracer and verifier either way (docs/lean.md).
    backend: str
    lean_version: str = "v4.27.0"
    mathlib_rev: str = "v4.27.0"  # the Mathlib tag pinned in the migrated Lake project's lakefile
    project_dir: Path | None = None
    command_timeout_s: float = 60.0  # one REPL request
    theorem_timeout_s: float = 120.0  # one theorem; its clock starts once its header env is ready
    memory_cap_mb: int = 8192  # per REPL process tree: killed above it (and RLIMIT_AS)
    # Recycle a REPL between theorems (never inside one) once its measured RSS is above this;
    # None: 75% of memory_cap_mb.
    recycle_rss_mb: float | None = None
    restart_every: int = 0  # also recycle after this many commands (0: memory only)
    trace_chunk_size: int = 500
    # Warm REPL workers shared by migration, tracing and verification: the plan's min(16, 0.75 x cpu).
    pool_workers: int = field(default_factory=lambda: min(16, max(1, int((os.cpu_count() or 1) * 0.75))))
    allowed_axioms: tuple[str, ...] = ("propext", "Classical.choice", "Quot.sound")
    # M.5 tracer: "repl" (the REPL's allTactics through the warm pool, default) | "leandojo" (the `full` extra)
    tracer: str = "repl"
    # "bwrap" (required), "auto" (bwrap where it runs, else rlimits with the reason in metadata),
    # "rlimits" (no namespaces; a documented choice). See lean/launcher.py.
    sandbox: str = "auto"
    # The elan home holding the toolchain (read-only in the sandbox); None: $ELAN_HOME, else ~/.elan
    elan_home: Path | None = None
    standin_import_latency_s: float = 0.0  # stand-in only: simulated `import Mathlib` time

    @property
    def recycle_threshold_mb(self) -> float:
        return self.recycle_rss_mb if self.recycle_rss_mb is not None else 0.75 * self.memory_cap_mb
    # Dagster partitions of goedel_traced_pairs: chunk_000 .. chunk_<trace_partitions-1>, each
    # `trace_chunk_size` migrated theorems in order (capacity = partitions x chunk size).
    trace_partitions: int = 64


@dataclass(frozen=True)
class PoolSettings:
    """Where the warm Lean worker pool runs (docs/operations.md); its size is
    `lean.pool_workers`, its REPL limits and recycling are the `lean` settings.

    backend "ray": one Ray actor per warm `LeanWorker`. mode "local" joins `RAY_ADDRESS` when it
    is set, else starts a Ray instance on this machine; mode "cluster" requires `RAY_ADDRESS` /
    `ray_address`. backend "local" (also the fallback when Ray is not installed): the workers
    run on threads of the step's process (`LocalLeanPool`). Each actor reserves CPU and memory
    with Ray's scheduler, so a node never carries more REPLs than fit (a Mathlib REPL holds ~6.5 GB).
    """

    backend: str = "ray"  # "ray" | "local"
    mode: str = "local"  # "local" | "cluster"
    ray_address: str | None = None  # overrides RAY_ADDRESS
    actor_num_cpus: float = 1.0
    actor_memory_mb: int | None = None  # None: lean.memory_cap_mb + 512 (the actor's own Python)
    max_restarts: int = 2  # Ray restarts a dead actor this often and retries its in-flight item
    object_store_mb: int = 200  # a Ray started here: items and rows are small, never tensors


@dataclass(frozen=True)
class ExecutorSettings:
    kind: str  # "multiprocess" | "in_process"
    max_concurrent: int
    gpu_concurrency: int = 1

@dataclass(frozen=True)
class DataSettings:
    seed: int = 42
    val_fraction: float = 0.05
    lean_github_trivial_keep_rate: float = 0.1
    lean_github_max_state_chars: int = 4096
    contrastive_min_depth: int = 3
    contrastive_fallback_depth: int = 2
    contrastive_min_theorems: int = 3000
    # Decontamination: a state sharing this many consecutive tokens with a benchmark root goal
    # (half of them in its conclusion) is a match (data/decontam.py; 16 already matched
    # unrelated Lean Workbook inequalities in the demo sample, 20 matched none).
    decontam_ngram_tokens: int = 20
    token_length_percentiles: tuple[int, ...] = (50, 75, 90, 95, 99)
    sft_max_length_candidates: tuple[int, ...] = (1024, 1536, 2048, 3072)
    encode_max_length_candidates: tuple[int, ...] = (256, 384, 512, 768, 1024)
    truncation_budget: float = 0.02

@dataclass(frozen=True)
class Thresholds:
    """Gates (ERROR, blocking) and success metrics (WARN). Plan: Success Metrics, ABORT lines."""

    # Phase M / 0 gates
    max_contaminated_pairs: int = 0
    min_clean_pool_fraction: float = 0.90
    min_sft_pairs: int = 150_000
    max_top5_tactic_share: float = 0.70
    min_contrastive_pool: int = 3000
    migration_survival_target: float = 0.95
    migration_survival_red_line: float = 0.90
    max_tracing_failure_rate: float = 0.20
    min_benchmark_compile_rate: float = 1.0
    # Phase 1
    sft_val_loss_target: float = 0.50
    sft_val_loss_red_line: float = 0.65
    minif2f_llm_target: float = 0.35
    minif2f_llm_red_line: float = 0.25
    min_deep_state_share: float = 0.20  # depth >= 4
    # Phase 2
    minif2f_ebm_target: float = 0.40
    minif2f_ebm_red_line: float = 0.35
    centroid_l2_target: float = 5.0
    centroid_l2_red_line: float = 3.0
    linear_probe_target: float = 0.75
    linear_probe_red_line: float = 0.65
    rank1_d4_target: float = 0.30
    rank1_d4_red_line: float = 0.25
    sibling_discrimination_target: float = 0.12
    sibling_discrimination_red_line: float = 0.10
    # Phase 3 joint abort conditions
    joint_centroid_l2_abort: float = 3.0
    joint_sft_loss_abort: float = 0.5
    joint_rank1_abort: float = 0.25
    temperature_floor: float = TEMPERATURE_FLOOR  # the head's clamp bounds (ebm/config.py)
    temperature_ceiling: float = TEMPERATURE_CEILING
    # Red lines are ERROR (blocking) in full; demo reports them as WARN.
    red_lines_block: bool = True

@dataclass(frozen=True)
class Settings:
    profile: str
    data_root: Path
    inputs: Inputs
    model: ModelSettings
    lean: LeanSettings
    executor: ExecutorSettings
    data: DataSettings = DataSettings()
    sft: SftConfig = SftConfig()
    search: SearchConfig = SearchConfig()
    pool: PoolSettings = PoolSettings()
    ebm: EbmConfig = EbmConfig()
    joint: JointConfig = JointConfig()
    thresholds: Thresholds = Thresholds()

    @property
    def paths(self) -> Paths:
        return Paths(self.data_root)

    @property
    def is_demo(self) -> bool:
        return self.profile == "demo"

    def require_inputs(self, *names: str) -> None:
        """Fail at once, naming the path and how to obtain it, when an input is missing."""
        specs = self.inputs.all()
        wanted = names or tuple(specs)
        missing = [(n, specs[n]) for n in wanted if not specs[n].path.exists()]
        if missing:
            lines = [f"profile {self.profile!r}: missing input(s):"]
            for name, spec in missing:
                lines.append(f"  - {name}: {spec.path}\n    obtain it: {spec.how_to_obtain}")
            raise MissingInputError("\n".join(lines))

def _demo(data_root: Path) -> Settings:
    shipped = "shipped with the repository under data/demo (restore it with `git checkout data/demo`)"
    return Settings(
        profile="demo",
        data_root=data_root,
        inputs=Inputs(
            goedel_proofs=InputSpec(layout.DEMO_GOEDEL_PROOFS, shipped),
            goedel_recorded_traces=InputSpec(layout.DEMO_RECORDED_TRACES, shipped),
            lean_github=InputSpec(layout.DEMO_LEAN_GITHUB, shipped),
            minif2f_v2s=InputSpec(layout.DEMO_MINIF2F_V2S, shipped),
            minif2f_v2c=InputSpec(layout.DEMO_MINIF2F_V2C, shipped),
            minif2f_v1=InputSpec(layout.DEMO_MINIF2F_V1, shipped),
            lean_repl_transcripts=InputSpec(layout.DEMO_LEAN_REPL_TRANSCRIPTS, shipped),
            rename_table=InputSpec(layout.DEMO_RENAME_TABLE, shipped),
        ),
        model=ModelSettings(
            base_model_path=Paths(data_root).base_model("demo-tiny-llama"),
            base_model_id="burnqed/demo-tiny-llama",
            how_to_obtain="built by the `base_model` asset (materialize it first)",
        ),
        lean=LeanSettings(backend="standin", command_timeout_s=10.0, theorem_timeout_s=20.0,
                          trace_chunk_size=50, trace_partitions=3, memory_cap_mb=2048, standin_import_latency_s=0.2),
        # With backend "ray": half a CPU and 512 MB reserved per actor (the stand-in REPL is small)
        pool=PoolSettings(backend="local", actor_num_cpus=0.5, actor_memory_mb=512),
        executor=ExecutorSettings(kind="in_process", max_concurrent=2),
        data=DataSettings(contrastive_min_theorems=20),
        # demo SFT: 300 steps at lr 6e-3 on one thread (docs/models.md: val loss 2.88 -> 1.76, ~1 min);
        # enough for the tiny model to reproduce its training tactics, so demo search finds proofs.
        sft=SftConfig(epochs=1.0, max_steps=300, batch_size=8, grad_accumulation=1, learning_rate=6e-3,
                      eval_steps=25, save_steps=25, logging_steps=6, warmup_ratio=0.05, cpu_threads=1),
        # timeout_s is only a safety net here: max_nodes ends every demo search, so a loaded
        # machine cannot cut a search short and change the numbers (same inputs, same results)
        # 30 theorems in chunks of 10: the trajectory search's 3 partitions (chunk_000 .. chunk_002)
        search=SearchConfig(max_nodes=40, timeout_s=600.0, eval_max_nodes=24, num_candidates=8,
                              concurrency=2, max_theorems=30, max_eval_theorems=40, trajectory_chunk_size=10,
                              policy_backend="transformers", max_new_tokens=96, cpu_threads=1),
        ebm=EbmConfig(epochs=30, learning_rate=1e-3, k_negatives=3, batch_size=16,
                        encode_max_length=256, embed_batch_size=16, val_fraction=0.25,
                        silhouette_min_states=10, cpu_threads=1,
                        embedding_dtype="float32"),  # tiny d: exact float32, as before the store
        joint=JointConfig(lora_r=8, lora_alpha=16, lr_lora=1e-3, lr_ebm=1e-3, total_steps=40,
                            warmup_steps=4, log_every=5, eval_every=20, save_every=20,
                            abort_after_step=30, temperature_stuck_steps=25, probe_max_groups=24,
                            cpu_threads=1, gradient_checkpointing=False),
        thresholds=Thresholds(
            min_sft_pairs=100,
            min_contrastive_pool=20,
            min_clean_pool_fraction=0.90,
            # per token of the demo tokenizer; red line = the demo base's val loss before SFT
            # (~3.96: SFT learned nothing); measured after SFT ~2.86 (docs/models.md)
            sft_val_loss_target=3.0,
            sft_val_loss_red_line=3.9,
            minif2f_llm_target=0.05,
            minif2f_llm_red_line=0.0,
            min_deep_state_share=0.05,
            minif2f_ebm_target=0.05,
            minif2f_ebm_red_line=0.0,
            centroid_l2_target=0.5,
            centroid_l2_red_line=0.0,
            linear_probe_target=0.55,
            linear_probe_red_line=0.0,
            rank1_d4_target=0.2,
            rank1_d4_red_line=0.0,
            sibling_discrimination_target=0.05,
            sibling_discrimination_red_line=0.0,
            joint_centroid_l2_abort=0.0,
            joint_sft_loss_abort=6.0,
            joint_rank1_abort=0.0,
            red_lines_block=False,
        ),
    )

def _full(data_root: Path) -> Settings:
    p = Paths(data_root)
    return Settings(
        profile="full",
        data_root=data_root,
        inputs=Inputs(
            goedel_proofs=InputSpec(
                p.raw_goedel_proofs,
                "git clone the Goedel-LM/Lean-workbook-proofs dataset into this directory "
                "(HF: `huggingface-cli download Goedel-LM/Lean-workbook-proofs --repo-type dataset --local-dir <path>`)",
            ),
            goedel_recorded_traces=InputSpec(
                p.goedel_traced_pairs,
                "produced by the `goedel_traced_pairs` asset (LeanDojo tracing); not needed as a raw input",
            ),
            lean_github=InputSpec(
                p.raw_lean_github,
                "`huggingface-cli download internlm/Lean-Github --repo-type dataset --local-dir <path>`",
            ),
            minif2f_v2s=InputSpec(
                p.raw_minif2f_v2s,
                "copy datasets/miniF2F_v2s.jsonl from the miniF2F-v2 repository (roozbeh-yz/miniF2F_v2)",
            ),
            minif2f_v2c=InputSpec(
                p.raw_minif2f_v2c,
                "copy datasets/miniF2F_v2c.jsonl from the miniF2F-v2 repository (roozbeh-yz/miniF2F_v2)",
            ),
            minif2f_v1=InputSpec(
                p.raw_minif2f_v1,
                "copy datasets/minif2f.jsonl from deepseek-ai/DeepSeek-Prover-V1.5",
            ),
            lean_repl_transcripts=InputSpec(
                layout.DEMO_LEAN_REPL_TRANSCRIPTS, "shipped with the repository under data/demo/lean_repl"
            ),
            rename_table=InputSpec(
                layout.DEMO_RENAME_TABLE,
                "shipped with the repository under data/demo/migration",
            ),
        ),
        model=ModelSettings(
            base_model_path=p.base_model("deepseek-prover-v2-7b"),
            base_model_id="deepseek-ai/DeepSeek-Prover-V2-7B",
            how_to_obtain="`huggingface-cli download deepseek-ai/DeepSeek-Prover-V2-7B --local-dir <path>` "
            "on a machine with network access, then copy the directory here",
            dtype="bfloat16",
        ),
        lean=LeanSettings(backend="repl", project_dir=p.lean_project, sandbox="bwrap"),
        executor=ExecutorSettings(kind="multiprocess", max_concurrent=8),
        sft=SftConfig(epochs=1.0, logging_steps=50),
    )

PROFILES = {"demo": _demo, "full": _full}

def get_settings(profile: str | None = None, data_root: str | Path | None = None) -> Settings:
    """The active profile's settings (`BURNQED_PROFILE`, default demo)."""
    name = (profile or os.environ.get(PROFILE_ENV) or "demo").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown {PROFILE_ENV}={name!r}; choose one of {sorted(PROFILES)}")
    root = Path(data_root or os.environ.get(DATA_ROOT_ENV) or default_data_root(name)).resolve()
    return PROFILES[name](root)

def with_overrides(settings: Settings, **sections: object) -> Settings:
    """A copy with whole sections replaced (tests use this to shrink budgets)."""
    return replace(settings, **sections)

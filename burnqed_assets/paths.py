"""The data/ layout: every artefact path of the graph, in one place (plan: Directory Structure).

Ground floor: imports nothing from the package. `settings.Settings.paths` hands out a `Paths`
for the profile's data root; the domain and the defs layer ask it for every file they read or
write, so a layout change is made here once. File names that a writer (domain) and its readers
(checks, reports, later phases) share are the constants below.

Guarded by burnqed_assets_tests/graph/test_paths_single_source.py: no module outside this one
joins a string literal onto a path (`x / "name"`), except the listed artefact-internal formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_INPUTS = REPO_ROOT / "data" / "demo"
DEFAULT_DATA_ROOT = REPO_ROOT / "data"
# One data root per profile by default, beside (never inside) the shipped demo inputs.
PROFILE_DATA_ROOTS = DEFAULT_DATA_ROOT / "profiles"
PROFILE_MARKER_FILE = ".burnqed_profile.json"  # which profile owns a data root (data_root.py)
FINGERPRINTS_DIR = ".fingerprints"  # one JSON per asset: the inputs of its last output (reuse.py)


def default_data_root(profile: str) -> Path:
    """`<repo>/data/profiles/<profile>`."""
    return PROFILE_DATA_ROOTS / profile

# --- repository files (not under the data root) ------------------------------------------------
K8S_EXECUTOR_CONFIG = REPO_ROOT / "deploy" / "k8s" / "executor.yaml"
CATALOGUE_DOC = REPO_ROOT / "docs" / "catalogue.md"
DEMO_FIGURES_DOC = REPO_ROOT / "docs" / "demo_figures.md"

# --- demo raw inputs shipped under data/demo -----------------------------------------------------
DEMO_GOEDEL_PROOFS = DEMO_INPUTS / "goedel" / "goedel_workbook_proofs.jsonl"
DEMO_RECORDED_TRACES = DEMO_INPUTS / "traced"  # *_traces.jsonl recorded/derived traces, *statements.jsonl
DEMO_LEAN_GITHUB = DEMO_INPUTS / "lean_github" / "lean_github_rows.jsonl"
DEMO_MINIF2F_V2S = DEMO_INPUTS / "benchmarks" / "miniF2F_v2s.jsonl"
DEMO_MINIF2F_V2C = DEMO_INPUTS / "benchmarks" / "miniF2F_v2c.jsonl"
DEMO_MINIF2F_V1 = DEMO_INPUTS / "benchmarks" / "minif2f_v1.jsonl"
DEMO_LEAN_REPL_TRANSCRIPTS = DEMO_INPUTS / "lean_repl"
# The REPL binary inside lean-interact's REPL cache directory (built by `lake build`).
LEAN_REPL_BIN_IN_CACHE = Path(".lake", "build", "bin", "repl")
DEMO_RENAME_TABLE = DEMO_INPUTS / "migration" / "rename_table.json"
DEMO_MINIF2F_SEARCH_TRACES = DEMO_INPUTS / "raw_samples" / "real_internlm_minif2f_sstrace_pairs.jsonl"
# Folders of the demo inputs the demo tokenizer learns from (no benchmarks: those are eval data).
DEMO_TOKENIZER_CORPUS_DIRNAMES = ("traced", "goedel", "lean_github")

# --- file names shared between a writer and its readers ------------------------------------------
SFT_TRAIN_FILE = "train.jsonl"
SFT_VAL_FILE = "val.jsonl"
SFT_STATS_FILE = "stats.json"
# what the SFT writer measured on the split it wrote (read by the split checks while train/val are unchanged)
SFT_SPLIT_CHECK_FILE = "split_check.json"
SFT_METRICS_FILE = "sft_metrics.json"
# embeddings (ebm.store): per kind an (N, d) .npy matrix and a Parquet index (theorem[, state_id], row)
STATE_EMBEDDINGS_MATRIX_FILE = "state_embeddings.npy"
STATE_EMBEDDINGS_INDEX_FILE = "state_index.parquet"
GOAL_EMBEDDINGS_MATRIX_FILE = "goal_embeddings.npy"
GOAL_EMBEDDINGS_INDEX_FILE = "goal_index.parquet"
LEGACY_STATE_EMBEDDINGS_FILE = "state_embeddings.parquet"  # the list<float32> layout, refused with a hint
LEGACY_GOAL_EMBEDDINGS_FILE = "goal_embeddings.parquet"
EMBEDDINGS_MANIFEST_FILE = "embeddings_manifest.json"  # fingerprint of the trajectories embedded
EMBEDDING_METRICS_FILE = "embedding_metrics.json"
EBM_HEAD_FILE = "goal_conditioned_head.pt"
EBM_TRAINING_FILE = "ebm_training.json"
EBM_METRICS_FILE = "ebm_metrics.json"
PLOTS_DIRNAME = "plots"
# LoRA run directory (models.sft): the PEFT adapter and the run's bookkeeping
ADAPTER_DIRNAME = "adapter"
RUN_FINGERPRINT_FILE = "run_fingerprint.json"  # also the search run's resume fingerprint
SFT_HISTORY_FILE = "trainer_log_history.json"
SFT_LOSS_CURVE_FILE = "loss_curve.png"
SFT_RESULT_FILE = "sft_result.json"
# joint training checkpoint directory (joint.train)
JOINT_RUN_SUMMARY_FILE = "joint_run.json"
JOINT_SMOKE_FILE = "smoke_step.json"
JOINT_CHECKPOINT_PREFIX = "checkpoint-"
# release bundle (data.release)
RELEASE_PROOFS_FILE = "proofs.parquet"
RELEASE_PAIRS_FILE = "pairs.parquet"
RELEASE_DROPPED_FILE = "dropped_theorems.json"
RELEASE_TOOLCHAIN_FILE = "lean-toolchain"
RELEASE_CHANGELOG_FILE = "CHANGELOG.md"
RELEASE_MANIFEST_FILE = "manifest.json"

# Configs of the A/B/C comparison (plan Task 4.3): where each keeps its EBM head and evaluations.
EBM_CONFIGS = ("A", "B", "C")


def iter_dir(iteration: int) -> str:
    return f"iter_{iteration}"


@dataclass(frozen=True)
class MigrationPaths:
    """Phase M.1–M.3 outputs (data/lean/workbook/goedel_proofs_427)."""

    dir: Path
    lean: Path
    proofs: Path
    changelog: Path
    dropped: Path
    summary: Path
    lake_project: Path  # the migrated proofs as a Lake project (one module per proof, git commit)
    checkpoints: Path  # one result file + done marker per migration chunk (Dagster partition)

    def as_dict(self) -> dict[str, Path]:
        return dict(vars(self))


@dataclass(frozen=True)
class BenchmarkPaths:
    """One ported benchmark (M.4): all splits, test (search reads it), valid, compile report."""

    all_splits: Path
    test: Path
    test_jsonl: Path
    valid: Path
    compile_report: Path

    def as_dict(self) -> dict[str, Path]:
        return {"all": self.all_splits, "test": self.test, "test_jsonl": self.test_jsonl,
                "valid": self.valid, "compile_report": self.compile_report}


@dataclass(frozen=True)
class TracePaths:
    """M.5 tracing: the pairs, the resumable chunk checkpoints, the report."""

    pairs: Path
    checkpoints: Path
    report: Path

    def as_dict(self) -> dict[str, Path]:
        return dict(vars(self))


@dataclass(frozen=True)
class SearchEvalPaths:
    """One benchmark evaluation (Tasks 1.4 / 2.6): trajectories, per-problem results, summary."""

    trajectories: Path
    results: Path
    summary: Path

    def as_dict(self) -> dict[str, Path]:
        return dict(vars(self))


@dataclass(frozen=True)
class SearchChunkPaths:
    """One chunk (Dagster partition) of the trajectory search: its trees, its per-theorem
    results, and the done marker written last (a finished chunk is never searched again)."""

    trajectories: Path
    results: Path
    done: Path

    def as_dict(self) -> dict[str, Path]:
        return dict(vars(self))


@dataclass(frozen=True)
class EbmConfigPaths:
    """A config of the comparison: its EBM head and the directory of its EBM evaluations."""

    dir: Path
    head: Path

    @property
    def training_summary(self) -> Path:
        return self.dir / EBM_TRAINING_FILE

    @property
    def metrics(self) -> Path:
        return self.dir / EBM_METRICS_FILE

    @property
    def plots(self) -> Path:
        return self.dir / PLOTS_DIRNAME

    @property
    def training_plot(self) -> Path:
        return self.plots / "ebm_training.png"


@dataclass(frozen=True)
class Paths:
    """The plan's data/ layout under one root."""

    root: Path

    def __getattr__(self, name: str) -> Path:  # pragma: no cover - only for typos
        raise AttributeError(f"Paths has no entry {name!r}; add it to burnqed_assets/paths.py")

    # ------------------------------------------------------------------ raw inputs of the full profile
    @property
    def raw_goedel_proofs(self) -> Path:
        return self.root / "lean" / "workbook" / "Lean-workbook-proofs"

    @property
    def raw_lean_github(self) -> Path:
        return self.root / "lean" / "lean_github"

    @property
    def raw_minif2f_v2s(self) -> Path:
        return self.benchmarks / "minif2f_v2" / "miniF2F_v2s.jsonl"

    @property
    def raw_minif2f_v2c(self) -> Path:
        return self.benchmarks / "minif2f_v2" / "miniF2F_v2c.jsonl"

    @property
    def raw_minif2f_v1(self) -> Path:
        return self.benchmarks / "minif2f_v1" / "minif2f.jsonl"

    @property
    def lean_project(self) -> Path:
        return self.root / "lean" / "lean427_project"

    # ------------------------------------------------------------------ Phase M
    @property
    def goedel_source_dir(self) -> Path:
        return self.root / "lean" / "workbook" / "goedel_proofs_source"

    @property
    def goedel_source_proofs(self) -> Path:
        return self.goedel_source_dir / "proofs.jsonl"

    @property
    def goedel_427_dir(self) -> Path:
        return self.root / "lean" / "workbook" / "goedel_proofs_427"

    @property
    def migration(self) -> MigrationPaths:
        d = self.goedel_427_dir
        return MigrationPaths(dir=d, lean=d / "proofs", proofs=d / "migrated_proofs.jsonl",
                              changelog=d / "changelog.json", dropped=d / "dropped.jsonl",
                              summary=d / "migration_summary.json", lake_project=d / "lake_project",
                              checkpoints=d / "checkpoints")

    @property
    def benchmarks(self) -> Path:
        return self.root / "benchmarks"

    def benchmark(self, stem: str) -> BenchmarkPaths:
        """The plan's names: `<stem>_test_427.json` (search reads it), plus valid and all splits.
        v1 keeps its historical name `minif2f_v1_test.json` (statements ported all the same)."""
        b = self.benchmarks
        suffix = "" if stem == "minif2f_v1" else "_427"
        return BenchmarkPaths(all_splits=b / f"{stem}{suffix}.json", test=b / f"{stem}_test{suffix}.json",
                              test_jsonl=b / f"{stem}_test{suffix}.jsonl", valid=b / f"{stem}_valid{suffix}.json",
                              compile_report=b / f"{stem}{suffix}_compile_report.json")

    @property
    def traced(self) -> Path:
        return self.root / "traced"

    @property
    def goedel_traced_pairs(self) -> Path:
        return self.traced / "goedel_427_pairs.jsonl"

    @property
    def tracing(self) -> TracePaths:
        return TracePaths(pairs=self.goedel_traced_pairs, checkpoints=self.traced / "checkpoints" / "goedel_427",
                          report=self.traced / "goedel_427_trace_report.json")

    @property
    def clean_pairs(self) -> Path:
        return self.traced / "goedel_427_clean_pairs.jsonl"

    @property
    def clean_pool_report(self) -> Path:
        """The sweep's full report (counts, file:line examples, dropped theorems); checks read it."""
        return self.traced / "clean_pool_report.json"

    @property
    def lean_github_pairs(self) -> Path:
        return self.traced / "lean_github_pairs.jsonl"

    @property
    def lean_github_report(self) -> Path:
        return self.traced / "lean_github_report.json"

    @property
    def token_geometry(self) -> Path:
        return self.traced / "token_geometry.json"

    @property
    def exploration_report(self) -> Path:
        return self.traced / "exploration_report.json"

    @property
    def exploration_plots(self) -> Path:
        return self.traced / "exploration_plots"

    @property
    def token_lengths_plot(self) -> Path:
        return self.exploration_plots / "token_lengths.png"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def sft_train(self) -> Path:
        return self.sft / SFT_TRAIN_FILE

    @property
    def sft_val(self) -> Path:
        return self.sft / SFT_VAL_FILE

    @property
    def sft_stats(self) -> Path:
        return self.sft / SFT_STATS_FILE

    @property
    def contrastive_pool(self) -> Path:
        return self.sft / "contrastive_pool.json"

    @property
    def decontamination(self) -> Path:
        return self.sft / "decontamination.json"

    @property
    def contrastive_pool_2k(self) -> Path:
        return self.sft / "contrastive_pool_2k.json"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def release_changelog(self) -> Path:
        return self.release / RELEASE_CHANGELOG_FILE

    # ------------------------------------------------------------------ Phase 1+
    @property
    def models(self) -> Path:
        return self.root / "models"

    def base_model(self, name: str) -> Path:
        return self.models / "base" / name

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def trajectories(self) -> Path:
        return self.root / "trajectories"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def server_logs(self) -> Path:
        """Logs of the policy servers the search steps launch (search.serving)."""
        return self.evals / "server_logs"

    def fingerprint_file(self, asset_key: str) -> Path:
        """What an asset's last materialization was computed from (burnqed_assets/reuse.py)."""
        return self.root / FINGERPRINTS_DIR / f"{asset_key.replace('/', '__')}.json"

    def server_log(self, port: int) -> Path:
        return self.server_logs / f"sglang_{port}.log"

    def merged_model(self, iteration: int) -> Path:
        return self.models / "merged" / iter_dir(iteration)

    def lora_checkpoint(self, iteration: int) -> Path:
        return self.checkpoints / "lora" / iter_dir(iteration)

    def lora_adapter(self, iteration: int) -> Path:
        return self.lora_checkpoint(iteration) / ADAPTER_DIRNAME

    @property
    def sft_metrics(self) -> Path:
        return self.lora_checkpoint(0) / SFT_METRICS_FILE

    @property
    def joint_run_summary(self) -> Path:
        return self.lora_checkpoint(1) / JOINT_RUN_SUMMARY_FILE

    def ebm_checkpoint(self, iteration: int) -> Path:
        return self.checkpoints / "ebm" / iter_dir(iteration) / EBM_HEAD_FILE

    # search (Task 1.3) and evaluations (Tasks 1.4 / 2.6)
    def search_trajectories(self, iteration: int = 0) -> Path:
        return self.trajectories / f"search_iter{iteration}.parquet"

    def search_results(self, iteration: int = 0) -> Path:
        return self.trajectories / f"search_iter{iteration}_results.parquet"

    def search_chunks_dir(self, iteration: int = 0) -> Path:
        return self.trajectories / f"search_iter{iteration}_chunks"

    def search_chunk(self, iteration: int, index: int) -> SearchChunkPaths:
        """Chunk `index` of the iteration's trajectory search (`search_iter<N>_chunks/chunk_<index>.*`)."""
        stem = self.search_chunks_dir(iteration) / f"chunk_{index:05d}"
        return SearchChunkPaths(trajectories=stem.with_suffix(".parquet"),
                                results=stem.with_name(stem.name + "_results.parquet"),
                                done=stem.with_suffix(".done.json"))

    @property
    def trajectory_stats(self) -> Path:
        return self.trajectories / "trajectory_stats.json"

    @property
    def depth_distribution_plot(self) -> Path:
        return self.trajectories / "depth_distribution.png"

    def search_eval(self, benchmark: str, iteration: int = 0, tag: str = "llm") -> SearchEvalPaths:
        """Trajectories under trajectories/<bench>_iter<N>[_<tag>].parquet (no suffix for "llm");
        per-problem results and the summary under evals/iter_<N>/."""
        suffix = "" if tag == "llm" else f"_{tag}"
        evals = self.evals_dir(iteration)
        return SearchEvalPaths(trajectories=self.trajectories / f"{benchmark}_iter{iteration}{suffix}.parquet",
                               results=evals / f"{benchmark}_{tag}_results.parquet",
                               summary=evals / f"{benchmark}_{tag}.json")

    def search_summary(self, iteration: int = 0, tag: str = "llm", benchmark: str = "minif2f_v2s") -> Path:
        return self.search_eval(benchmark, iteration, tag).summary

    # Phase 2 / 4: embeddings, EBM, reports
    def embeddings_dir(self, iteration: int) -> Path:
        return self.embeddings / iter_dir(iteration)

    def evals_dir(self, iteration: int) -> Path:
        return self.evals / iter_dir(iteration)

    def embedding_metrics(self, iteration: int) -> Path:
        return self.evals_dir(iteration) / EMBEDDING_METRICS_FILE

    def embedding_plots(self, iteration: int) -> Path:
        return self.evals_dir(iteration) / PLOTS_DIRNAME

    def ebm_config(self, config: str) -> EbmConfigPaths:
        """A: iter_0 baseline; B: iter_1 model + decoupled head; C: iter_1 model + joint head."""
        if config == "A":
            return EbmConfigPaths(dir=self.evals_dir(0), head=self.ebm_checkpoint(0))
        if config == "B":
            d = self.evals_dir(1) / "config_B_frozen_ebm"
            return EbmConfigPaths(dir=d, head=d / EBM_HEAD_FILE)
        if config == "C":
            return EbmConfigPaths(dir=self.evals_dir(1) / "config_C_joint", head=self.ebm_checkpoint(1))
        raise ValueError(f"unknown EBM config {config!r}; choose one of {EBM_CONFIGS}")

    @property
    def baseline_report(self) -> Path:
        return self.evals_dir(0) / "baseline_report.md"

    @property
    def baseline_search_results(self) -> Path:
        return self.evals_dir(0) / "search_results.json"

    @property
    def comparison_dir(self) -> Path:
        return self.evals_dir(1) / "analysis"

    @property
    def comparison_report(self) -> Path:
        return self.comparison_dir / "comparison_report.md"

    @property
    def comparison_json(self) -> Path:
        return self.comparison_dir / "comparison.json"

"""The decoupled EBM's configuration (plan Tasks 2.1–2.5): embedding, training and metric numbers.

Light: importing it loads no ML library, so settings.py composes profiles from it.
"""

from __future__ import annotations

from dataclasses import dataclass

# The head's learned temperature is clamped to these bounds (ebm/head.py); a temperature sitting at
# one of them is stuck (Gotcha 3), which joint training treats as an abort line (settings.Thresholds).
TEMPERATURE_FLOOR, TEMPERATURE_CEILING = 0.1, 10.0


@dataclass(frozen=True)
class EbmConfig:
    epochs: int = 20
    learning_rate: float = 3e-5
    weight_decay: float = 0.01
    k_negatives: int = 7
    hard_ratio: float = 0.6
    batch_size: int = 32
    encode_max_length: int = 512  # fallback when token_geometry.json is absent
    embed_batch_size: int = 16
    val_fraction: float = 0.1  # theorem-level split of the trajectories (stratified by proved)
    split_seed: int = 42
    train_seed: int = 0
    hidden_dims: tuple[int, ...] | None = None  # None: d/2, d/4, d/8 (the plan's 2048/1024/512 at d=4096)
    device: str = "cpu"  # the asset sets the profile's device
    probe_folds: int = 5  # linear-probe CV folds (plan: cv=5)
    probe_max_samples: int = 20_000  # subsample for the probe and the silhouette (plan: 2000)
    collision_threshold: float = 1.0  # sibling L2 below this is a collision (plan)
    active_margin: float = 1.0  # margin of the active-ratio metric (plan)
    silhouette_min_states: int = 100  # plan: a depth bucket needs > 100 states
    silhouette_sample_size: int = 2000
    # Variance spectrum on a seeded sample of this many states above it (a d x d eigendecomposition
    # either way; the sample's upward bias of effective_dimension is about effective_dimension / size).
    spectrum_sample_size: int = 20_000
    embedding_dtype: str = "float16"  # on-disk embeddings (ebm.store): 1.6M x 4096 is 13 GB in float16
    metrics_max_val_states: int = 0  # EBM metrics: 0 = every validation state, else a seeded theorem sample
    cpu_threads: int = 0  # torch threads for EBM work on CPU (0 = torch default; demo 1, see models.loading)
    # Encoder of EBM-guided search (encode server): "nf4" (bitsandbytes, CUDA; falls back to
    # unquantised on CPU) keeps a second 7B copy out of the GPU the SGLang server holds. "none": full dtype.
    encoder_quantization: str = "nf4"

    def training_summary(self) -> dict[str, object]:
        """The numbers that shaped a head's training (written next to it in ebm_training.json)."""
        return {"epochs": self.epochs, "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                "k_negatives": self.k_negatives, "hard_ratio": self.hard_ratio, "batch_size": self.batch_size,
                "val_fraction": self.val_fraction, "split_seed": self.split_seed, "seed": self.train_seed,
                "hidden_dims": list(self.hidden_dims) if self.hidden_dims is not None else None,
                "device": self.device, "cpu_threads": self.cpu_threads}

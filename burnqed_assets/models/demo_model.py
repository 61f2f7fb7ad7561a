"""The demo profile's base model: a tiny Llama-architecture causal LM built from the demo corpus.

Why built and not downloaded: the demo runs offline on a 2-core CPU, no PyPI package ships a
Lean-aware causal LM that transformers loads offline, and any general small model (>= 100M
parameters) is too slow to fine-tune there in minutes. A ~1M-parameter Llama with a byte-level
BPE tokenizer trained on the demo corpus builds in seconds, exercises exactly the full profile's
code paths (AutoModelForCausalLM, AutoTokenizer, PEFT LoRA, merge, generate, hidden states),
and learns the demo tactics within the SFT budget (numbers in docs/models.md).

The build is deterministic: the corpus is read in sorted file order, tokenizer training is
single-threaded, and the weights come from a seeded init followed by a short seeded warm-up
on the corpus (a real base model has seen Lean text; a random one gives LoRA nothing to adapt).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from burnqed_assets.models.loading import cpu_threads
from burnqed_assets.progress import ProgressMeter
from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX, format_example
from burnqed_assets.paths import DEMO_TOKENIZER_CORPUS_DIRNAMES

log = logging.getLogger(__name__)

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)

# Symbols every Lean state uses; the test checks each encodes without <unk> and round-trips.
LEAN_SYMBOLS = "⊢ ℝ ℕ ℤ ℚ ℂ ≥ ≤ ≠ ∧ ∨ ¬ → ↔ ∀ ∃ ∑ ∏ √ π ∈ ∉ ⊆ ∣ ∘ ⁻¹ ₀ ₁ ₂ ₃ ₄ ₅ ⟨ ⟩ • ∞ · λ α β γ ε δ θ"


@dataclass(frozen=True)
class DemoModelSpec:
    """Shape and build budget of the demo model (small enough to fine-tune on 2 CPU cores)."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 4096
    # Init std 1/sqrt(hidden): Llama's 0.02 (meant for d=4096) leaves tied-embedding logits nearly
    # flat at d=128 (|h||e| ~ 2.6, top token ~5%), and LoRA, which cannot touch the embeddings,
    # then cannot sharpen them: measured val loss 4.9 -> 4.2 with 0.02, 4.0 -> 2.9 with 0.088.
    initializer_range: float = 0.088
    seed: int = 42
    # Causal-LM steps on the raw Lean corpus at build time (0 = random init). 400, not 60: with 60 the
    # LoRA-tuned model greedily reproduced 3/60 training tactics and demo search proved nothing; with
    # 400 it reproduced 40/40 hand-written and 22/40 Goedel tactics (measured, see docs/models.md).
    warmup_steps: int = 400
    warmup_batch_size: int = 16
    warmup_block: int = 128
    warmup_lr: float = 3e-3
    cpu_threads: int = 1  # see loading.cpu_threads


@dataclass
class BuildReport:
    path: str
    parameters: int
    vocab_size: int
    corpus_texts: int
    corpus_chars: int
    corpus_files: list[str]
    build_seconds: float
    warmup_steps: int
    warmup_final_loss: float | None
    spec: DemoModelSpec


# ------------------------------------------------------------------ corpus

# Record fields that hold Lean text (states, tactics, proofs, statements). Names, sources, urls,
# commits and verifier logs are left out: they would only teach the model to emit bookkeeping.
TEXT_KEYS = ("state", "state_before", "state_after", "tactic", "full_proof", "formal_statement", "header")


def _texts(rec: object) -> Iterator[str]:
    if isinstance(rec, dict):
        for key in TEXT_KEYS:
            value = rec.get(key)
            if isinstance(value, str) and value.strip():
                yield value


def corpus_files(demo_dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for d in demo_dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(d.rglob("*.jsonl")))
    return files


def iter_corpus(files: Iterable[Path], with_sft_examples: bool = True) -> Iterator[str]:
    """Texts for the tokenizer and warm-up: the prompt template, Lean symbols, then the Lean text
    fields (`TEXT_KEYS`) of every JSONL record, plus (tokenizer only) each (state, tactic) pair as the SFT example it
    becomes. The warm-up leaves those out: the base model reads Lean text (states, tactics,
    proofs) but never the prompt -> tactic mapping that SFT must learn and validation measures."""
    yield format_example("a b : ℝ\nh : a ≥ b\n⊢ a + 1 ≥ b", "linarith")
    yield PROMPT_PREFIX + PROMPT_SUFFIX
    yield LEAN_SYMBOLS
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    continue  # the corpus only shapes the vocabulary; data assets report bad lines
                yield from _texts(rec)
                if with_sft_examples and isinstance(rec, dict):
                    state = rec.get("state") or rec.get("state_before")
                    tactic = rec.get("tactic")
                    if isinstance(state, str) and isinstance(tactic, str):
                        yield format_example(state, tactic) + EOS_TOKEN


def default_corpus_dirs(demo_root: Path) -> list[Path]:
    """The demo inputs the tokenizer learns from (no benchmark statements: those are eval data)."""
    return [demo_root / name for name in DEMO_TOKENIZER_CORPUS_DIRNAMES]


# ------------------------------------------------------------------ tokenizer

def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (no <unk> ever: every UTF-8 byte has a token) wrapped as a fast HF tokenizer.

    No post-processor: encoding never appends BOS/EOS (Gotcha 4: the embedding extractor must
    see the last content token). SFT adds EOS to completions explicitly.
    """
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # single-threaded training is deterministic
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN, padding_side="right", model_max_length=4096,
        add_bos_token=False, add_eos_token=False,
    )
    return hf


# ------------------------------------------------------------------ model

def build_config(spec: DemoModelSpec, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads, max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, rope_theta=10000.0,
        initializer_range=spec.initializer_range,
    )


def _warmup(model, tokenizer, texts: list[str], spec: DemoModelSpec) -> float | None:
    """A few seeded causal-LM steps on the concatenated corpus (a base model that has read Lean)."""
    if spec.warmup_steps <= 0:
        return None
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    block = spec.warmup_block
    n_blocks = len(ids) // block
    if n_blocks == 0:
        return None
    data = torch.tensor(ids[: n_blocks * block]).view(n_blocks, block)
    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.warmup_lr, weight_decay=0.0)
    model.train()
    loss_value = None
    meter = ProgressMeter(log.info, spec.warmup_steps, "base model warm-up", unit="step")
    for step in range(spec.warmup_steps):
        idx = torch.randint(0, n_blocks, (min(spec.warmup_batch_size, n_blocks),), generator=gen)
        batch = data[idx]
        lr = spec.warmup_lr * min(1.0, (step + 1) / max(1, spec.warmup_steps // 10))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        meter.update(step + 1, loss=loss_value)
    model.eval()
    return loss_value


def replace_dir(src: Path, dest: Path) -> None:
    """Move a finished directory over `dest` (readers never see a half-written model)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        os.replace(dest, old / dest.name)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_demo_model(dest: str | Path, demo_root: str | Path, spec: DemoModelSpec = DemoModelSpec()) -> BuildReport:
    """Build tokenizer + tiny Llama into `dest` (a standard HF directory), atomically."""
    from transformers import GenerationConfig, LlamaForCausalLM

    start = time.perf_counter()
    dest = Path(dest)
    files = corpus_files(default_corpus_dirs(Path(demo_root)))
    texts = list(iter_corpus(files))
    log.info("demo corpus: %d texts from %d files", len(texts), len(files))
    tokenizer = train_tokenizer(texts, spec.vocab_size)

    torch.manual_seed(spec.seed)
    config = build_config(spec, tokenizer)
    model = LlamaForCausalLM(config)
    with torch.random.fork_rng(), cpu_threads(spec.cpu_threads):
        torch.manual_seed(spec.seed)
        final_loss = _warmup(model, tokenizer, list(iter_corpus(files, with_sft_examples=False)), spec)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is readable like any output
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        report = BuildReport(
            path=str(dest), parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=len(tokenizer), corpus_texts=len(texts), corpus_chars=sum(map(len, texts)),
            corpus_files=[str(f) for f in files], build_seconds=0.0, warmup_steps=spec.warmup_steps,
            warmup_final_loss=final_loss, spec=spec,
        )
        report.build_seconds = round(time.perf_counter() - start, 2)
        (tmp / "burnqed_build.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("built demo model at %s: %d params, vocab %d, %.1fs", dest, report.parameters,
             report.vocab_size, report.build_seconds)
    return report

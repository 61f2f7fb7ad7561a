"""Peak GPU memory and tokens/s of the 7B training steps, on the real architecture with random weights.

    python benchmarks/gpu_7b_shape.py --out gpu_7b_shape.json            # on the GPU machine
    python benchmarks/gpu_7b_shape.py --scale tiny --device cpu --steps 1  # plumbing check on CPU

Builds DeepSeek-Prover-V2-7B from benchmarks/deepseek_prover_v2_7b/config.json with random bf16
weights (nothing is downloaded) and measures, through the project's own training code:

1. SFT step (plan Task 1.1): `models.sft.build_trainer`, the SFTTrainer the `lora_iter0` asset
   uses: LoRA r=32 on all linear layers, completion-only loss, padding-free batches of
   settings.sft.batch_size examples x grad_accumulation, each example `--max-length` tokens
   (the token-geometry SFT max length; default 2048), gradient checkpointing, bf16, FlashAttention 2
   when installed (SDPA otherwise).
2. Joint step (plan Tasks 3.4-3.5): `joint.model.JointProver` + the `joint.train` step (LoRA r=64 +
   GoalConditionedEnergyHead, K=3 negatives per group: SFT loss + lambda * InfoNCE, AdamW on two
   parameter groups, gradient clipping), settings.joint batch sizes, SFT records of `--max-length`
   tokens, states of the encode max length (512).
3. (optional, --nf4) the EBM-search encoder loaded nf4 through bitsandbytes (item 3 of issue 16):
   the random model is saved to a temporary directory, reloaded 4-bit, and one embedding batch
   is run; reports its weight memory and peak.

Each phase runs `--warmup` steps, then `--steps` timed steps; it reports the peak of
torch.cuda.max_memory_allocated over the phase (GiB), tokens/s over the timed steps, and the card's
name. The plan's limit for the joint step is < 36 GB peak. Text is random bytes through a
byte-level tokenizer (one token per byte), so sequence lengths are exact.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import string
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG_DIR = REPO / "benchmarks" / "deepseek_prover_v2_7b"
GIB = 2**30
JOINT_LIMIT_GB = 36.0  # plan: joint step < 36 GB peak (A100-40GB)
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "head_dim": 16, "vocab_size": 512}  # 512 > the byte tokenizer's 259 ids


def byte_tokenizer():
    """One token per UTF-8 byte (+ BOS/EOS/PAD): exact sequence lengths from random text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in ("<pad>", "<s>", "</s>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   padding_side="right")


def random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_letters + " ") for _ in range(max(1, n)))


def build_model(config_dir: Path, scale: str, device: Any, dtype: Any, attn: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(config_dir))
    if scale == "tiny":
        for key, value in TINY.items():
            setattr(config, key, value)
    config.use_cache = False
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    return model


def _peak_gib(device: Any) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def _reset_peak(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_sft(args: argparse.Namespace, device: Any, dtype_name: str, attn: str) -> dict[str, Any]:
    import torch

    from burnqed_assets.data.prompt import format_prompt
    from burnqed_assets.models.sft import build_trainer, throughput_callback
    from burnqed_assets.settings import get_settings

    sft = get_settings("full").sft
    config = replace(sft, lora_r=32, lora_alpha=64, max_length=args.max_length, dtype=dtype_name,
                     device=str(device), max_steps=args.warmup + args.steps, eval_steps=10**9,
                     save_steps=10**9, logging_steps=10**9, attn_implementation=attn)
    rng = random.Random(0)
    tokenizer = byte_tokenizer()
    prompt_overhead = len(format_prompt(""))
    completion_len = min(64, (args.max_length - prompt_overhead) // 2)
    if completion_len < 1:
        raise SystemExit(f"--max-length {args.max_length} is shorter than the prompt template ({prompt_overhead})")
    n_rows = config.batch_size * config.grad_accumulation * (args.warmup + args.steps)
    # prompt + completion + EOS == max_length tokens exactly (one token per byte)
    rows = [{"prompt": format_prompt(random_text(rng, args.max_length - completion_len - 1 - prompt_overhead)),
             "completion": random_text(rng, completion_len)} for _ in range(n_rows)]
    _reset_peak(device)
    model = build_model(Path(args.config), args.scale, device, getattr(torch, dtype_name), attn)
    weights_gib = _peak_gib(device)
    callback = throughput_callback(device)
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(model, tokenizer, rows, [], Path(out), config, callbacks=[callback])
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in trainer.model.parameters())
        trainer.train()
    timed = callback.per_step[args.warmup:]
    seconds, tokens = sum(s for s, _ in timed), sum(t for _, t in timed)
    result = {"phase": "sft", "lora_r": config.lora_r, "max_length": args.max_length,
              "examples_per_step": config.batch_size * config.grad_accumulation,
              "tokens_per_step": tokens / len(timed) if timed else None, "timed_steps": len(timed),
              "seconds_per_step": seconds / len(timed) if timed else None,
              "tokens_per_s": tokens / seconds if seconds else None, "peak_gib": _peak_gib(device),
              "weights_gib": weights_gib, "trainable_parameters": trainable, "total_parameters": total,
              "attn_implementation": attn, "gradient_checkpointing": bool(trainer.args.gradient_checkpointing)}
    del trainer, model
    return result


def measure_joint(args: argparse.Namespace, device: Any, dtype_name: str, attn: str) -> dict[str, Any]:
    import torch

    from burnqed_assets.joint.dataset import ContrastiveGroup
    from burnqed_assets.joint.model import JointProver
    from burnqed_assets.joint.train import TokenCounter, enable_gradient_checkpointing
    from burnqed_assets.data.prompt import format_prompt
    from burnqed_assets.settings import get_settings

    settings = get_settings("full")
    cfg = replace(settings.joint, lora_r=64, lora_alpha=128, k_negatives=3)
    encode_len = args.encode_max_length
    rng = random.Random(1)
    tokenizer = byte_tokenizer()
    _reset_peak(device)
    backbone = build_model(Path(args.config), args.scale, device, getattr(torch, dtype_name), attn)
    if cfg.gradient_checkpointing and device.type == "cuda":
        enable_gradient_checkpointing(backbone)
    prover = JointProver(backbone, tokenizer, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, None,
                         args.max_length, encode_len).to(device)
    optimizer = torch.optim.AdamW(prover.param_groups(cfg.lr_lora, cfg.lr_ebm, cfg.ebm_weight_decay))
    params = [p for g in optimizer.param_groups for p in g["params"]]
    counter = TokenCounter(prover.backbone)
    overhead = len(format_prompt(""))
    completion_len = min(64, (args.max_length - overhead) // 2)

    def batch() -> tuple[list[dict[str, str]], list[ContrastiveGroup]]:
        # prompt + completion + EOS == max_length tokens (one token per byte)
        sft = [{"prompt": format_prompt(random_text(rng, args.max_length - completion_len - 1 - overhead)),
                "completion": random_text(rng, completion_len)} for _ in range(cfg.sft_batch_size)]
        groups = [ContrastiveGroup(theorem=f"t{i}", goal=random_text(rng, encode_len),
                                   positive=random_text(rng, encode_len),
                                   hard_negatives=tuple(random_text(rng, encode_len) for _ in range(2)),
                                   easy_negatives=(random_text(rng, encode_len),), depth=3)
                  for i in range(cfg.contrastive_batch_size)]
        return sft, groups

    prover.train()
    times: list[tuple[float, int]] = []
    for step in range(args.warmup + args.steps):
        sft, groups = batch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0, before = time.perf_counter(), counter.tokens
        losses = prover.joint_loss(sft, groups, cfg.lambda_ebm)
        losses.total.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0, counter.tokens - before))
    counter.close()
    timed = times[args.warmup:]
    seconds, tokens = sum(s for s, _ in timed), sum(t for _, t in timed)
    peak = _peak_gib(device)
    result = {"phase": "joint", "lora_r": cfg.lora_r, "k_negatives": cfg.k_negatives, "max_length": args.max_length,
              "encode_max_length": encode_len, "sft_records_per_step": cfg.sft_batch_size,
              "contrastive_groups_per_step": cfg.contrastive_batch_size,
              "tokens_per_step": tokens / len(timed) if timed else None, "timed_steps": len(timed),
              "seconds_per_step": seconds / len(timed) if timed else None,
              "tokens_per_s": tokens / seconds if seconds else None, "peak_gib": peak,
              "peak_gb": peak * GIB / 1e9 if peak is not None else None,
              "plan_limit_gb": JOINT_LIMIT_GB,
              "within_plan_limit": (peak * GIB / 1e9 < JOINT_LIMIT_GB) if peak is not None else None,
              "final_loss": float(losses.total.detach()), "attn_implementation": attn,
              "gradient_checkpointing": cfg.gradient_checkpointing and device.type == "cuda"}
    del prover, backbone, optimizer
    return result


def measure_nf4_encoder(args: argparse.Namespace, device: Any, dtype_name: str) -> dict[str, Any]:
    """The encode server's encoder (EnergyModel's loading path) nf4 through bitsandbytes."""
    import torch

    from burnqed_assets.ebm.encode_server import encoder_quantization
    from burnqed_assets.models.embedding import EmbeddingExtractor
    from burnqed_assets.models.loading import load_causal_lm

    try:
        qconfig, used = encoder_quantization("nf4", device, dtype_name)
    except ImportError as exc:
        return {"phase": "nf4_encoder", "skipped": str(exc)}
    if qconfig is None:
        return {"phase": "nf4_encoder", "skipped": f"quantization {used!r} on {device}"}
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        model = build_model(Path(args.config), args.scale, torch.device("cpu"), torch.bfloat16, "sdpa")
        model.save_pretrained(tmp)
        byte_tokenizer().save_pretrained(tmp)
        del model
        _reset_peak(device)
        encoder = load_causal_lm(tmp, device=str(device), dtype=dtype_name, quantization_config=qconfig).eval()
        weights_gib = _peak_gib(device)
        extractor = EmbeddingExtractor(encoder, byte_tokenizer(), max_length=args.encode_max_length)
        rng = random.Random(2)
        texts = [random_text(rng, args.encode_max_length) for _ in range(16)]
        t0 = time.perf_counter()
        z = extractor.encode(texts)
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    return {"phase": "nf4_encoder", "weights_gib": weights_gib, "peak_gib": _peak_gib(device),
            "batch": len(texts), "encode_max_length": args.encode_max_length, "embedding_dim": int(z.shape[-1]),
            "seconds_per_batch": seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from burnqed_assets.models.loading import attention_implementation, pick_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(CONFIG_DIR), help="directory holding config.json")
    parser.add_argument("--scale", choices=("full", "tiny"), default="full",
                        help="tiny: same code on a 2-layer, 64-wide model (CPU check)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-length", type=int, default=None,
                        help="SFT sequence length (default: token_geometry's recommended SFT max length, else 2048)")
    parser.add_argument("--encode-max-length", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--phases", default="sft,joint,nf4")
    parser.add_argument("--tmp-dir", default=None, help="where --nf4 writes the 14 GB random checkpoint")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--isolation", choices=("auto", "process", "none"), default="auto",
                        help="process: every phase in a fresh process, so one phase's leftovers never count "
                             "in the next one's peak; auto = process on a GPU, none on CPU")
    args = parser.parse_args(argv)
    if args.max_length is None:
        from burnqed_assets.data.token_geometry import recommended_max_length
        from burnqed_assets.settings import get_settings

        full = get_settings("full")
        args.max_length, source = recommended_max_length(full.paths.token_geometry, "sft", full.sft.max_length)
        print(f"max length {args.max_length} from {source}", flush=True)
    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # small shared CPU boxes: spin-waiting threads cost more than they give
    dtype_name = "bfloat16" if device.type == "cuda" else "float32"
    attn = attention_implementation(device, dtype_name)
    report: dict[str, Any] = {
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "scale": args.scale, "config": str(args.config), "dtype": dtype_name,
        "attn_implementation": attn, "phases": []}
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    isolate = args.isolation == "process" or (args.isolation == "auto" and device.type == "cuda")
    if isolate and len(phases) > 1:
        import subprocess

        for phase in phases:
            with tempfile.NamedTemporaryFile(suffix=".json") as part:
                child = [sys.executable, __file__, "--phases", phase, "--out", part.name, "--isolation", "none",
                         "--config", str(args.config), "--scale", args.scale, "--device", args.device,
                         "--max-length", str(args.max_length), "--encode-max-length", str(args.encode_max_length),
                         "--warmup", str(args.warmup), "--steps", str(args.steps)]
                if args.tmp_dir:
                    child += ["--tmp-dir", args.tmp_dir]
                code = subprocess.run(child).returncode
                text = Path(part.name).read_text()
                phase_results = json.loads(text)["phases"] if text.strip() else []
            report["phases"].extend(phase_results or [{"phase": phase, "error": f"process exited {code}"}])
            if args.out:
                Path(args.out).write_text(json.dumps(report, indent=2))
        return report
    measures = {"sft": lambda: measure_sft(args, device, dtype_name, attn),
                "joint": lambda: measure_joint(args, device, dtype_name, attn),
                "nf4": lambda: measure_nf4_encoder(args, device, dtype_name)}
    unknown = [p for p in phases if p not in measures]
    if unknown:
        raise SystemExit(f"unknown phase(s) {unknown}; choose from {sorted(measures)}")
    for phase in phases:
        t0 = time.perf_counter()
        try:
            res = measures[phase]()
        except Exception as exc:  # noqa: BLE001 - one phase failing (e.g. OOM) keeps the others' numbers
            if device.type == "cpu" and args.scale == "tiny":
                raise  # the CPU check must not hide a broken phase
            res = {"phase": phase, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        report["phases"].append(res)
        print(json.dumps(res), flush=True)
        if args.out:  # after every phase: a later crash keeps what was measured
            Path(args.out).write_text(json.dumps(report, indent=2))
        _reset_peak(device)
    return report


if __name__ == "__main__":
    main()

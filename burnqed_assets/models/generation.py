"""Tactic generation from a causal LM in process (the search policy builds on this)."""

from __future__ import annotations

import torch

from burnqed_assets.data.prompt import format_prompt


@torch.no_grad()
def generate_tactics(model, tokenizer, state: str, n: int = 4, temperature: float = 1.0,
                     max_new_tokens: int = 64, seed: int | None = None) -> list[tuple[str, float]]:
    """Sample `n` tactics for one proof state; return distinct `(tactic, logprob)` best first.

    The prompt is `format_prompt(state)`, tokenized exactly as SFT saw it. `logprob` is the sum
    of the model's log-probabilities (temperature 1, before sampling adjustments) of the tactic's
    tokens and its closing EOS, so it is comparable across temperatures. Generation stops at EOS;
    an empty tactic is dropped; duplicates keep one entry. `temperature <= 0` means greedy (n=1).

    With `seed`, sampling draws from a generator seeded with it alone: transformers samples from
    the global torch RNG, so it is forked, seeded and restored around the call, and the result
    does not depend on what else used the RNG before (callers serialise calls on one model).
    """
    device = next(model.parameters()).device
    enc = tokenizer(format_prompt(state), return_tensors="pt").to(device)
    prompt_len = enc["input_ids"].shape[1]
    greedy = temperature <= 0
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        out = model.generate(
            **enc, do_sample=not greedy, temperature=None if greedy else float(temperature),
            top_k=None if greedy else 0, top_p=None if greedy else 1.0,
            num_return_sequences=1 if greedy else int(n), max_new_tokens=int(max_new_tokens),
            return_dict_in_generate=True, output_logits=True, eos_token_id=eos_id, pad_token_id=pad_id,
        )
    new_tokens = out.sequences[:, prompt_len:]  # [n, T]
    logits = torch.stack(out.logits, dim=1).float()  # [n, T, V], raw (unwarped) scores
    token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
    # keep tokens up to and including the first EOS
    is_eos = new_tokens == eos_id
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    seq_logprob = token_logprobs.masked_fill(after_eos, 0.0).sum(dim=1)

    best: dict[str, float] = {}
    for row, lp in zip(new_tokens.tolist(), seq_logprob.tolist()):
        if eos_id in row:
            row = row[: row.index(eos_id)]
        text = tokenizer.decode(row, skip_special_tokens=True).strip()
        if text and (text not in best or lp > best[text]):
            best[text] = float(lp)
    return sorted(best.items(), key=lambda kv: -kv[1])

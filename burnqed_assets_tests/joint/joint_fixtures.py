"""Builders for the joint tests: a tiny random Llama + tokenizer, SFT records and trajectories."""

from __future__ import annotations

from burnqed_assets.data.prompt import format_prompt

N_THEOREMS = 6


def state_text(theorem: int, node: int) -> str:
    return f"x y : ℕ\nh{theorem} : x ≤ y + {node}\n⊢ x + {theorem} ≤ y + {node} * {theorem}"


def make_trajectory_rows(n_theorems: int = N_THEOREMS) -> list[dict]:
    """Per theorem: root 0; children 1 (positive), 2, 3 (negative); children of 1: 4 (positive), 5, 6."""
    rows = []
    layout = [(0, -1, 0, "positive"), (1, 0, 1, "positive"), (2, 0, 1, "negative"), (3, 0, 1, "negative"),
              (4, 1, 2, "positive"), (5, 1, 2, "negative"), (6, 1, 2, "negative")]
    for t in range(n_theorems):
        for sid, parent, depth, label in layout:
            rows.append({"theorem": f"goedel::thm_{t}", "state_id": sid, "parent_id": parent,
                         "state_pp": state_text(t, sid), "tactic": "" if sid == 0 else f"tac_{sid}",
                         "depth": depth, "llm_logprob": -0.5, "cumulative_logprob": -0.5 * depth,
                         "energy": None, "label": label, "sibling_group": parent, "proved": True,
                         "expanded": True, "elapsed_s": 0.1 * sid})
    return rows


def make_sft_records(n: int = 12) -> list[dict]:
    tactics = ["intro h", "simp", "omega", "linarith", "nlinarith [sq_nonneg x]", "norm_num"]
    return [{"prompt": format_prompt(state_text(i % N_THEOREMS, i)), "completion": tactics[i % len(tactics)],
             "theorem": f"goedel::thm_{i % N_THEOREMS}", "source": "goedel_workbook"} for i in range(n)]


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [state_text(t, n) for t in range(N_THEOREMS) for n in range(7)]
    corpus += [r["prompt"] + r["completion"] for r in make_sft_records()]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   padding_side="right")


def build_tiny_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)



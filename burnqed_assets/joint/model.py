"""JointProver (plan Task 3.2): LoRA backbone + the SAME GoalConditionedEnergyHead as iter 0.

Loss = SFT (completion tokens only) + λ·InfoNCE (no temperature in the loss: Gotcha 1).
Gradient flows through the positive and ONE hard negative per group; the other negatives
and the goal are embedded under `torch.no_grad()` (VRAM: the plan's Task 3.4), so the head
still learns from them but the backbone does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from burnqed_assets.ebm.head import GoalConditionedEnergyHead
from burnqed_assets.ebm.losses import info_nce_loss
from burnqed_assets.joint.dataset import ContrastiveGroup
from burnqed_assets.joint.losses import joint_objective
from burnqed_assets.models.embedding import EmbeddingExtractor

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IGNORE_INDEX = -100


def present_lora_targets(model: nn.Module, wanted: Sequence[str] = LORA_TARGETS) -> list[str]:
    """The plan's projection names that exist in this model (a tiny model may lack some)."""
    leaves = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, nn.Linear)}
    found = [t for t in wanted if t in leaves]
    if not found:
        raise ValueError(f"none of the LoRA target modules {list(wanted)} exist in {type(model).__name__}")
    return found


@dataclass(frozen=True)
class LossValues:
    """One step's losses as plain floats (what the monitor logs and the smoke record keeps)."""

    loss: float
    sft_loss: float
    ebm_loss: float
    lambda_ebm_loss: float
    temperature: float
    pos_energy: float
    neg_energy: float


@dataclass
class JointLosses:
    total: torch.Tensor
    sft: torch.Tensor
    ebm: torch.Tensor
    lambda_ebm: float
    temperature: float
    pos_energy_mean: float
    neg_energy_mean: float

    def scalars(self) -> LossValues:
        ebm = float(self.ebm.detach())
        return LossValues(loss=float(self.total.detach()), sft_loss=float(self.sft.detach()), ebm_loss=ebm,
                          lambda_ebm_loss=self.lambda_ebm * ebm, temperature=self.temperature,
                          pos_energy=self.pos_energy_mean, neg_energy=self.neg_energy_mean)


@dataclass
class GroupEmbeddings:
    """Embeddings of one batch of groups; `easy` and `goal` never carry gradient."""

    positive: torch.Tensor  # [B, d] with grad
    hard: torch.Tensor  # [B, d] with grad (first hard negative, or first negative when none is hard)
    easy: torch.Tensor  # [B, K-1, d] no grad
    goal: torch.Tensor  # [B, d] no grad


class JointProver(nn.Module):
    """A PEFT LoRA causal LM and a GoalConditionedEnergyHead sized from its hidden size."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, lora_r: int = 64, lora_alpha: int = 128,
                 lora_dropout: float = 0.05, head_hidden_dims: Sequence[int] | None = None,
                 sft_max_length: int = 2048, encode_max_length: int = 512):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.lora_targets = present_lora_targets(backbone)
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                            target_modules=self.lora_targets, task_type="CAUSAL_LM")
        self.backbone = get_peft_model(backbone, config)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"  # Gotcha 4
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        hidden = int(backbone.config.hidden_size)
        kwargs = {"hidden_dims": tuple(head_hidden_dims)} if head_hidden_dims else {}
        # Same class and hidden dims as the iter-0 head (Gotcha 7); d from the model.
        self.ebm_head = GoalConditionedEnergyHead(d_model=hidden, **kwargs)
        self.extractor = EmbeddingExtractor(self.backbone, self.tokenizer, max_length=encode_max_length)
        self.sft_max_length = sft_max_length

    @property
    def device(self) -> torch.device:
        return next(self.ebm_head.parameters()).device

    def lora_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.backbone.named_parameters() if p.requires_grad and "lora_" in n]

    def param_groups(self, lr_lora: float, lr_ebm: float, ebm_weight_decay: float = 0.01) -> list[dict[str, Any]]:
        """Separate learning rates for the adapter and the head (plan: 2e-5 and 3e-5)."""
        return [{"params": self.lora_parameters(), "lr": lr_lora, "weight_decay": 0.0, "name": "lora"},
                {"params": list(self.ebm_head.parameters()), "lr": lr_ebm,
                 "weight_decay": ebm_weight_decay, "name": "ebm"}]

    # --- SFT -------------------------------------------------------------------------------
    def sft_inputs(self, records: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded prompt+completion(+EOS) with labels only on completion tokens (Gotcha 13).

        Over-long examples lose prompt tokens from the left, so the completion is always kept.
        """
        tok = self.tokenizer
        rows: list[tuple[list[int], list[int]]] = []
        for rec in records:
            # The prompt gets the tokenizer's usual BOS (as in SFT); the completion gets nothing.
            prompt = tok(rec["prompt"])["input_ids"]
            completion = tok(rec["completion"], add_special_tokens=False)["input_ids"]
            if tok.eos_token_id is not None:
                completion = completion + [tok.eos_token_id]
            completion = completion[: self.sft_max_length]
            keep = self.sft_max_length - len(completion)
            prompt = prompt[len(prompt) - keep:] if keep > 0 else []
            rows.append((prompt, completion))
        width = max(len(p) + len(c) for p, c in rows)
        pad = tok.pad_token_id
        ids, mask, labels = [], [], []
        for p, c in rows:
            n = len(p) + len(c)
            ids.append(p + c + [pad] * (width - n))
            mask.append([1] * n + [0] * (width - n))
            labels.append([IGNORE_INDEX] * len(p) + c + [IGNORE_INDEX] * (width - n))
        dev = self.device
        return {"input_ids": torch.tensor(ids, device=dev), "attention_mask": torch.tensor(mask, device=dev),
                "labels": torch.tensor(labels, device=dev)}

    def sft_loss(self, records: Sequence[dict[str, Any]]) -> torch.Tensor:
        out = self.backbone(**self.sft_inputs(records))
        return out.loss

    # --- EBM -------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str], grad: bool) -> torch.Tensor:
        """Last-content-token embeddings of raw states (no prompt wrapper), as in iter 0."""
        z = self.extractor.encode(list(texts), grad=grad)
        return z.to(next(self.ebm_head.parameters()).dtype)  # head stays fp32 under a bf16 backbone

    def embed_groups(self, groups: Sequence[ContrastiveGroup]) -> GroupEmbeddings:
        """The detach rule: positive + one hard negative with grad; the rest under no_grad."""
        if not groups:
            raise ValueError("embed_groups: empty batch")
        k = len(groups[0].negatives)
        if k < 1 or any(len(g.negatives) != k for g in groups):
            raise ValueError("every contrastive group needs the same number (>= 1) of negatives")
        grad_negs = [g.negatives[0] for g in groups]  # hard negatives come first
        easy = [n for g in groups for n in g.negatives[1:]]
        z_pos = self.embed([g.positive for g in groups], grad=True)
        z_hard = self.embed(grad_negs, grad=True)
        d = z_pos.size(-1)
        with torch.no_grad():
            z_goal = self.embed([g.goal for g in groups], grad=False)
            z_easy = (self.embed(easy, grad=False).view(len(groups), k - 1, d) if easy
                      else z_pos.new_zeros((len(groups), 0, d)))
        return GroupEmbeddings(z_pos, z_hard, z_easy.detach(), z_goal.detach())

    def group_energies(self, emb: GroupEmbeddings) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies [B] of positives and [B, K] of negatives (hard-with-grad first)."""
        b, k1, d = emb.easy.shape
        pos = self.ebm_head.energy(emb.positive, emb.goal)
        hard = self.ebm_head.energy(emb.hard, emb.goal).unsqueeze(1)
        if k1:
            goal_rep = emb.goal.unsqueeze(1).expand(b, k1, d).reshape(b * k1, d)
            easy = self.ebm_head.energy(emb.easy.reshape(b * k1, d), goal_rep).view(b, k1)
            neg = torch.cat([hard, easy], dim=1)
        else:
            neg = hard
        return pos, neg

    def ebm_loss(self, groups: Sequence[ContrastiveGroup]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos, neg = self.group_energies(self.embed_groups(groups))
        return info_nce_loss(pos, neg), pos, neg

    def joint_loss(self, sft_records: Sequence[dict[str, Any]], groups: Sequence[ContrastiveGroup],
                   lambda_ebm: float) -> JointLosses:
        """total = SFT + λ·InfoNCE."""
        sft = self.sft_loss(sft_records)
        ebm, pos, neg = self.ebm_loss(groups)
        total = joint_objective(sft, ebm, lambda_ebm)
        return JointLosses(total, sft, ebm, float(lambda_ebm), float(self.ebm_head.temperature.detach()),
                           float(pos.detach().mean()), float(neg.detach().mean()))

    # --- export ------------------------------------------------------------------------------
    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(self.backbone).items()}

    def load_lora_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.backbone, state)
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"LoRA checkpoint has unexpected keys, e.g. {unexpected[:3]}")

    def merged_backbone(self) -> nn.Module:
        """merge_and_unload: a plain HF model (call once, at export; it modifies the backbone)."""
        return self.backbone.merge_and_unload()

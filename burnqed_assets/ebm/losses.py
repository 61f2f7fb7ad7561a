"""InfoNCE with NO temperature (Gotcha 1): the head's learned temperature does the scaling."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce_loss(pos_energy: torch.Tensor, neg_energies: torch.Tensor) -> torch.Tensor:
    """pos_energy [B] or [B,1]; neg_energies [B,K]. Cross-entropy with the positive at index 0."""
    pos = pos_energy.reshape(-1, 1)
    logits = torch.cat([-pos, -neg_energies], dim=1)
    labels = torch.zeros(logits.size(0), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)

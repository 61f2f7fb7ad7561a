"""Joint losses (plan Task 3.3): InfoNCE with NO temperature (Gotcha 1), re-exported from ebm.

The iter-0 decoupled EBM and the joint run share this one function, so the two configs
differ only in whether the loss reaches the backbone.
"""

from __future__ import annotations

import torch

from burnqed_assets.ebm.losses import info_nce_loss

__all__ = ["info_nce_loss", "joint_objective"]


def joint_objective(sft_loss: torch.Tensor, ebm_loss: torch.Tensor, lambda_ebm: float) -> torch.Tensor:
    """total = SFT + λ·InfoNCE."""
    return sft_loss + lambda_ebm * ebm_loss

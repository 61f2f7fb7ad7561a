"""GoalConditionedEnergyHead (plan Task 1.0), the same architecture for iter_0 and iter_1."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from burnqed_assets.ebm.config import TEMPERATURE_CEILING, TEMPERATURE_FLOOR

LOG_TEMPERATURE_MIN = float(torch.log(torch.tensor(TEMPERATURE_FLOOR)))
LOG_TEMPERATURE_MAX = float(torch.log(torch.tensor(TEMPERATURE_CEILING)))


class _Scale(nn.Module):
    """A constant factor applied to a weight after spectral normalisation (a parametrization)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.factor


class GoalConditionedEnergyHead(nn.Module):
    """E(state, goal) on [z_s; z_g; z_s ⊙ z_g].

    At d=4096: 12288 → 2048 → 1024 → 512 → 1 (d is the encoder's hidden size). Spectral norm
    on every linear layer, SiLU, dropout 0.15, a learnable log-temperature clamped to
    [log 0.1, log 10]; energy = raw / exp(log_temperature).

    Gotcha 2 (first layer weight × 0.1): spectral norm divides a weight by its largest singular
    value, so scaling the raw weight before normalisation would be a no-op. The 0.1 is applied
    after it, as a second parametrization, so the first layer's effective spectral norm is 0.1
    and every other layer's is 1.
    """

    def __init__(self, d_model: int = 4096, hidden_dims: tuple[int, ...] = (2048, 1024, 512),
                 dropout: float = 0.15, first_layer_scale: float = 0.1):
        super().__init__()
        self.d_model = d_model
        self.hidden_dims = tuple(hidden_dims)
        self.first_layer_scale = float(first_layer_scale)
        dims = [3 * d_model, *hidden_dims, 1]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            linear = spectral_norm(nn.Linear(d_in, d_out))
            if i == 0:
                parametrize.register_parametrization(linear, "weight", _Scale(first_layer_scale))
            layers.append(linear)
            if i < len(dims) - 2:
                layers.extend([nn.SiLU(), nn.Dropout(dropout)])
        self.net = nn.Sequential(*layers)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.clamp(LOG_TEMPERATURE_MIN, LOG_TEMPERATURE_MAX).exp()

    @staticmethod
    def combine(z_state: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return torch.cat([z_state, z_goal, z_state * z_goal], dim=-1)

    def forward(self, z_state: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """Energies of shape [batch, 1]; lower = more likely on a proof path."""
        raw = self.net(self.combine(z_state, z_goal))
        return raw / self.temperature

    def energy(self, z_state: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return self.forward(z_state, z_goal).squeeze(-1)


def load_head(path: str, map_location: str = "cpu") -> GoalConditionedEnergyHead:
    """Load a checkpoint saved as {"state_dict", "d_model", "hidden_dims"} (weights_only)."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    head = GoalConditionedEnergyHead(d_model=int(payload["d_model"]),
                                     hidden_dims=tuple(int(h) for h in payload["hidden_dims"]),
                                     first_layer_scale=float(payload.get("first_layer_scale", 0.1)))
    head.load_state_dict(payload["state_dict"])
    head.eval()
    return head


def save_head(head: GoalConditionedEnergyHead, path: str) -> None:
    """Save the state_dict with the shape needed to rebuild it (atomic)."""
    from burnqed_assets.data.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"state_dict": head.state_dict(), "d_model": head.d_model,
                    "hidden_dims": list(head.hidden_dims),
                    "first_layer_scale": head.first_layer_scale}, tmp)

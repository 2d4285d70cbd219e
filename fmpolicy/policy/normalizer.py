"""Per-dimension min-max normalization to [-1, 1], stored with the model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MinMaxNormalizer(nn.Module):
    """Maps each trailing-dimension entry from ``[min, max]`` to ``[-1, 1]``.

    Constant dimensions (range below ``eps``) map to 0 and back to their value.
    Statistics are buffers, so they travel in the model's ``state_dict``.
    """

    def __init__(self, dim: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("offset", torch.zeros(dim))

    @torch.no_grad()
    def fit(self, data: np.ndarray | torch.Tensor) -> MinMaxNormalizer:
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32).reshape(-1, self.scale.numel())
        lo, hi = x.min(0).values, x.max(0).values
        rng = hi - lo
        constant = rng < self.eps
        scale = torch.where(constant, torch.ones_like(rng), 2.0 / rng.clamp_min(self.eps))
        offset = torch.where(constant, -lo, -1.0 - lo * scale)
        self.scale.copy_(scale)
        self.offset.copy_(offset)
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.offset) / self.scale

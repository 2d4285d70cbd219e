"""Which torch device a run uses (``device=cpu|cuda|cuda:N``)."""

from __future__ import annotations

import torch
from torch import nn

from fmpolicy.errors import UserError


def resolve_device(name: str) -> torch.device:
    """The device a config names; a clear error when CUDA is asked for and torch sees none."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device '{name}' is not a torch device: use device=cpu or device=cuda") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}' asked for, but torch sees no CUDA GPU here: use device=cpu")
        torch.set_float32_matmul_precision("high")  # TF32 matmuls, as convolutions already use
    return device


def module_device(module: nn.Module) -> torch.device:
    """Where a module's weights (or, without weights, its buffers) live."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")

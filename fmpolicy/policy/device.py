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
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"device '{name}' asked for, but torch sees {torch.cuda.device_count()} GPU(s): use device=cuda"
            )
        torch.set_float32_matmul_precision("high")  # TF32 matmuls, as convolutions already use
    elif device.type != "cpu":
        available = getattr(torch, device.type, None)
        if available is None or not getattr(available, "is_available", lambda: False)():
            raise UserError(f"device '{name}' asked for, but torch has no {device.type} device here: use device=cpu")
    return device


def module_device(module: nn.Module) -> torch.device:
    """Where a module's weights (or, without weights, its buffers) live."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")

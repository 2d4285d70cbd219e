"""The Policy API: what evaluation, deployment and users' own loops call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fmpolicy.data.tasks import flat_obs
from fmpolicy.errors import UserError
from fmpolicy.policy.checkpoint import load_checkpoint
from fmpolicy.policy.device import resolve_device
from fmpolicy.policy.model import build_model


def model_from_checkpoint(payload: dict[str, Any], cfg: dict[str, Any] | None = None, ema: bool = True) -> nn.Module:
    """Rebuild the model a checkpoint holds (EMA weights when present and ``ema``).

    ``cfg`` defaults to the checkpoint's own config; a config whose architecture
    differs from the weights raises a UserError naming the mismatch.
    """
    cfg = cfg if cfg is not None else payload["config"]
    model = build_model(cfg, payload["obs_dim"], payload["action_dim"])
    state = payload.get("ema_model") if ema and payload.get("ema_model") is not None else payload["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)[:200]]
        raise UserError(
            f"checkpoint does not fit the config ({first[0].strip()}): drop policy.*/method.* overrides "
            "or use a checkpoint trained with this config"
        ) from None
    return model.eval()


class Policy:
    """Batched action-chunk policy in environment units.

    ``predict_action(obs)`` takes a dict of arrays shaped ``(batch, n_obs_steps, ...)``
    with the task's observation keys and returns ``(batch, n_action_steps, action_dim)``;
    the chunk starts at the current (last observed) step, as in Diffusion Policy.
    Sampling noise comes from a generator seeded with ``seed``; ``reset()`` reseeds it.
    """

    def __init__(self, model: nn.Module, cfg: dict[str, Any], seed: int = 0, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.obs_keys: list[str] = list(cfg["task"]["obs_keys"])
        p = cfg["policy"]
        self.horizon, self.n_obs_steps, self.n_action_steps = p["horizon"], p["n_obs_steps"], p["n_action_steps"]
        self.action_dim: int = model.action_dim
        self.solver: str = cfg["inference"]["solver"]
        self.nfe: int = cfg["inference"]["nfe"]
        self.seed = seed
        self.generator = torch.Generator(device="cpu")
        self.reset()

    def reset(self) -> None:
        self.generator.manual_seed(self.seed)

    def _obs_tensor(self, obs: dict[str, Any]) -> torch.Tensor:
        arrays = {k: np.asarray(v) for k, v in obs.items()}
        for k in self.obs_keys:
            if k in arrays and (arrays[k].ndim < 2 or arrays[k].shape[1] != self.n_obs_steps):
                raise UserError(
                    f"observation '{k}' has shape {arrays[k].shape}: expected (batch, n_obs_steps={self.n_obs_steps}, ...)"
                )
        x = flat_obs(arrays, self.obs_keys, lead=2)
        if x.shape[-1] != self.model.obs_dim:
            raise UserError(f"observation has {x.shape[-1]} values per step, the policy expects {self.model.obs_dim}")
        return torch.as_tensor(x, device=self.device)

    @torch.no_grad()
    def predict_action_chunk(
        self, obs: dict[str, Any], nfe: int | None = None, solver: str | None = None
    ) -> np.ndarray:
        """The whole predicted chunk ``(batch, horizon, action_dim)`` in environment units."""
        x = self._obs_tensor(obs)
        noise = torch.randn((x.shape[0], self.horizon, self.action_dim), generator=self.generator).to(self.device)
        cond = self.model.condition(x)
        action = self.model.sample(cond, noise, solver or self.solver, nfe or self.nfe)
        return self.model.action_norm.unnormalize(action).cpu().numpy()

    def predict_action(self, obs: dict[str, Any], nfe: int | None = None, solver: str | None = None) -> np.ndarray:
        start = self.n_obs_steps - 1
        return self.predict_action_chunk(obs, nfe, solver)[:, start : start + self.n_action_steps]


def load_policy(path: str | Path, seed: int = 0, device: str = "cpu", ema: bool = True) -> Policy:
    """Rebuild a policy from a checkpoint file (or a run folder) alone."""
    payload = load_checkpoint(path)
    return Policy(model_from_checkpoint(payload, ema=ema), payload["config"], seed=seed, device=device)

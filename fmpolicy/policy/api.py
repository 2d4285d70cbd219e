"""The Policy API: what evaluation, deployment and users' own loops call."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fmpolicy.config import compose
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
    if cfg["task"]["shape_meta"] != payload["shape_meta"]:
        raise UserError(
            "checkpoint does not fit the config (its task.shape_meta differs): drop task/task.* overrides "
            "or use a checkpoint trained on this task"
        )
    model = build_model(cfg)
    state = payload.get("ema_model") if ema and payload.get("ema_model") is not None else payload["model"]
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(
            f"checkpoint weights hold NaN or inf ({bad[0]}, {len(bad)} tensors): the run diverged; "
            "use an earlier checkpoint or retrain with a lower train.lr"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)[:200]]
        raise UserError(
            f"checkpoint does not fit the config ({first[0].strip()}): drop policy.*/method.* overrides "
            "or use a checkpoint trained with this config"
        ) from None
    return model.eval()


def sampling_std(inference: dict[str, Any]) -> float:
    """Std the initial latent is drawn at: ``noise_scale`` (the latents' own spread) times ``temperature``."""
    return float(inference["noise_scale"]) * float(inference["temperature"])


class Policy:
    """Batched action-chunk policy in environment units.

    ``predict_action(obs)`` takes a dict of arrays shaped ``(batch, n_obs_steps, ...)``
    with the task's observation keys and returns ``(batch, n_action_steps, action_dim)``;
    the chunk starts at the current (last observed) step, as in Diffusion Policy.
    Sampling noise comes from a generator seeded with ``seed``; ``reset()`` reseeds it.
    ``reset(episode_seeds)`` gives each batch row its own generator, seeded from
    its episode's seed and ``seed``, so an episode's actions do not depend on
    which other episodes share the batch.

    ``select_action(obs)`` is LeRobot's one-action-per-step call: it replans when
    the last chunk's ``n_action_steps`` actions are spent. With
    ``inference.temporal_ensemble`` set (and ``policy.n_action_steps`` 1) every
    call replans and returns the mean of every chunk's prediction for this step
    (``TemporalEnsemble``). With ``inference.coherence_samples`` K set, each replanning draws K chunks in
    one batched call and acts on the one that best continues the last chunk's unexecuted actions
    (``BackwardCoherence``).
    """

    EPISODE_BLOCK = 16  # rows per network call after reset(episode_seeds)

    def __init__(self, model: nn.Module, cfg: dict[str, Any], seed: int = 0, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.shape_meta: dict[str, Any] = cfg["task"]["shape_meta"]
        p = cfg["policy"]
        self.horizon, self.n_obs_steps, self.n_action_steps = p["horizon"], p["n_obs_steps"], p["n_action_steps"]
        self.action_dim: int = model.action_dim
        self.solver: str = cfg["inference"]["solver"]
        self.nfe: int = cfg["inference"]["nfe"]
        self.latent_std = sampling_std(cfg["inference"])
        self.seed = seed
        self.generator = torch.Generator(device="cpu")
        coeff = cfg["inference"].get("temporal_ensemble")
        if coeff is not None and self.n_action_steps != 1:
            raise UserError(
                f"inference.temporal_ensemble replans at every step, but policy.n_action_steps is "
                f"{self.n_action_steps}: add policy.n_action_steps=1"
            )
        self.ensemble = TemporalEnsemble(float(coeff)) if coeff is not None else None
        samples = cfg["inference"].get("coherence_samples")
        if samples is not None and self.ensemble is not None:
            raise UserError(
                "inference.coherence_samples and inference.temporal_ensemble both set: they are two ways of "
                "keeping consecutive chunks consistent; set one of them to null"
            )
        self.coherence = BackwardCoherence(self.n_action_steps) if samples is not None else None
        self.samples = int(samples or 1)
        self._queue: deque[np.ndarray] = deque()
        self.reset()

    def reset(self, episode_seeds: list[int] | None = None) -> None:
        self.generator.manual_seed(self.seed)
        self._queue.clear()
        for memory in (self.ensemble, self.coherence):
            if memory is not None:
                memory.reset()
        self.row_generators = None
        if episode_seeds is not None:
            self.row_generators = [
                torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, int(s)]).generate_state(1)[0]))
                for s in episode_seeds
            ]

    def _noise(self, batch: int) -> torch.Tensor:
        shape = (self.horizon, self.action_dim)
        if self.row_generators is None:
            unit = torch.randn((batch, *shape), generator=self.generator)
        elif len(self.row_generators) != batch:
            raise UserError(f"batch of {batch} observations after reset() with {len(self.row_generators)} episodes")
        else:
            unit = torch.stack([torch.randn(shape, generator=g) for g in self.row_generators])
        return self.latent_std * unit

    def _obs_tensors(self, obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Checks every ``shape_meta`` key is there with shape ``(batch, n_obs_steps, *shape)``."""
        out, batch = {}, None
        for key, meta in self.shape_meta["obs"].items():
            if key not in obs:
                raise UserError(f"observation lacks key '{key}' (it has {sorted(obs)}): pass every key of shape_meta")
            arr = np.asarray(obs[key], dtype=np.float32)
            want = (self.n_obs_steps, *meta["shape"])
            if arr.shape[1:] != want or (batch is not None and len(arr) != batch):
                raise UserError(
                    f"observation '{key}' has shape {arr.shape}: expected (batch, {', '.join(map(str, want))})"
                )
            batch = len(arr)
            out[key] = torch.as_tensor(arr, device=self.device)
        return out

    def predict_action_chunk(
        self, obs: dict[str, Any], nfe: int | None = None, solver: str | None = None
    ) -> np.ndarray:
        """The whole predicted chunk ``(batch, horizon, action_dim)`` in environment units."""
        return self.predict_action_samples(obs, 1, nfe, solver)[:, 0]

    @torch.no_grad()
    def predict_action_samples(
        self, obs: dict[str, Any], samples: int, nfe: int | None = None, solver: str | None = None
    ) -> np.ndarray:
        """``samples`` whole chunks per observation ``(batch, samples, horizon, action_dim)``, from one network
        call per solver step (each sample its own latent; with one sample, the latent ``predict_action_chunk``
        draws)."""
        x = self._obs_tensors(obs)
        batch = len(next(iter(x.values())))
        noise = torch.stack([self._noise(batch) for _ in range(samples)], dim=1).to(self.device)
        if self.row_generators is None:
            return self._sample(x, noise, solver, nfe)
        # One episode per row: run in blocks of a fixed size (the last one padded), so that a row's numbers
        # never depend on how many rows share the call (batched kernels round differently per batch size).
        block = self.EPISODE_BLOCK
        out = []
        for start in range(0, batch, block):
            part = {k: _pad_rows(v[start : start + block], block) for k, v in x.items()}
            n = min(block, batch - start)
            out.append(self._sample(part, _pad_rows(noise[start : start + block], block), solver, nfe)[:n])
        return np.concatenate(out)

    def _sample(self, x: dict[str, torch.Tensor], noise: torch.Tensor, solver: str | None, nfe: int | None):
        """Chunks for latents ``noise`` ``(rows, samples, horizon, action_dim)``, each sample of a row on its
        observation."""
        rows, samples = noise.shape[:2]
        cond = self.model.condition(x).repeat_interleave(samples, dim=0)
        action = self.model.sample(cond, noise.flatten(0, 1), solver or self.solver, nfe or self.nfe)
        return self.model.action_norm.unnormalize(action).cpu().numpy().reshape(noise.shape)

    def predict_action(self, obs: dict[str, Any], nfe: int | None = None, solver: str | None = None) -> np.ndarray:
        """The next ``n_action_steps`` actions ``(batch, n_action_steps, action_dim)``, from this step on."""
        if self.coherence is not None:
            samples = self.predict_action_samples(obs, self.samples, nfe, solver)[:, :, self.n_obs_steps - 1 :]
            return self.coherence.choose(samples)[:, : self.n_action_steps]
        future = self.predict_action_chunk(obs, nfe, solver)[:, self.n_obs_steps - 1 :]
        if self.ensemble is not None:
            return self.ensemble.add(future)[:, None]
        return future[:, : self.n_action_steps]

    def select_action(self, obs: dict[str, Any], nfe: int | None = None, solver: str | None = None) -> np.ndarray:
        """The action for this environment step ``(batch, action_dim)``; a new chunk once the last one is spent."""
        if not self._queue:
            self._queue.extend(np.swapaxes(self.predict_action(obs, nfe, solver), 0, 1))
        return self._queue.popleft()


class TemporalEnsemble:
    """ACT's temporal ensembling (Zhao et al., 2023) over chunks predicted at consecutive steps.

    The action for this step is the weighted mean of what each chunk still covering it predicted for
    it, with weight ``exp(-coeff * i)`` for the i-th oldest chunk: ``coeff`` 0 weighs all alike, a
    larger one favours the older plans (ACT uses 0.01). ``add`` takes each step's chunk
    ``(batch, length, action_dim)``, whose first action is for this step.
    """

    def __init__(self, coeff: float) -> None:
        self.coeff = coeff
        self.chunks: list[np.ndarray] = []  # oldest first

    def reset(self) -> None:
        self.chunks.clear()

    def add(self, chunk: np.ndarray) -> np.ndarray:
        if self.chunks and self.chunks[-1].shape != chunk.shape:
            raise UserError(
                f"temporal ensemble got a chunk of shape {chunk.shape} after {self.chunks[-1].shape}: "
                "call reset() when the batch changes"
            )
        self.chunks = [*self.chunks, chunk][-chunk.shape[1] :]
        n = len(self.chunks)
        weights = np.exp(-self.coeff * np.arange(n))
        here = np.stack([c[:, n - 1 - i] for i, c in enumerate(self.chunks)])  # each chunk's action for now
        return np.tensordot(weights / weights.sum(), here, axes=1).astype(chunk.dtype)


class BackwardCoherence:
    """Bidirectional Decoding's backward coherence (Liu et al., 2024): of several chunks sampled for the
    same observation, act on the one closest (squared distance, environment units) to what the last
    chosen chunk planned for the steps it did not execute.

    A multimodal policy sampled afresh at every replanning can switch modes between chunks (go round the
    T on the other side); this keeps to the plan it is executing as closely as the samples allow.
    ``choose`` takes ``(batch, samples, length, action_dim)`` chunks whose first action is for this
    step; the first call after ``reset`` takes each row's first sample.
    """

    def __init__(self, executed: int) -> None:
        self.executed = executed  # actions of each chosen chunk executed before the next replanning
        self.last: np.ndarray | None = None

    def reset(self) -> None:
        self.last = None

    def choose(self, samples: np.ndarray) -> np.ndarray:
        rows = np.arange(len(samples))
        if self.last is not None and len(self.last) != len(samples):
            raise UserError(
                f"backward coherence got {len(samples)} observations after {len(self.last)}: "
                "call reset() when the batch changes"
            )
        if self.last is None:
            best = np.zeros(len(samples), int)
        else:
            planned = self.last[:, self.executed :]  # the last plan's unexecuted tail, from this step on
            overlap = min(planned.shape[1], samples.shape[2])
            gap = samples[:, :, :overlap] - planned[:, None, :overlap]
            best = np.einsum("bsla,bsla->bs", gap, gap).argmin(axis=1)
        self.last = samples[rows, best]
        return self.last


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t`` with its first row repeated until it has ``rows`` rows."""
    return torch.cat([t, t[:1].expand(rows - len(t), *t.shape[1:])])


def load_policy(
    path: str | Path, seed: int = 0, device: str = "cpu", ema: bool = True, overrides: dict[str, Any] | None = None
) -> Policy:
    """Rebuild a policy from a checkpoint file (or a run folder) alone.

    Its config is laid over today's defaults, as every command does, so keys added since it was
    written (``inference.noise_scale``, ``inference.temperature``, ...) take their default values;
    ``overrides`` are the commands' ``key=value`` pairs, e.g. ``{"inference.nfe": 2}``.
    """
    payload = load_checkpoint(path)
    cfg = compose(dict(overrides or {}), base=payload["config"])
    return Policy(model_from_checkpoint(payload, cfg, ema=ema), cfg, seed=seed, device=device)

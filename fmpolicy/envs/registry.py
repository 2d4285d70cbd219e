"""The suite registry: what rollouts, deploy, bench, robustness, speed, demos and the pipeline ask.

A suite is one module ``fmpolicy/envs/<name>.py`` that calls ``register(Suite(...))``
when imported. It is imported on first use (so asking for one suite never imports
another's simulator); a test or a user can register their own at run time.

Observations are dicts keyed by the task's ``shape_meta`` (``task.shape_meta`` in
the task config: per key its ``shape`` and ``type`` ``low_dim`` or ``rgb``, and
the action's ``shape``); the suite's environment returns exactly these keys.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from fmpolicy.envs.wrappers import ActionNoise
from fmpolicy.errors import UserError

_NOT_SUITES = {"registry", "wrappers"}


class EpisodeTracker(Protocol):
    """Turns one episode's per-step environment infos into its result.

    ``result()`` returns flat scalars, always with ``score`` (float in [0, 1]) and
    ``success`` (bool), plus the suite's extras; it is valid at any time (the
    result so far), so a chunk wrapper can report it after every step.
    """

    def reset(self, info: dict[str, Any]) -> None: ...

    def update(self, reward: float, info: dict[str, Any], step: int) -> None: ...

    def result(self) -> dict[str, float | int | bool]: ...


@dataclass(frozen=True)
class Perturbation:
    """A disturbance for ``fmpolicy robustness``: ``wrap(env, level, at_step)``, levels in ``unit``."""

    wrap: Callable[[gym.Env, float, int], gym.Env]
    unit: str


@dataclass(frozen=True)
class Suite:
    """Everything the rest of the project needs to know about one simulated suite.

    ``make_env(task_cfg)``: the Gymnasium environment (dict observations keyed by
    the task's ``shape_meta``, ``render()`` an RGB frame). ``tracker(task_cfg)``: a
    fresh ``EpisodeTracker``. ``metrics(results, task_cfg)``: suite extras over
    episodes (e.g. Kitchen's p1..p4), beside the generic score and success rate.
    ``expert(seed, cfg)``: ``(arrays keyed like the dataset, summary with success
    and kept)`` or None; ``expert_action_noise``: whether it honours ``demos.action_noise``
    (DART-style data: noisy actions executed, clean ones recorded). ``obs_noise_unit``: what observation noise is measured in.
    ``obs_range(key)``: value range of random observations for ``fmpolicy speed``.
    ``histogram``: the per-episode value plotted by ``eval`` (key, label, success threshold).
    ``perturbations``: the suite's own; ``register`` adds ``GENERIC_PERTURBATIONS`` (``action_noise``).
    """

    name: str
    make_env: Callable[[dict[str, Any]], gym.Env]
    tracker: Callable[[dict[str, Any]], EpisodeTracker]
    success_text: str
    metrics: Callable[[list[dict[str, Any]], dict[str, Any]], dict[str, Any]] = lambda results, task: {}
    expert: Callable[[int, dict[str, Any]], tuple[dict[str, np.ndarray], dict[str, Any]]] | None = None
    expert_action_noise: bool = False
    perturbations: dict[str, Perturbation] = field(default_factory=dict)
    obs_noise_unit: str = "observation units"
    obs_range: Callable[[str], tuple[float, float]] = lambda key: (-1.0, 1.0)
    histogram: tuple[str, str, float | None] = ("score", "episode score", None)
    table_metrics: tuple[str, ...] = ()  # keys of ``metrics`` shown as columns of bench tables
    dataset_meta: Callable[[dict[str, Any]], dict[str, Any]] = lambda task: {}  # what a written dataset records


# Perturbations every suite offers (a suite's own of the same name wins); ``at_step`` does not apply to them.
GENERIC_PERTURBATIONS: dict[str, Perturbation] = {
    "action_noise": Perturbation(lambda env, level, at: ActionNoise(env, level), "action units"),
}

_REGISTRY: dict[str, Suite] = {}


def register(suite: Suite) -> Suite:
    """Registers ``suite`` with the generic perturbations added to its own; returns the registered suite."""
    suite = replace(suite, perturbations={**GENERIC_PERTURBATIONS, **suite.perturbations})
    _REGISTRY[suite.name] = suite
    return suite


def _builtin() -> set[str]:
    """Suite modules shipped in ``fmpolicy/envs`` (helpers such as experts end in ``_expert``)."""
    import fmpolicy.envs

    names = {m.name for m in pkgutil.iter_modules(fmpolicy.envs.__path__)}
    return {n for n in names if n not in _NOT_SUITES and not n.endswith("_expert")}


def available() -> list[str]:
    return sorted(set(_REGISTRY) | _builtin())


def get_suite(name: str | None) -> Suite:
    if name not in _REGISTRY and name in _builtin():
        importlib.import_module(f"fmpolicy.envs.{name}")
    if name not in _REGISTRY:
        raise UserError(f"unknown suite '{name}': choose one of {', '.join(available())} (task.suite)")
    return _REGISTRY[name]

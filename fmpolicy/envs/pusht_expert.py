"""A scripted Push-T expert: sampling-based planning of push primitives on the live simulator.

Each decision samples push primitives (a contact point on the T's outline, a
push direction near the inward normal, a push distance), simulates each one on
the simulator itself (saving and restoring the two bodies' states), and executes
the one that leaves the block's 9 keypoints closest to the goal's. A primitive
is a list of agent targets: an approach path that goes around the block when the
straight line would hit it, then a slow push, then a short hold. No learning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gym_pusht.envs.pusht import PushTEnv
from pymunk import Vec2d
from shapely.geometry import LineString, Polygon

from fmpolicy.envs.pusht import SUCCESS_COVERAGE, PushTKeypointEnv, block_keypoints

# The T's outline in the block's local frame (gym-pusht's two boxes), counter-clockwise.
T_OUTLINE = np.array([[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float)
AGENT_RADIUS = 15.0
GOAL = np.array([256.0, 256.0, np.pi / 4])


@dataclass
class ExpertConfig:
    candidates: int = 64  # primitives simulated per decision
    approach_speed: float = 25.0  # px per control step
    push_speed: float = 6.0
    hold_steps: int = 2
    min_push: float = 1.5
    max_push: float = 80.0
    step_cost: float = 0.02  # px of keypoint error one control step is worth
    refine: int = 24  # perturbations of the best primitive simulated after the first round


def _save(sim: PushTEnv) -> tuple:
    a, b = sim.agent, sim.block
    return (Vec2d(*a.position), Vec2d(*a.velocity), Vec2d(*b.position), b.angle, Vec2d(*b.velocity), b.angular_velocity)


def _restore(sim: PushTEnv, state: tuple) -> None:
    a, b = sim.agent, sim.block
    a.position, a.velocity = state[0], state[1]
    b.angle = state[3]  # angle before position (see PushTKeypointEnv.set_state)
    b.position, b.velocity, b.angular_velocity = state[2], state[4], state[5]


def _physics_step(sim: PushTEnv, target: np.ndarray) -> None:
    """gym-pusht's control step without its coverage bookkeeping."""
    target = Vec2d(float(target[0]), float(target[1]))
    for _ in range(int(1 / (sim.dt * sim.control_hz))):
        acc = sim.k_p * (target - sim.agent.position) + sim.k_v * (Vec2d(0, 0) - sim.agent.velocity)
        sim.agent.velocity += acc * sim.dt
        sim.space.step(sim.dt)


def keypoint_error(sim: PushTEnv) -> float:
    pose = np.array([*sim.block.position, sim.block.angle])
    return float(np.linalg.norm(block_keypoints(pose[:2], pose[2]) - GOAL_KEYPOINTS, axis=-1).mean())


GOAL_KEYPOINTS = block_keypoints(GOAL[:2], GOAL[2])


def _outline_world(sim: PushTEnv) -> np.ndarray:
    return np.array([tuple(sim.block.local_to_world(Vec2d(*p))) for p in T_OUTLINE])


def _polyline(points: list[np.ndarray], speed: float) -> list[np.ndarray]:
    """Targets every ``speed`` px along the polyline through ``points`` (first point excluded)."""
    out = []
    for a, b in zip(points[:-1], points[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / speed)))
        out += [a + (b - a) * (i / n) for i in range(1, n + 1)]
    return out


class PushTExpert:
    """Plans on ``env.sim`` (a gym-pusht simulator); call ``act`` for the next targets."""

    def __init__(self, env: PushTKeypointEnv, seed: int = 0, config: ExpertConfig | None = None) -> None:
        self.env, self.cfg = env, config or ExpertConfig()
        self.rng = np.random.default_rng(seed)

    # -- primitives -------------------------------------------------------------------------
    def _approach(self, start: np.ndarray, pre: np.ndarray, outline: np.ndarray) -> list[np.ndarray]:
        poly = Polygon(outline)
        if LineString([start, pre]).distance(poly) > AGENT_RADIUS + 3:
            return _polyline([start, pre], self.cfg.approach_speed)
        centre = np.asarray(poly.centroid.coords[0])
        radius = 105.0
        a0 = np.arctan2(*(start - centre)[::-1])
        a1 = np.arctan2(*(pre - centre)[::-1])
        delta = (a1 - a0 + np.pi) % (2 * np.pi) - np.pi
        n = max(1, int(abs(delta) * radius / self.cfg.approach_speed))
        arc = [
            centre + radius * np.array([np.cos(a0 + delta * i / n), np.sin(a0 + delta * i / n)]) for i in range(n + 1)
        ]
        arc = [np.clip(p, 20.0, 492.0) for p in arc]
        return _polyline([start, *arc, pre], self.cfg.approach_speed)

    def _primitive(self, sim, edge: int, frac: float, turn: float, dist: float) -> list[np.ndarray]:
        outline = _outline_world(sim)
        a, b = outline[edge], outline[(edge + 1) % len(outline)]
        contact = a + frac * (b - a)
        tangent = (b - a) / np.linalg.norm(b - a)
        normal = np.array([tangent[1], -tangent[0]])  # outward for a counter-clockwise outline
        c, s = np.cos(turn), np.sin(turn)
        push_dir = -np.array([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1]])
        pre = contact - push_dir * (AGENT_RADIUS + 6.0)
        end = contact - push_dir * (AGENT_RADIUS - dist)
        start = np.array(sim.agent.position)
        targets = self._approach(start, pre, outline)
        targets += _polyline([pre, end], self.cfg.push_speed)
        targets += [end] * self.cfg.hold_steps
        return [np.clip(t, 0.0, 512.0) for t in targets]

    def _sample(self, error: float) -> tuple[int, float, float, float]:
        lengths = np.linalg.norm(np.roll(T_OUTLINE, -1, 0) - T_OUTLINE, axis=1)
        edge = int(self.rng.choice(len(T_OUTLINE), p=lengths / lengths.sum()))
        frac = self.rng.uniform(0.1, 0.9)
        turn = self.rng.uniform(-0.5, 0.5)
        hi = min(self.cfg.max_push, max(4 * error, 4.0))
        dist = float(np.exp(self.rng.uniform(np.log(self.cfg.min_push), np.log(hi))))
        return edge, frac, turn, dist

    def _score(self, sim, targets: list[np.ndarray], budget: int) -> float:
        state = _save(sim)
        for t in targets[:budget]:
            _physics_step(sim, t)
        cost = keypoint_error(sim) + self.cfg.step_cost * len(targets)
        _restore(sim, state)
        return cost

    # -- decisions --------------------------------------------------------------------------
    def plan(self, budget: int) -> list[np.ndarray]:
        """The targets of the best primitive found, at most ``budget`` steps long."""
        sim = self.env.sim
        error = keypoint_error(sim)
        best, best_cost = None, error
        params = [self._sample(error) for _ in range(self.cfg.candidates)]
        for round_ in range(2):
            for p in params:
                targets = self._primitive(sim, *p)
                cost = self._score(sim, targets, budget)
                if cost < best_cost:
                    best, best_cost, best_p = targets, cost, p
            if best is None or round_ == 1:
                break
            e, f, t, d = best_p
            params = [
                (
                    e,
                    float(np.clip(f + self.rng.normal(0, 0.08), 0.02, 0.98)),
                    t + self.rng.normal(0, 0.15),
                    d * np.exp(self.rng.normal(0, 0.3)),
                )
                for _ in range(self.cfg.refine)
            ]
        return best[:budget] if best is not None else []


def run_expert_episode(
    env: PushTKeypointEnv, seed: int, max_steps: int = 300, config: ExpertConfig | None = None
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One expert episode from ``env.reset(seed)``; returns its arrays (dataset layout) and a summary."""
    expert = PushTExpert(env, seed, config)
    obs, info = env.reset(seed=seed)
    rec: dict[str, list] = {"state": [], "keypoint": [], "action": [], "n_contacts": []}
    coverage, steps, stalls = info["coverage"], 0, 0
    while steps < max_steps and coverage <= SUCCESS_COVERAGE:
        targets = expert.plan(max_steps - steps)
        if not targets:  # nothing sampled improves: wiggle toward the block and try again
            stalls += 1
            if stalls > 5:
                break
            targets = [np.clip(np.array(env.sim.agent.position) + expert.rng.normal(0, 20, 2), 0, 512)]
        for target in targets:
            rec["state"].append(obs["state"])
            rec["keypoint"].append(obs["keypoint"])
            rec["action"].append(target)
            obs, _, terminated, _, info = env.step(target)
            rec["n_contacts"].append([info["n_contacts"]])
            coverage, steps = max(coverage, info["coverage"]), steps + 1
            if terminated or steps >= max_steps:
                break
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in rec.items()}
    return arrays, {"seed": seed, "steps": steps, "max_coverage": coverage, "final_coverage": info["coverage"]}

"""Scripted robomimic experts (Lift, PickPlaceCan, NutAssemblySquare) from privileged object poses.

The arm is driven through the task's own action space, delta ``OSC_POSE`` with robosuite's default scaling: the
position part is ``(target - grip site) / 0.05`` clipped to a per-seed step length (the controller's goal becomes
the waypoint, so the arm servoes there at a speed set by the step length), the rotation part is the axis-angle
from the grip site's orientation to the target orientation divided by 0.5 (both in the robot base frame, which is
the world frame rotated by identity in these scenes), the gripper -1 (open) or +1 (close). The hand always points
down; its yaw is chosen per phase so the fingers close across the object: the cube's faces (yaw mod 90 degrees),
the square nut's handle (yaw mod 180 degrees), the can needs none.

Scripts (each phase ends when its waypoint is reached or after a time-out): Lift - hover above the cube, descend
to its centre, close, lift. Can - hover, descend around the can's upper half, close, lift above the bin walls,
carry to the target bin's centre, lower, open, rise (robosuite counts the can only once the gripper has left it).
Square - hover above the nut's handle, descend, close, lift above the peg, bring the nut's centre above the peg
with its sides aligned to the peg's (closed loop on the live nut pose, so slip in the grasp is corrected), lower
onto the peg, open, rise. Each seed draws the speed, hover heights, pauses and millimetre-scale offsets, so the
episodes are not one trajectory repeated. An episode ends at the first step the environment reports success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

POS_SCALE, ROT_SCALE = 0.05, 0.5  # robosuite's OSC_POSE output_max: metres and radians per unit action
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # grip site pointing down, fingers along y


def _rz(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _yaw(mat: np.ndarray) -> float:
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def _wrap(angle: float, period: float) -> float:
    """``angle`` mapped into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


@dataclass
class Waypoint:
    """One phase's target: grip-site position, hand yaw (about world z, from ``R_DOWN``), gripper command."""

    pos: np.ndarray
    yaw: float
    grip: float
    tol: float = 0.01  # position tolerance (m) that ends the phase
    speed: float = 1.0  # factor on the seed's step length


class _Hand:
    """Reads the grip site and turns a waypoint into a 7-value OSC_POSE action."""

    def __init__(self, env: Any, step: float) -> None:
        self.rs = env.env  # the robosuite environment
        self.site = self.rs.robots[0].eef_site_id["right"]
        self.step_len = step

    def pos(self) -> np.ndarray:
        return self.rs.sim.data.site_xpos[self.site].copy()

    def rot(self) -> np.ndarray:
        return self.rs.sim.data.site_xmat[self.site].reshape(3, 3).copy()

    def yaw(self) -> float:
        return _yaw(self.rot() @ R_DOWN.T)

    def action(self, wp: Waypoint) -> np.ndarray:
        err = wp.pos - self.pos()
        limit = self.step_len * wp.speed
        norm = np.linalg.norm(err)
        delta = err if norm <= limit else err * (limit / norm)
        rot_err = Rotation.from_matrix(_rz(wp.yaw) @ R_DOWN @ self.rot().T).as_rotvec()
        out = np.concatenate([delta / POS_SCALE, rot_err / ROT_SCALE, [wp.grip]])
        return np.clip(out, -1.0, 1.0)

    def reached(self, wp: Waypoint) -> bool:
        return bool(np.linalg.norm(wp.pos - self.pos()) < wp.tol)


@dataclass
class Phase:
    """``target()`` is re-evaluated every step (closed loop on live poses); the phase lasts at least ``min_steps``
    and at most ``max_steps`` steps and ends early once the waypoint is reached (``until`` may add a condition)."""

    name: str
    target: Callable[[], Waypoint]
    max_steps: int
    min_steps: int = 0
    until: Callable[[], bool] | None = None


class _Scene:
    """Privileged poses from the robosuite simulator."""

    def __init__(self, env: Any) -> None:
        self.rs = env.env

    def body_pos(self, body_id: int) -> np.ndarray:
        return self.rs.sim.data.body_xpos[body_id].copy()

    def body_rot(self, body_id: int) -> np.ndarray:
        return self.rs.sim.data.body_xmat[body_id].reshape(3, 3).copy()


def _lift_phases(env: Any, hand: _Hand, rng: np.random.Generator) -> list[Phase]:
    sc = _Scene(env)
    cube = sc.rs.cube_body_id
    hover = rng.uniform(0.05, 0.10)
    offset = np.append(rng.uniform(-0.004, 0.004, 2), rng.uniform(-0.008, 0.0))
    lift_h = rng.uniform(0.10, 0.16)
    state: dict[str, Any] = {}

    def cube_yaw() -> float:
        # the fingers close across two faces: the yaw nearest the hand's own, modulo 90 degrees
        face = _yaw(sc.body_rot(cube))
        return hand.yaw() + _wrap(face - hand.yaw(), np.pi / 2)

    def above() -> Waypoint:
        state["yaw"] = cube_yaw()
        return Waypoint(sc.body_pos(cube) + offset + [0, 0, hover], state["yaw"], -1.0)

    def down() -> Waypoint:
        return Waypoint(sc.body_pos(cube) + offset, state["yaw"], -1.0, tol=0.006, speed=0.6)

    def grip() -> Waypoint:
        state.setdefault("grip_pos", hand.pos())
        return Waypoint(state["grip_pos"], state["yaw"], 1.0, tol=0.0)

    def up() -> Waypoint:
        return Waypoint(state["grip_pos"] + [0, 0, lift_h], state["yaw"], 1.0, tol=0.0)

    return [
        Phase("above", above, 120, min_steps=int(rng.integers(0, 6))),
        Phase("down", down, 80),
        Phase("grip", grip, int(rng.integers(8, 14)), min_steps=8),
        Phase("up", up, 150),
    ]


def _can_phases(env: Any, hand: _Hand, rng: np.random.Generator) -> list[Phase]:
    sc = _Scene(env)
    can = sc.rs.obj_body_id["Can"]
    # The can's quadrant of the goal bin: x in [bin x, bin x + half size], y likewise. Its centre lies at the edge of
    # the Panda's reach, so aim at the near part of the quadrant, a can radius or two in from its inner corner.
    lo = np.array(sc.rs.bin2_pos[:2], dtype=float)
    goal = np.append(lo + rng.uniform(0.04, 0.07, 2), sc.rs.bin2_pos[2])
    hover = rng.uniform(0.06, 0.10)
    grasp_dz = rng.uniform(0.0, 0.015)
    carry_z = rng.uniform(1.0, 1.05)
    drop_z = rng.uniform(0.93, 0.97)
    state: dict[str, Any] = {}

    def above() -> Waypoint:
        state["yaw"] = hand.yaw() if "yaw" not in state else state["yaw"]
        return Waypoint(sc.body_pos(can) + [0, 0, hover], state["yaw"], -1.0)

    def down() -> Waypoint:
        return Waypoint(sc.body_pos(can) + [0, 0, grasp_dz], state["yaw"], -1.0, tol=0.006, speed=0.6)

    def grip() -> Waypoint:
        state.setdefault("grip_pos", hand.pos())
        return Waypoint(state["grip_pos"], state["yaw"], 1.0, tol=0.0)

    def up() -> Waypoint:
        p = state["grip_pos"].copy()
        p[2] = carry_z
        return Waypoint(p, state["yaw"], 1.0, tol=0.02)

    def carry() -> Waypoint:
        # aim the can (not the hand) at the goal: the can may hang off-centre in the grasp
        off = hand.pos() - sc.body_pos(can)
        p = goal + [off[0], off[1], 0.0]
        p[2] = carry_z
        return Waypoint(p, state["yaw"], 1.0, tol=0.015)

    def lower() -> Waypoint:
        off = hand.pos() - sc.body_pos(can)
        p = goal + [off[0], off[1], 0.0]
        p[2] = drop_z
        return Waypoint(p, state["yaw"], 1.0, tol=0.01, speed=0.7)

    def release() -> Waypoint:
        state.setdefault("release_pos", hand.pos())
        return Waypoint(state["release_pos"], state["yaw"], -1.0, tol=0.0)

    def rise() -> Waypoint:
        return Waypoint(state["release_pos"] + [0, 0, 0.15], state["yaw"], -1.0, tol=0.0)

    return [
        Phase("above", above, 120, min_steps=int(rng.integers(0, 6))),
        Phase("down", down, 80),
        Phase("grip", grip, int(rng.integers(8, 14)), min_steps=8),
        Phase("up", up, 80),
        Phase("carry", carry, 150),
        Phase("lower", lower, 60),
        Phase("release", release, int(rng.integers(5, 10)), min_steps=5),
        Phase("rise", rise, 100),
    ]


def _square_phases(env: Any, hand: _Hand, rng: np.random.Generator) -> list[Phase]:
    sc = _Scene(env)
    nut_obj = sc.rs.nuts[0]
    nut = sc.rs.obj_body_id[nut_obj.name]
    handle = sc.rs.sim.model.site_name2id(nut_obj.important_sites["handle"])
    peg = sc.rs.peg1_body_id
    hover = rng.uniform(0.06, 0.10)
    grasp_out = rng.uniform(-0.004, 0.008)  # along the handle, outward from its site
    carry_dz = rng.uniform(0.13, 0.16)  # nut centre above the peg's base while carrying (its top is at +0.10)
    state: dict[str, Any] = {}

    def handle_pos() -> np.ndarray:
        return sc.rs.sim.data.site_xpos[handle].copy() + sc.body_rot(nut)[:, 0] * grasp_out

    def above() -> Waypoint:
        if "yaw" not in state:
            # fingers close across the handle (along the nut's y axis): the hand's yaw = the nut's, modulo 180
            state["yaw"] = hand.yaw() + _wrap(_yaw(sc.body_rot(nut)) - hand.yaw(), np.pi)
        return Waypoint(handle_pos() + [0, 0, hover], state["yaw"], -1.0)

    def down() -> Waypoint:
        return Waypoint(handle_pos() + [0, 0, -0.002], state["yaw"], -1.0, tol=0.005, speed=0.6)

    def grip() -> Waypoint:
        state.setdefault("grip_pos", hand.pos())
        return Waypoint(state["grip_pos"], state["yaw"], 1.0, tol=0.0)

    def align_target(height: float) -> tuple[np.ndarray, float]:
        # the hand target that brings the nut's centre to the peg at ``height`` and its sides parallel to the peg's
        off = hand.pos() - sc.body_pos(nut)
        p = sc.body_pos(peg) + off
        p[2] = sc.body_pos(peg)[2] + off[2] + height
        # integral action on the nut's xy error: the OSC arm holding the nut sags centimetres short of its goal
        err = sc.body_pos(peg)[:2] - sc.body_pos(nut)[:2]
        state["integral"] = np.clip(state.get("integral", np.zeros(2)) + 0.1 * err, -0.04, 0.04)
        p[:2] += state["integral"]
        yaw = hand.yaw() - _wrap(_yaw(sc.body_rot(nut)) - _yaw(sc.body_rot(peg)), np.pi / 2)
        return p, yaw

    def up() -> Waypoint:
        p = state["grip_pos"].copy()
        p[2] = sc.body_pos(peg)[2] + carry_dz + (hand.pos() - sc.body_pos(nut))[2]
        return Waypoint(p, state["yaw"], 1.0, tol=0.02)

    def carry() -> Waypoint:
        p, yaw = align_target(carry_dz)
        state["yaw"] = yaw
        return Waypoint(p, yaw, 1.0, tol=0.004)

    def nut_near_peg() -> bool:
        return bool(np.linalg.norm(sc.body_pos(nut)[:2] - sc.body_pos(peg)[:2]) < 0.004)

    def lower() -> Waypoint:
        p, yaw = align_target(0.03)
        return Waypoint(p, yaw, 1.0, tol=0.005, speed=0.5)

    def release() -> Waypoint:
        state.setdefault("release_pos", hand.pos())
        return Waypoint(state["release_pos"], hand.yaw(), -1.0, tol=0.0)

    def rise() -> Waypoint:
        return Waypoint(state["release_pos"] + [0, 0, 0.12], hand.yaw(), -1.0, tol=0.0)

    return [
        Phase("above", above, 120, min_steps=int(rng.integers(0, 6))),
        Phase("down", down, 80),
        Phase("grip", grip, int(rng.integers(8, 14)), min_steps=8),
        Phase("up", up, 80),
        Phase("carry", carry, 150, until=nut_near_peg),
        Phase("lower", lower, 80),
        Phase("release", release, int(rng.integers(6, 10)), min_steps=6),
        Phase("rise", rise, 100),
    ]


SCRIPTS = {"Lift": _lift_phases, "PickPlaceCan": _can_phases, "NutAssemblySquare": _square_phases}


def run_expert_episode(env: Any, seed: int, max_steps: int = 400) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One scripted episode on a ``RobomimicEnv`` from ``seed``.

    Returns arrays keyed like a robomimic demo (the observation keys, ``action``, ``states``, ``rewards``,
    ``dones``, ``next_obs/<key>`` holding the observation after the last action, and ``model_file``, the
    episode's MuJoCo XML as a 0-d string array) and the summary
    ``{"seed", "success", "kept", "steps"}``; kept = succeeded. The episode stops at the first success.
    """
    name = env.env_args["env_name"]
    rng = np.random.default_rng([seed, 7919])
    obs, info = env.reset(seed=seed)
    model_file = env.model_xml()
    hand = _Hand(env, step=rng.uniform(0.025, 0.045))
    phases = SCRIPTS[name](env, hand, rng)
    keys = list(obs)
    rec: dict[str, list[Any]] = {k: [] for k in [*keys, "action", "states", "rewards", "dones"]}
    success, steps, phase_i, in_phase = bool(info["success"]), 0, 0, 0
    lengths: list[int] = []  # steps spent in each finished phase
    while not success and steps < max_steps and phase_i < len(phases):
        phase = phases[phase_i]
        wp = phase.target()
        action = hand.action(wp)
        for k in keys:
            rec[k].append(obs[k])
        rec["states"].append(env.get_state())
        obs, reward, _, _, info = env.step(action)
        success = bool(info["success"])
        rec["action"].append(action)
        rec["rewards"].append(reward)
        rec["dones"].append(int(success))
        steps += 1
        in_phase += 1
        done = in_phase >= phase.min_steps and hand.reached(wp) and (phase.until is None or phase.until())
        if done or in_phase >= phase.max_steps:
            lengths.append(in_phase)
            phase_i, in_phase = phase_i + 1, 0
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in rec.items()}
    if steps:
        arrays["dones"][-1] = 1
    for k in keys:
        arrays[f"next_obs/{k}"] = np.asarray(obs[k], dtype=np.float64)[None]
    arrays["model_file"] = np.array(model_file)  # 0-d string: the writer stores it as the demo's attribute
    summary = {"seed": seed, "success": success, "kept": success, "steps": steps, "phase_steps": [*lengths, in_phase]}
    return arrays, summary

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
Square - hover above the nut's handle, descend, close, lift and, near the robot, turn the nut so that its sides
will be parallel to the peg's and its handle points back towards the robot (held by a handle on the peg's far
side, the stretched arm sags short of the peg or locks its elbow straight), bring the nut's centre above the peg,
slowing on the way in (closed loop on the live nut pose, so slip in the grasp is corrected), then lower it to the
table, descending only while it is centred until its hole is round the peg's top, open, rise (robosuite counts
the nut once it is low round the peg with the grip site over 4 cm from its centre, which a hand on the handle
already is, so Square episodes mostly end during the lowering). Each seed draws the speed, hover heights, pauses
and millimetre-scale offsets, so the episodes are not one trajectory repeated. An episode ends at the first step
the environment reports success.
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


def _square_turn(nut_yaw: float, peg_yaw: float, toward: float, q7: float, q7_max: float) -> float:
    """The hand rotation about z (rad) that aligns the nut's sides with the peg's and turns its handle as near as
    possible to ``toward`` (the robot's side of the peg), among those that keep the wrist joint (``q7``, which turns
    opposite to the hand's yaw) within ``+-q7_max``. The peg is square, so the candidates are 90 degrees apart."""
    d0 = _wrap(peg_yaw - nut_yaw, np.pi / 2)
    best, best_cost = d0, np.inf
    for k in range(-4, 5):
        turn = d0 + k * np.pi / 2
        if abs(q7 - turn) > q7_max:
            continue
        cost = abs(_wrap(nut_yaw + turn - toward, 2 * np.pi)) + 0.1 * abs(turn)
        if cost < best_cost:
            best, best_cost = turn, cost
    return float(best)


def _square_phases(env: Any, hand: _Hand, rng: np.random.Generator) -> list[Phase]:
    sc = _Scene(env)
    nut_obj = sc.rs.nuts[0]
    nut = sc.rs.obj_body_id[nut_obj.name]
    handle = sc.rs.sim.model.site_name2id(nut_obj.important_sites["handle"])
    peg = sc.rs.peg1_body_id
    robot = sc.rs.robots[0]
    base = sc.rs.sim.model.body_name2id(robot.robot_model.root_body)
    wrist = robot._ref_joint_pos_indexes[-1]  # the last joint turns the hand about its pointing axis
    table_z = float(sc.rs.table_offset[2])
    hover = rng.uniform(0.06, 0.10)
    grasp_out = rng.uniform(-0.004, 0.008)  # along the handle, outward from its site
    carry_dz = rng.uniform(0.14, 0.17)  # nut centre above the peg's centre while carrying (its top is at +0.10)
    set_dz = rng.uniform(0.010, 0.025)  # nut centre above the table at the end of the lowering (it rests at +0.01)
    max_turn = rng.uniform(0.4, 0.5)  # hand rotation per step (rad) while turning the nut
    state: dict[str, Any] = {}

    def handle_pos() -> np.ndarray:
        return sc.rs.sim.data.site_xpos[handle].copy() + sc.body_rot(nut)[:, 0] * grasp_out

    def above() -> Waypoint:
        if "yaw" not in state:
            # fingers close across the handle (along the nut's y axis): the hand's yaw = the nut's, modulo 180
            state["yaw"] = hand.yaw() + _wrap(_yaw(sc.body_rot(nut)) - hand.yaw(), np.pi)
        return Waypoint(handle_pos() + [0, 0, hover], state["yaw"], -1.0)

    def down() -> Waypoint:
        # a finger resting on the nut's ring can stop the hand millimetres short along the handle: once the hand
        # stalls, within 1.2 cm is close enough
        moved = np.linalg.norm(hand.pos() - state.get("last_hand", np.full(3, np.inf)))
        state["last_hand"] = hand.pos()
        tol = 0.012 if moved < 0.0003 else 0.005
        return Waypoint(handle_pos() + [0, 0, -0.002], state["yaw"], -1.0, tol=tol, speed=0.6)

    def grip() -> Waypoint:
        state.setdefault("grip_pos", hand.pos())
        return Waypoint(state["grip_pos"], state["yaw"], 1.0, tol=0.0)

    def nut_turn_left() -> float:
        # the nut's yaw, unwrapped step by step, against its goal: the handle turned towards the robot's base (with
        # the handle on the far side of the peg the arm, stretched, sags short of the peg); turned in steps of at
        # most ``max_turn`` so the hand turns the chosen way round
        yaw = _yaw(sc.body_rot(nut))
        if "nut_yaw" not in state:
            peg_pos, base_pos = sc.body_pos(peg), sc.body_pos(base)
            toward = float(np.arctan2(*(base_pos - peg_pos)[1::-1]))
            q7 = float(sc.rs.sim.data.qpos[wrist])
            turn = _square_turn(yaw, _yaw(sc.body_rot(peg)), toward, q7, 2.6)
            state["nut_yaw"], state["nut_goal"] = yaw, yaw + turn
        state["nut_yaw"] += _wrap(yaw - state["nut_yaw"], 2 * np.pi)
        return state["nut_goal"] - state["nut_yaw"]

    def align_target(height: float) -> tuple[np.ndarray, float]:
        # the hand target that brings the nut's centre ``height`` above the peg's centre and its sides parallel to
        # the peg's
        off = hand.pos() - sc.body_pos(nut)
        p = sc.body_pos(peg) + off
        p[2] = sc.body_pos(peg)[2] + off[2] + height
        # integral action on the nut's xy error once near (the OSC arm holding the nut stops millimetres short)
        err = sc.body_pos(peg)[:2] - sc.body_pos(nut)[:2]
        if np.linalg.norm(err) < 0.02:
            state["integral"] = np.clip(state.get("integral", np.zeros(2)) + 0.1 * err, -0.02, 0.02)
        p[:2] += state.get("integral", np.zeros(2))
        yaw = hand.yaw() + float(np.clip(nut_turn_left(), -max_turn, max_turn))
        return p, yaw

    def up() -> Waypoint:
        # lift, and once clear of the table turn the nut here, near the robot: turned over the peg, with the
        # handle on its far side on the way, the stretched arm can end in its straight-elbow singularity
        p = state["grip_pos"].copy()
        p[2] = sc.body_pos(peg)[2] + carry_dz + (hand.pos() - sc.body_pos(nut))[2]
        yaw = state["yaw"]
        if sc.body_pos(nut)[2] > table_z + 0.04:
            yaw = hand.yaw() + float(np.clip(nut_turn_left(), -max_turn, max_turn))
        return Waypoint(p, yaw, 1.0, tol=0.02)

    def turned() -> bool:
        return abs(nut_turn_left()) < np.radians(15)

    def nut_xy_err() -> float:
        return float(np.linalg.norm(sc.body_pos(nut)[:2] - sc.body_pos(peg)[:2]))

    def carry() -> Waypoint:
        p, yaw = align_target(carry_dz)
        # slow down on the way in: the arm, driven at full step length, overshoots the peg by centimetres
        return Waypoint(p, yaw, 1.0, tol=0.02, speed=float(np.clip(nut_xy_err() / 0.1, 0.25, 1.0)))

    def nut_settled() -> bool:
        # the nut's centre over the peg, its sides aligned and (nearly) at rest
        moved = np.linalg.norm(sc.body_pos(nut) - state.get("last_nut", np.full(3, np.inf)))
        state["last_nut"] = sc.body_pos(nut)
        return bool(nut_xy_err() < 0.003 and abs(nut_turn_left()) < np.radians(3) and moved < 0.001)

    def lower() -> Waypoint:
        # down to the table, guarded: until the nut's hole is round the peg's top (its top is at +0.10, the nut's
        # half thickness is 0.01), descend only while the nut's centre is within 3 mm of the peg's; otherwise hold
        # (or climb back to) 1.5 cm above the top while the xy loop corrects
        height = table_z + set_dz - sc.body_pos(peg)[2]
        engaged = sc.body_pos(nut)[2] - sc.body_pos(peg)[2] < 0.105
        if not engaged and nut_xy_err() > 0.003:
            height = 0.125
        p, yaw = align_target(height)
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
        Phase("up", up, 80, until=turned),
        Phase("carry", carry, 150, until=nut_settled),
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

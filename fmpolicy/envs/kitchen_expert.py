"""A scripted Franka Kitchen expert: Cartesian waypoints from privileged MuJoCo state, resolved-rate joint control.

Each task is a short script of phases (approach, reach in, grip, manipulate, release, retreat). A phase names a
target for the "tool point" (between the finger pads, 3.5 cm past the ``end_effector`` site) and a target hand
orientation, both computed from live simulator state (handle, lever and kettle sites, the microwave door's hinge).
Every step the pose error becomes a Cartesian twist (proportional gain, speed-capped), the twist becomes joint
velocities through the tool point's MuJoCo Jacobian (damped least squares, with a null-space pull toward the start
posture), and the joint velocities become the env's action: FrankaKitchen-v1 sends ``obs_qpos + 2 * action * dt`` to
position servos (kp 870 / 120, joint damping 100 / 10), so the action adds the servo lag and the gravity offset
(``qfrc_bias / kp``) to the desired motion. Fingers are fully opened or closed. The microwave pinch only holds from
the env's initial arm posture, so before the microwave (unless it is first) and right after it the arm returns to that
"home" posture by joint-space control (``Command.q``); the other tasks start from wherever the last one ended.

Per task: microwave - pinch the handle bar deep between the fingers and pull it slowly along the door's arc about its
hinge (the hand turns about half as much as the door) until it is 0.5-0.58 rad open; kettle - grip the handle bar from the front with the hand rolled 90 degrees (pads above and below the bar),
lift, carry to the top-left burner, set down, release; light switch - with closed fingers, sweep the lever tip toward
-x; slide cabinet - put the closed fingers left of the handle and push it +x. Each seed draws the task order, the
speed, the reach-in depth, pause lengths and centimetre-scale waypoint offsets, so episodes differ. A task counts as
done only when the env reports it in ``info["episode_task_completions"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gymnasium as gym
import mujoco
import numpy as np

TOOL_OFFSET = np.array([0.0, -0.005, 0.035])  # midpoint between the finger pads, in the end_effector site frame (m)
KETTLE_GOAL = np.array([-0.23, 0.75, 1.62])  # kitchen_env OBS_ELEMENT_GOALS["kettle"][:3]
KETTLE_BAR_HEIGHT = 0.259  # kettle_site above the kettle body origin
SUPPORTED_TASKS = ("microwave", "kettle", "light switch", "slide cabinet")
ARM_KP = np.array([870.0, 870, 870, 870, 120, 120, 120])
ARM_DAMPING = np.array([100.0, 100, 100, 100, 10, 10, 10])
NULL_GAIN = 0.5  # null-space pull toward the rest posture (1/s)
JOINT_GAIN = 4.0  # joint-space moves: proportional gain (1/s) and speed cap (rad/s)
JOINT_SPEED = 1.2


@dataclass
class Command:
    """What the hand should do this step."""

    pos: np.ndarray  # tool-point target (world)
    rot: np.ndarray  # 3x3 target orientation of the end_effector site
    grip: float  # +1 open, -1 close
    speed: float | None = None  # optional speed cap override (m/s)
    q: np.ndarray | None = None  # joint-space target: when set, pos/rot are ignored and the arm moves in joint space


@dataclass
class _Ctx:
    model: mujoco.MjModel
    data: mujoco.MjData
    rng: np.random.Generator
    speed: float  # linear speed cap (m/s)
    depth: float  # how far past a handle's centre the pads go (m)
    pause: int  # steps spent closing / opening the fingers
    dt: float
    q_rest: np.ndarray = field(default_factory=lambda: np.zeros(7))
    q_home: np.ndarray = field(
        default_factory=lambda: np.zeros(7)
    )  # the env's initial posture, visited around the microwave
    q_lo: np.ndarray = field(default_factory=lambda: np.zeros(7))  # joint limits: the model's and the env's ctrl clip
    q_hi: np.ndarray = field(default_factory=lambda: np.zeros(7))
    completed: list[str] = field(default_factory=list)

    def sid(self, name: str) -> int:
        return mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)

    def bid(self, name: str) -> int:
        return mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)

    def site(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.sid(name)].copy()

    def ee_rot(self) -> np.ndarray:
        return self.data.site_xmat[self.sid("end_effector")].reshape(3, 3).copy()

    def tool(self) -> np.ndarray:
        return self.site("end_effector") + self.ee_rot() @ TOOL_OFFSET

    def qpos(self, joint: str) -> float:
        j = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        return float(self.data.qpos[self.model.jnt_qposadr[j]])

    def jitter(self, scale: float) -> np.ndarray:
        return self.rng.uniform(-scale, scale, 3)


def frame(approach: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Site orientation whose z axis is ``approach`` and x axis is ``up`` (orthogonalised); fingers close along y."""
    z = approach / np.linalg.norm(approach)
    x = up - z * (up @ z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_err(r: np.ndarray, rd: np.ndarray) -> np.ndarray:
    return 0.5 * sum(np.cross(r[:, i], rd[:, i]) for i in range(3))


Target = np.ndarray | Callable[[], np.ndarray]


def _move(
    ctx: _Ctx,
    target: Target,
    rot: np.ndarray | Callable[[], np.ndarray],
    grip: float,
    tol: float = 0.015,
    max_steps: int = 40,
    min_steps: int = 0,
    speed: float | None = None,
    until: Callable[[], bool] | None = None,
) -> Iterator[Command]:
    """Yield commands toward ``target`` until within ``tol`` (and 0.1 rad), ``until()`` holds, or time runs out."""
    for k in range(max_steps):
        pos = target() if callable(target) else target
        r = rot() if callable(rot) else rot
        if until is not None and until():
            return
        near = np.linalg.norm(pos - ctx.tool()) < tol and np.linalg.norm(_rot_err(ctx.ee_rot(), r)) < 0.1
        if k >= min_steps and near:
            return
        yield Command(pos, r, grip, speed)


def _hold(ctx: _Ctx, rot: np.ndarray, grip: float, steps: int) -> Iterator[Command]:
    pos = ctx.tool()
    for _ in range(steps):
        yield Command(pos, rot, grip)


def _go_home(ctx: _Ctx, tol: float = 0.08, max_steps: int = 40) -> Iterator[Command]:
    """Move the arm in joint space to the home posture (open fingers) so the microwave starts from the same posture."""
    for _ in range(max_steps):
        if np.abs(ctx.data.qpos[:7] - ctx.q_home).max() < tol:
            return
        yield Command(ctx.tool(), ctx.ee_rot(), 1.0, q=ctx.q_home)


# ----------------------------------------------------------------------------------------------- tasks


def _microwave(ctx: _Ctx) -> Iterator[Command]:
    door = ctx.bid("microdoorroot")
    up = np.array([0.0, 0.0, 1.0])
    a = ctx.data.xmat[door].reshape(3, 3)[:, 1].copy()  # into the door, perpendicular to its face
    # the bar goes deep between the (tapered) fingers, 1 cm past the site, so a pull along the fingers holds it
    handle = ctx.site("microhandle_site") + np.array([0.0, 0.0, ctx.rng.uniform(-0.05, 0.05)])
    rot = frame(a, up)
    pre = handle - (0.1 + ctx.rng.uniform(0, 0.03)) * a + ctx.jitter(0.01)
    yield from _move(ctx, pre, rot, 1.0, tol=0.02)
    yield from _move(ctx, handle + (0.03 + ctx.depth) * a, rot, 1.0, tol=0.008, max_steps=25)
    yield from _hold(ctx, rot, -1.0, ctx.pause + 2)

    hinge = ctx.data.xpos[door].copy()
    lead = ctx.rng.uniform(0.15, 0.2)
    turn = ctx.rng.uniform(0.4, 0.6)  # the hand turns less than the door; the round bar turns between the pads
    stop_at = ctx.rng.uniform(-0.58, -0.5)  # the env counts the door open below -0.45
    grip_pt = ctx.tool() - hinge
    theta0 = ctx.qpos("microwave")

    def angle() -> float:
        return max(ctx.qpos("microwave") - lead, stop_at - 0.25) - theta0

    yield from _move(
        ctx,
        lambda: hinge + _rot_z(angle()) @ grip_pt,
        lambda: frame(_rot_z(turn * angle()) @ a, up),
        -1.0,
        tol=0.0,
        max_steps=35,
        speed=0.2,
        until=lambda: ctx.qpos("microwave") < stop_at,
    )
    rot = frame(_rot_z(turn * (ctx.qpos("microwave") - theta0)) @ a, up)
    yield from _hold(ctx, rot, 1.0, ctx.pause)
    yield from _move(ctx, ctx.tool() - 0.12 * rot[:, 2], rot, 1.0, tol=0.03, max_steps=20)


def _kettle(ctx: _Ctx) -> Iterator[Command]:
    a = np.array([0.35 + ctx.rng.uniform(-0.08, 0.08), 0.85, -0.35])  # like the human demos: forward, right, down
    a /= np.linalg.norm(a)
    side = np.cross(a, np.array([0.0, 0.0, 1.0]))
    rot = frame(a, side)  # rolled: pads above and below the bar
    bar = ctx.site("kettle_site") + np.array([ctx.rng.uniform(-0.015, 0.015), 0.0, 0.0])
    yield from _move(ctx, bar - (0.12 + ctx.rng.uniform(0, 0.03)) * a, rot, 1.0, tol=0.015)
    yield from _move(ctx, bar + (0.015 + ctx.depth) * a, rot, 1.0, tol=0.008, max_steps=25, speed=0.3)
    yield from _hold(ctx, rot, -1.0, ctx.pause + 3)
    offset = ctx.tool() - ctx.site("kettle_site")
    lift = ctx.rng.uniform(0.07, 0.11)
    yield from _move(ctx, ctx.tool() + np.array([0, 0, lift]), rot, -1.0, tol=0.03, max_steps=20, speed=0.2)
    goal_bar = KETTLE_GOAL + np.array([0.0, 0.0, KETTLE_BAR_HEIGHT]) + ctx.jitter(0.01) * np.array([1, 1, 0])
    yield from _move(ctx, goal_bar + offset + np.array([0, 0, lift]), rot, -1.0, tol=0.03, max_steps=40, speed=0.3)
    yield from _move(ctx, goal_bar + offset + np.array([0, 0, 0.01]), rot, -1.0, tol=0.012, max_steps=25, speed=0.3)
    yield from _hold(ctx, rot, 1.0, ctx.pause)
    yield from _move(ctx, ctx.tool() - 0.12 * a + np.array([0, 0, 0.03]), rot, 1.0, tol=0.03, max_steps=20)


def _light_switch(ctx: _Ctx) -> Iterator[Command]:
    rot = frame(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    tip = ctx.site("light_site")
    dz = ctx.rng.uniform(-0.01, 0.01)
    yield from _move(ctx, tip + np.array([0.07, -0.1, dz]) + ctx.jitter(0.01), rot, -1.0, tol=0.025)
    yield from _move(ctx, tip + np.array([0.045, 0.0, dz]), rot, -1.0, tol=0.01, max_steps=25)
    end = tip + np.array([-ctx.rng.uniform(0.09, 0.12), 0.0, dz])
    yield from _move(
        ctx, end, rot, -1.0, tol=0.015, max_steps=35, speed=0.3, until=lambda: ctx.qpos("light_switch") < -0.6
    )
    yield from _move(ctx, ctx.tool() + np.array([0.0, -0.12, -0.02]), rot, -1.0, tol=0.03, max_steps=20)


def _slide_cabinet(ctx: _Ctx) -> Iterator[Command]:
    rot = frame(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    h = ctx.site("slide_site") + np.array([0.0, 0.0, ctx.rng.uniform(-0.08, -0.03)])
    yield from _move(ctx, h + np.array([-0.07, -0.1, 0.0]) + ctx.jitter(0.01), rot, -1.0, tol=0.025)
    yield from _move(ctx, h + np.array([-0.045, 0.0, 0.0]), rot, -1.0, tol=0.01, max_steps=25)
    end = h + np.array([ctx.rng.uniform(0.22, 0.3), 0.0, 0.0])
    yield from _move(
        ctx, end, rot, -1.0, tol=0.015, max_steps=40, speed=0.35, until=lambda: ctx.qpos("slide_cabinet") > 0.2
    )
    yield from _move(ctx, ctx.tool() + np.array([0.0, -0.12, -0.03]), rot, -1.0, tol=0.03, max_steps=20)


TASK_SCRIPTS: dict[str, Callable[[_Ctx], Iterator[Command]]] = {
    "microwave": _microwave,
    "kettle": _kettle,
    "light switch": _light_switch,
    "slide cabinet": _slide_cabinet,
}


# ----------------------------------------------------------------------------------------------- control


def _action(ctx: _Ctx, cmd: Command, obs_q: np.ndarray) -> np.ndarray:
    """Joint-velocity action that moves the tool point toward ``cmd`` (resolved rate, damped least squares)."""
    m, d = ctx.model, ctx.data
    sid = ctx.sid("end_effector")
    body = m.site_bodyid[sid]
    r = ctx.ee_rot()
    tool = d.site_xpos[sid] + r @ TOOL_OFFSET
    jacp = np.zeros((3, m.nv))
    jacr = np.zeros((3, m.nv))
    mujoco.mj_jac(m, d, jacp, jacr, tool, body)
    jac = np.vstack([jacp[:, :7], jacr[:, :7]])
    q = d.qpos[:7].copy()

    if cmd.q is not None:
        dq = np.clip(JOINT_GAIN * (cmd.q - q), -JOINT_SPEED, JOINT_SPEED)
        return _to_action(ctx, q, dq, obs_q, cmd.grip)

    err = cmd.pos - tool
    vmax = cmd.speed if cmd.speed is not None else ctx.speed
    v = 6.0 * err
    if np.linalg.norm(v) > vmax:
        v *= vmax / np.linalg.norm(v)
    w = 5.0 * _rot_err(r, cmd.rot)
    if np.linalg.norm(w) > 2.0:
        w *= 2.0 / np.linalg.norm(w)
    twist = np.concatenate([v, w])

    lo, hi = ctx.q_lo + 0.015, ctx.q_hi - 0.015
    free = np.ones(7, dtype=bool)
    for _ in range(4):  # active set: a joint at its limit that would move further into it is frozen
        jf = jac * free
        pinv = jf.T @ np.linalg.inv(jf @ jf.T + 0.05**2 * np.eye(6))
        null = (np.eye(7) - pinv @ jf) * free
        dq = pinv @ twist + null @ (NULL_GAIN * (ctx.q_rest - q) * free)
        blocked = free & (((q <= lo) & (dq < 0)) | ((q >= hi) & (dq > 0)))
        if not blocked.any():
            break
        free &= ~blocked
    dq = np.clip(dq * free, -1.5, 1.5)
    return _to_action(ctx, q, dq, obs_q, cmd.grip)


def _to_action(ctx: _Ctx, q: np.ndarray, dq: np.ndarray, obs_q: np.ndarray, grip: float) -> np.ndarray:
    """The env action that makes the position servos track joint velocity ``dq`` from ``q``."""
    d = ctx.data
    lag = ARM_DAMPING / ARM_KP + 0.5 * ctx.dt  # servo lag: ctrl must lead q by about this * velocity
    ctrl = q + dq * lag + d.qfrc_bias[:7] / ARM_KP
    act = np.empty(9)
    act[:7] = (ctrl - obs_q[:7]) / (2.0 * ctx.dt)
    act[7:] = grip
    return np.clip(act, -1.0, 1.0)


def run_expert_episode(
    env: gym.Env, seed: int, tasks: list[str], max_steps: int = 280, rng_order: bool = True, action_noise: float = 0.0
) -> tuple[dict[str, np.ndarray], dict]:
    """Run one scripted episode of FrankaKitchen-v1 and return its aligned observations/actions and a summary.

    ``env`` is ``gym.make("FrankaKitchen-v1", tasks_to_complete=tasks, ...)`` (possibly wrapped). The env is reset
    with ``seed``; the task order is a permutation drawn from ``np.random.default_rng(seed)`` when ``rng_order``
    (all orders can be drawn), else ``tasks`` as given.
    ``arrays["observation"][t]`` is the observation the action ``arrays["action"][t]`` was chosen from. The episode
    stops 3 steps after the env reports every task complete, or after ``max_steps``.

    ``action_noise`` > 0 collects DART-style data: the env executes the expert's action plus Gaussian noise of that
    standard deviation on the 7 arm joints (its own generator), while the clean action is recorded. The expert
    corrects the drift it did not cause, so the data shows the way back to its path, which a cloned policy
    needs once its own errors move it off that path.
    """
    for t in tasks:
        if t not in TASK_SCRIPTS:
            raise ValueError(f"unsupported kitchen task {t!r}; supported: {sorted(TASK_SCRIPTS)}")
    rng = np.random.default_rng(seed)
    order = [tasks[i] for i in rng.permutation(len(tasks))] if rng_order else list(tasks)
    obs, info = env.reset(seed=seed)
    robot = env.unwrapped.robot_env
    ctx = _Ctx(
        model=robot.model,
        data=robot.data,
        rng=rng,
        speed=float(rng.uniform(0.45, 0.6)),
        depth=float(rng.uniform(0.0, 0.006)),
        pause=int(rng.integers(3, 6)),
        dt=float(robot.dt),
    )
    ctx.q_rest = ctx.data.qpos[:7].copy()
    ctx.q_home = ctx.q_rest.copy()
    bound = np.asarray(getattr(robot, "robot_pos_bound", ctx.model.jnt_range))[:7]
    ctx.q_lo = np.maximum(ctx.model.jnt_range[:7, 0], bound[:, 0])
    ctx.q_hi = np.minimum(ctx.model.jnt_range[:7, 1], bound[:, 1])

    def commands() -> Iterator[Command]:
        for i, task in enumerate(order):
            if task not in ctx.completed:
                if i > 0 and "microwave" in (task, order[i - 1]):
                    yield from _go_home(ctx)
                yield from TASK_SCRIPTS[task](ctx)
        rest = Command(ctx.tool(), ctx.ee_rot(), 1.0)
        while True:  # nothing left to script: hold still
            yield rest

    observations, actions = [], []
    completed: list[str] = []
    completion_steps: dict[str, int] = {}
    tail = None
    gen = commands()
    noise_rng = np.random.default_rng([seed, 1])
    for step in range(max_steps):
        o = np.asarray(obs["observation"], dtype=np.float64)
        act = _action(ctx, next(gen), o[:9])
        observations.append(o.astype(np.float32))
        actions.append(act.astype(np.float32))
        executed = act.copy()
        if action_noise > 0:
            executed[:7] = np.clip(executed[:7] + noise_rng.normal(0.0, action_noise, 7), -1.0, 1.0)
        obs, _, terminated, truncated, info = env.step(executed)
        for task in info.get("episode_task_completions", []):
            if task not in completed:
                completed.append(task)
                completion_steps[task] = step + 1
        ctx.completed = completed
        if tail is None and all(t in completed for t in tasks):
            tail = 3
        if tail is not None:
            tail -= 1
            if tail < 0:
                break
        if truncated:
            break
    success = all(t in completed for t in tasks)
    arrays = {"observation": np.stack(observations), "action": np.stack(actions)}
    summary = {
        "seed": seed,
        "order": order,
        "completed": completed,
        "completion_steps": completion_steps,
        "success": success,
        "steps": len(actions),
    }
    return arrays, summary

"""Robomimic: robosuite 1.5 Lift, PickPlaceCan and NutAssemblySquare with a Panda arm, as robomimic records them.

The environment is built from robomimic's ``env_args`` (``env_name``, ``type`` 1 = robosuite, ``env_kwargs``), so a
policy is evaluated in the settings its demonstrations were recorded in: a dataset's ``data.attrs["env_args"]`` when
there is one (``task.env_args``), else this module's defaults for ``task.env_name`` (Panda, delta ``OSC_POSE`` arm
control, 20 Hz). Files written with robosuite <= 1.4 store a bare arm controller config (``"type": "OSC_POSE"``);
robosuite 1.5 rejects it, so it is converted with robosuite's own ``refactor_composite_controller_config``.

Observation dict: robomimic's low-dim keys ``object`` (robosuite's ``object-state``: Lift 10, Can 14, Square 14),
``robot0_eef_pos (3)``, ``robot0_eef_quat (4, xyzw)``, ``robot0_gripper_qpos (2)``. Action: 7 values in [-1, 1], a
delta position (x 0.05 m), a delta axis-angle rotation (x 0.5 rad) and the gripper (-1 open, +1 close). Success is
the environment's own ``_check_success()``; episodes end on success (robomimic's rollouts stop there too) or after
``task.max_episode_steps`` (400).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; set before mujoco is imported

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from fmpolicy.envs.registry import Suite, register  # noqa: E402
from fmpolicy.envs.wrappers import ResetResult, StepResult  # noqa: E402
from fmpolicy.errors import UserError  # noqa: E402

MAX_EPISODE_STEPS = 400
ENV_NAMES = ("Lift", "PickPlaceCan", "NutAssemblySquare")
LOW_DIM_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
OBJECT_DIMS = {"Lift": 10, "PickPlaceCan": 14, "NutAssemblySquare": 14}
_SOURCE_KEY = {"object": "object-state"}  # robomimic's key -> robosuite 1.5's
# Settings every environment gets whatever the file says: low-dim observations only, no episode end from robosuite
# (the chunk wrapper truncates), sparse reward, no on-screen viewer (frames come from render()).
_FORCED = {
    "has_renderer": False,
    "has_offscreen_renderer": False,
    "use_camera_obs": False,
    "use_object_obs": True,
    "ignore_done": True,
    "reward_shaping": False,
}


def _import_robosuite() -> Any:
    """robosuite, its import-time warnings (private macros, optional robot models, mink IK) and INFO lines silenced."""
    import importlib.util
    import logging

    # robosuite pulls numba's llvmlite; torch's triton carries its own LLVM and segfaults when it loads second.
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401

    logger = logging.getLogger("robosuite_logs")
    if not getattr(logger, "_fmpolicy_quiet", False):
        quiet_import = logging.Filter()
        quiet_import.filter = lambda record: record.levelno >= logging.ERROR  # type: ignore[method-assign]
        logger.addFilter(quiet_import)
        import robosuite  # noqa: F401

        logger.removeFilter(quiet_import)
        no_info = logging.Filter()
        no_info.filter = lambda record: record.levelno >= logging.WARNING  # type: ignore[method-assign]
        logger.addFilter(no_info)
        logger._fmpolicy_quiet = True  # type: ignore[attr-defined]
    import robosuite

    return robosuite


def default_env_args(env_name: str) -> dict[str, Any]:
    """robomimic-style ``env_args`` for ``env_name``, used when no dataset gives them (experts, smoke tests)."""
    if env_name not in ENV_NAMES:
        raise UserError(f"task.env_name '{env_name}' unknown: choose one of {', '.join(ENV_NAMES)}")
    robosuite = _import_robosuite()
    controller = robosuite.load_composite_controller_config(controller="BASIC")
    # BASIC lists parts a Panda does not have (left arm, torso, head, base, legs); keep the right arm only,
    # as robosuite's default_panda.json does, so the stored config reads as what was actually used.
    controller["body_parts"] = {"right": controller["body_parts"]["right"]}
    return {
        "env_name": env_name,
        "env_version": robosuite.__version__,
        "type": 1,
        "env_kwargs": {
            "robots": ["Panda"],
            "controller_configs": controller,
            "control_freq": 20,
            "lite_physics": True,
            "camera_names": ["agentview", "robot0_eye_in_hand"],
            "camera_heights": 84,
            "camera_widths": 84,
            "camera_depths": False,
            "render_gpu_device_id": -1,
            **_FORCED,
        },
    }


def parse_env_args(env_args: dict[str, Any] | str) -> dict[str, Any]:
    """Validate robomimic ``env_args`` (a dict or its JSON text) and convert robosuite-1.4 controller configs."""
    if isinstance(env_args, str):
        try:
            env_args = json.loads(env_args)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"env_args is not valid JSON ({exc}): it should be robomimic's data.attrs['env_args']"
            ) from None
    args = copy.deepcopy(dict(env_args))
    if args.get("type", 1) != 1:
        raise UserError(
            f"env_args type {args.get('type')} is not robosuite (1): only robosuite datasets are supported here"
        )
    if args.get("env_name") not in ENV_NAMES:
        raise UserError(f"env_args env_name '{args.get('env_name')}' unsupported: choose one of {', '.join(ENV_NAMES)}")
    kwargs = args.setdefault("env_kwargs", {})
    robots = kwargs.get("robots", ["Panda"])
    robots = [robots] if isinstance(robots, str) else list(robots)
    kwargs["robots"] = robots
    controller = kwargs.get("controller_configs")
    if controller is None:
        controller = default_env_args(args["env_name"])["env_kwargs"]["controller_configs"]
    else:
        _import_robosuite()
        from robosuite.controllers.composite.composite_controller_factory import (
            refactor_composite_controller_config,
        )

        # robosuite <= 1.4: a bare arm config ({"type": "OSC_POSE", ...}) -> a composite config for robots[0]'s arm.
        controller = refactor_composite_controller_config(controller, robots[0], ["right"])
    kwargs["controller_configs"] = controller
    return args


def make_robosuite_env(env_args: dict[str, Any] | str) -> Any:
    """The raw robosuite environment of ``env_args`` with the forced low-dim settings; unknown kwargs are dropped."""
    args = parse_env_args(env_args)
    robosuite = _import_robosuite()
    env_cls = robosuite.environments.base.REGISTERED_ENVS[args["env_name"]]
    # Subclasses such as PickPlaceCan take **kwargs: accept what any __init__ along the class hierarchy names.
    accepted = {p for c in env_cls.__mro__ if "__init__" in vars(c) for p in inspect.signature(c.__init__).parameters}
    kwargs = {k: v for k, v in args["env_kwargs"].items() if k in accepted}
    kwargs.update(_FORCED)
    return robosuite.make(args["env_name"], **kwargs)


def reseed(env: Any, seed: int) -> None:
    """Point every random source of a robosuite env at one generator seeded with ``seed``.

    robosuite draws object placements from its placement sampler's ``rng`` (created once, at the first model
    load), object sizes and the arm's initial noise from ``env.rng``; all must be replaced for a seed to decide
    the initial state.
    """
    rng = np.random.default_rng(seed)
    env.rng = rng
    stack = [getattr(env, "placement_initializer", None)]
    while stack:
        sampler = stack.pop()
        if sampler is None:
            continue
        sampler.rng = rng
        stack.extend(getattr(sampler, "samplers", {}).values())


class RobomimicEnv(gym.Env):
    """A robosuite environment behind Gymnasium's API with robomimic's low-dim observation dict.

    ``reset(seed=s)`` draws the initial state from ``s``; ``reset(options={"reset_to_state": flat})`` then sets
    a recorded MuJoCo state (``sim.get_state().flatten()``: time, qpos, qvel), in the recorded model when
    ``options["model_file"]`` gives its XML (a demo's ``model_file`` attribute; ``model_xml()`` of this env). ``render()`` draws ``camera`` at
    ``render_size`` pixels with a MuJoCo renderer made on first use (robosuite's own offscreen renderer would be
    built for every environment, also those never rendered).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        env_args: dict[str, Any] | str,
        obs_keys: tuple[str, ...] = LOW_DIM_KEYS,
        render_size: int = 256,
        camera: str = "agentview",
        terminate_on_success: bool = True,
    ) -> None:
        self.env_args = parse_env_args(env_args)
        self.env = make_robosuite_env(self.env_args)
        self.obs_keys = tuple(obs_keys)
        self.render_size, self.camera = render_size, camera
        self.terminate_on_success = terminate_on_success
        self.render_mode = "rgb_array"
        self._renderer: Any = None
        self._renderer_model: Any = None
        obs = self.env.reset()
        self._check_keys(obs)
        self.observation_space = gym.spaces.Dict(
            {
                k: gym.spaces.Box(-np.inf, np.inf, shape=np.shape(obs[_SOURCE_KEY.get(k, k)]), dtype=np.float64)
                for k in self.obs_keys
            }
        )
        low, high = self.env.action_spec
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    def _check_keys(self, obs: dict[str, Any]) -> None:
        missing = [k for k in self.obs_keys if _SOURCE_KEY.get(k, k) not in obs]
        if missing:
            have = sorted({k for k in obs} | {k for k, v in _SOURCE_KEY.items() if v in obs})
            raise UserError(f"robosuite {self.env_args['env_name']} has no observation {missing} (it has {have})")

    def _obs(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(raw[_SOURCE_KEY.get(k, k)], dtype=np.float64).copy() for k in self.obs_keys}

    @property
    def sim(self) -> Any:
        return self.env.sim

    def success(self) -> bool:
        return bool(self.env._check_success())

    def model_xml(self) -> str:
        """The current MuJoCo model as XML (what robomimic stores per demo as ``model_file``)."""
        return self.env.sim.model.get_xml()

    def get_state(self) -> np.ndarray:
        """The flat MuJoCo state robomimic stores in ``states``."""
        return np.asarray(self.env.sim.get_state().flatten(), dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        super().reset(seed=seed)
        if seed is not None:
            reseed(self.env, seed)
        model_file = (options or {}).get("model_file")
        if model_file is not None:
            # the recorded MuJoCo model: object sizes (Lift's cube) are drawn per episode, so a state alone does
            # not restore the scene; robomimic stores the XML in each demo's ``model_file`` attribute for this
            self.env.reset_from_xml_string(self.env.edit_model_xml(str(model_file)))
            self.env.sim.reset()
        else:
            self.env.reset()
        state = (options or {}).get("reset_to_state")
        if state is not None:
            state = np.asarray(state, dtype=np.float64)
            expected = self.env.sim.get_state().flatten().shape
            if state.shape != expected:
                raise UserError(
                    f"reset_to_state has shape {state.shape}, {self.env_args['env_name']} needs {expected}: "
                    "the state comes from another task or robosuite model"
                )
            self.env.sim.set_state_from_flattened(state)
            self.env.sim.forward()
            # OSC pulls the arm's null space toward the joint positions its controller was reset at (the noisy
            # initial posture of the recorded episode); re-anchor it at the given state, else replays drift.
            for robot in self.env.robots:
                for controller in robot.part_controllers.values():
                    if hasattr(controller, "qpos_index"):
                        controller.update_initial_joints(self.env.sim.data.qpos[controller.qpos_index])
        # robosuite's first observation after a reset leaves the object-to-gripper entries of ``object-state`` at
        # zero (they read the gripper pose from a cache filled later in the same pass): compute it twice.
        self.env._get_observations(force_update=True)
        raw = self.env._get_observations(force_update=True)
        return self._obs(raw), {"success": self.success()}

    def step(self, action: np.ndarray) -> StepResult:
        raw, reward, _, _ = self.env.step(np.asarray(action, dtype=np.float64))
        success = self.success()
        return self._obs(raw), float(reward), bool(success and self.terminate_on_success), False, {"success": success}

    def render(self) -> np.ndarray:
        import mujoco

        model = self.env.sim.model._model  # robosuite rebuilds the model on hard resets: follow it
        if self._renderer is None or self._renderer_model is not model:
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(model, self.render_size, self.render_size)
            self._renderer_model = model
        self._renderer.update_scene(self.env.sim.data._data, camera=self.camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()


class SuccessTracker:
    """Robomimic's result: ``score`` = 1.0 once the task succeeded, else 0; ``success``; ``success_step`` or -1."""

    def __init__(self) -> None:
        self.success_step = -1

    def reset(self, info: dict[str, Any]) -> None:
        self.success_step = 0 if info.get("success") else -1

    def update(self, reward: float, info: dict[str, Any], step: int) -> None:
        if self.success_step < 0 and info.get("success"):
            self.success_step = step

    def result(self) -> dict[str, float | int | bool]:
        ok = self.success_step >= 0
        return {"score": float(ok), "success": ok, "success_step": self.success_step}


def robomimic_metrics(results: list[dict[str, Any]], task: dict[str, Any]) -> dict[str, Any]:
    """Mean steps to success over the successful episodes (success rate and its interval are generic)."""
    steps = np.array([r["success_step"] for r in results if r.get("success_step", -1) >= 0], dtype=float)
    return {"mean_success_step": float(steps.mean()) if len(steps) else float("nan")}


def task_env_args(task: dict[str, Any]) -> dict[str, Any]:
    """The dataset's ``env_args`` when the task carries them (``task.env_args``), else the defaults of ``env_name``."""
    if task.get("env_args"):
        args = parse_env_args(task["env_args"])
        if task.get("env_name") and args["env_name"] != task["env_name"]:
            raise UserError(
                f"the dataset was recorded in {args['env_name']} but task.env_name is {task['env_name']}: "
                "choose the task that matches the dataset"
            )
        return args
    return default_env_args(task.get("env_name") or "Lift")


def make_env(task: dict[str, Any]) -> RobomimicEnv:
    return RobomimicEnv(
        task_env_args(task),
        obs_keys=tuple(task["shape_meta"]["obs"]),
        terminate_on_success=task.get("terminate_on_success", True),
    )


@functools.cache
def _expert_env(env_args_json: str) -> RobomimicEnv:
    return RobomimicEnv(json.loads(env_args_json), terminate_on_success=False)


def expert_episode(seed: int, cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The scripted expert (``robomimic_expert.py``) from ``seed``; arrays keyed like robomimic's HDF5 demos."""
    from fmpolicy.envs.robomimic_expert import run_expert_episode

    task = cfg["task"]
    env = _expert_env(json.dumps(task_env_args(task), sort_keys=True))
    return run_expert_episode(env, seed, task["max_episode_steps"])


register(
    Suite(
        name="robomimic",
        make_env=make_env,
        tracker=lambda task: SuccessTracker(),
        success_text="task succeeded (the environment's own check)",
        metrics=robomimic_metrics,
        expert=expert_episode,
        obs_noise_unit="m or quaternion units",
        obs_range=lambda key: (-1.0, 1.0) if key != "robot0_eef_pos" else (-0.3, 1.1),
        histogram=("success_step", "steps to success (-1: failed)", None),
        table_metrics=("mean_success_step",),
        dataset_meta=lambda task: {"env_args": task_env_args(task)},
    )
)

"""Task x method configs composed from YAML files and ``key=value`` overrides.

Resolution order: ``configs/base.yaml`` < ``configs/task/<task>.yaml`` <
``configs/method/<method>.yaml`` < command-line overrides. An override may only
set a key that exists after composition, so typos fail loudly.
"""

from __future__ import annotations

import copy
import math
import numbers
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from fmpolicy.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"


def available(kind: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def default_task() -> str:
    """The task of ``configs/defaults.yaml``, used where a command is given none."""
    return _load_yaml(CONFIG_DIR / "defaults.yaml")["task"]


def _load_yaml(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a.b": 3, "c": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for arg in args:
        if "=" not in arg:
            raise UserError(f"argument '{arg}' is not key=value: write e.g. train.steps=1000")
        key, value = arg.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value != "" else None
    return out


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    node = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            where = ".".join(parts[:i]) or "the top level"
            raise UserError(f"unknown config key '{key}': '{part}' is not in {where} (known: {', '.join(known)})")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def get_dotted(cfg: dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def compose(overrides: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a resolved, validated config; ``base`` (e.g. a checkpoint's config) replaces base.yaml.

    Each override is converted to the type of the value it replaces (:func:`conform`) and the
    composed config is checked against :data:`RULES` and :data:`RELATIONS` (:func:`validate`).
    """
    overrides = dict(overrides)
    defaults = _load_yaml(CONFIG_DIR / "base.yaml")
    # A checkpoint's config is laid over today's defaults, so sections added since it was written exist.
    cfg = merge(defaults, base if base is not None else {})
    for kind in ("task", "method"):
        name = overrides.pop(kind, None)
        if name is None:
            continue
        path = CONFIG_DIR / kind / f"{name}.yaml"
        if not path.exists():
            raise UserError(f"unknown {kind} '{name}': choose one of {', '.join(available(kind))}")
        cfg = merge(cfg, _load_yaml(path))
        cfg[kind]["name"] = name
    for key, value in overrides.items():
        current = _lookup(cfg, key)
        if current is _MISSING:
            set_dotted(cfg, key, value)  # raises: unknown key
        # A null default means "decided elsewhere": anything goes, and null stays allowed where base.yaml has it.
        if not (value is None and _lookup(defaults, key) is None):
            value = conform(key, value, current)
        set_dotted(cfg, key, value)
    return validate(cfg, defaults, given=overrides)


# --- types of overrides -------------------------------------------------------------------------------------------

_MISSING = object()


def _lookup(cfg: Any, key: str) -> Any:
    """The value at a dotted key, or ``_MISSING`` where a section or key does not exist."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _fmt(value: Any) -> str:
    """A value as it would be written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        try:
            text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
        except yaml.YAMLError:
            text = str(value)
    else:
        text = str(value)
    return text.replace("\n", "\\n")


class _Invalid(Exception):
    """``value`` (at ``path`` below the key being checked) is not ``expected``; ``example`` is a valid value."""

    def __init__(self, expected: str, value: Any, example: Any, path: str = "") -> None:
        super().__init__(expected)
        self.expected, self.value, self.example, self.path = expected, value, example, path


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _to_int(x: Any) -> int:
    """Integers; integral floats (3.0) and numeric strings ("1e3", which YAML leaves a string)."""
    if _is_int(x):
        return int(x)
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            pass
    number = _to_float(x)
    if not number.is_integer():
        raise ValueError(x)
    return int(number)


def _to_float(x: Any) -> float:
    """Finite numbers; numeric strings ("1e-4", which YAML leaves a string)."""
    if not (_is_real(x) or isinstance(x, str)):
        raise ValueError(x)
    number = float(x)  # ValueError for non-numeric strings
    if not math.isfinite(number):
        raise ValueError(x)
    return number


def _to_bool(x: Any) -> bool:
    if isinstance(x, bool):
        return x
    if isinstance(x, str) and x.strip().lower() in ("true", "false"):
        return x.strip().lower() == "true"
    raise ValueError(x)


def _to_str(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if _is_real(x):
        return str(x)
    raise ValueError(x)


# default's type -> (conversion, what the user must give, the plural for lists of them)
_SCALARS: list[tuple[Callable[[Any], bool], Callable[[Any], Any], str, str]] = [
    (lambda d: isinstance(d, bool), _to_bool, "true or false", "true/false values"),
    (_is_int, _to_int, "an integer", "integers"),
    (_is_real, _to_float, "a number", "numbers"),
    (lambda d: isinstance(d, str), _to_str, "a string", "strings"),
]


def _element_template(default: list[Any]) -> Any:
    """What every element of a list must look like, judged by the default's elements (None: anything)."""
    if not default:
        return None
    if all(_is_int(x) for x in default):
        return default[0]
    if all(_is_real(x) for x in default):
        return float(default[0])
    if all(type(x) is type(default[0]) for x in default):
        return default[0]
    return None


def _describe(default: Any) -> str:
    if isinstance(default, dict):
        return "a mapping"
    if isinstance(default, list):
        template = _element_template(default)
        return f"a list of {_plural(template)}" if template is not None else "a list"
    for matches, _, singular, _ in _SCALARS:
        if matches(default):
            return singular
    return f"a {type(default).__name__}"


def _plural(template: Any) -> str:
    if isinstance(template, dict):
        return "mappings"
    if isinstance(template, list):
        return "lists"
    for matches, _, _, plural in _SCALARS:
        if matches(template):
            return plural
    return "values"


def _convert(value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default``; raises ``_Invalid``."""
    if default is None:
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise _Invalid(_describe(default), value, default or {"name": "value"})
        out = dict(value)
        for k, v in value.items():  # keys the default has are checked; new keys are the user's (free-form maps)
            if k in default:
                try:
                    out[k] = _convert(v, default[k])
                except _Invalid as exc:
                    raise _Invalid(exc.expected, exc.value, exc.example, f".{k}{exc.path}") from None
        return out
    if isinstance(default, list):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise _Invalid(_describe(default), value, default)
        template = _element_template(default)
        try:
            return [_convert(x, template) for x in value]
        except _Invalid:
            raise _Invalid(_describe(default), value, default) from None
    for matches, to_type, singular, _ in _SCALARS:
        if matches(default):
            try:
                return to_type(value)
            except (ValueError, TypeError, OverflowError):
                raise _Invalid(singular, value, default) from None
    return value  # a type YAML does not produce: left to the code that reads it


def conform(key: str, value: Any, default: Any) -> Any:
    """``value`` for ``key`` converted to the type of ``default``, the value it replaces (null: anything).

    ``train.steps=1e3`` -> 1000, ``train.lr=1e-4`` (a string to YAML) -> 0.0001; a mismatch is a UserError
    naming the key, the value, the type expected and an example.
    """
    try:
        return _convert(value, default)
    except _Invalid as exc:
        where = f"{key}{exc.path}"
        raise UserError(
            f"{where}={_fmt(exc.value)}: expected {exc.expected} (e.g. {where}={_fmt(exc.example)})"
        ) from None


# --- values and relations between them ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What a key's value must be: ``convert`` it, then ``ok`` must hold; ``text`` says so to the user."""

    convert: Callable[[Any], Any]
    ok: Callable[[Any], bool]
    text: str
    example: Any
    optional: bool = False  # null allowed (its meaning is given by other code)
    each: bool = False  # a list whose entries each follow the rule
    empty: bool = False  # with each: the empty list is allowed

    def requirement(self) -> str:
        if self.each:
            return f"must be a {'' if self.empty else 'non-empty '}list of values, each {self.text}"
        return f"must be null or {self.text}" if self.optional else f"must be {self.text}"

    def apply(self, value: Any) -> Any:
        """The converted value; ValueError where it breaks the rule."""
        if value is None and self.optional:
            return None
        if self.each:
            if not isinstance(value, (list, tuple)) or not (value or self.empty):
                raise ValueError(value)
            return [self._one(x) for x in value]
        return self._one(value)

    def _one(self, value: Any) -> Any:
        try:
            out = self.convert(value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(value) from None
        if not self.ok(out):
            raise ValueError(value)
        return out


def _integer(at_least: int, example: int | None = None) -> Rule:
    return Rule(
        _to_int, lambda v: v >= at_least, f"an integer >= {at_least}", max(at_least, 1) if example is None else example
    )


def _number(
    example: float, above: float | None = None, at_least: float | None = None, below: float | None = None
) -> Rule:
    limits = {op: x for op, x in ((">", above), (">=", at_least), ("<", below)) if x is not None}
    compare = {">": operator.gt, ">=": operator.ge, "<": operator.lt}

    def ok(v: float) -> bool:
        return all(compare[op](v, x) for op, x in limits.items())

    return Rule(_to_float, ok, "a number " + " and ".join(f"{op} {x:g}" for op, x in limits.items()), example)


def _one_of(*choices: str) -> Rule:
    return Rule(str, lambda v: v in choices, "one of " + ", ".join(choices), choices[0])


def _optional(rule: Rule, example: Any) -> Rule:
    return replace(rule, optional=True, example=example)


def _each(rule: Rule, empty: bool = False) -> Rule:
    return replace(rule, each=True, empty=empty, example=[rule.example])


# key -> the rule its value follows in every composed config (YAML files and overrides alike).
# Keys absent from a config (a section some task or method does not have) are skipped.
RULES: dict[str, Rule] = {
    "train.steps": _integer(0),
    "train.batch_size": _integer(1),
    "train.lr": _number(1e-4, above=0),
    "train.warmup_steps": _integer(0),
    "train.ckpt_every": _integer(1),
    "train.log_every": _integer(1),
    "inference.nfe": _integer(1),
    "inference.noise_scale": _number(1.0, above=0),
    "inference.temperature": _number(1.0, above=0),
    "inference.temporal_ensemble": _optional(_number(0.01, at_least=0), 0.01),  # null: off
    "inference.coherence_samples": _optional(_integer(2), 16),  # null: off
    "bench.temperature": _optional(_number(1.0, above=0), 0.7),  # null: each run's own
    "eval.nfe": _optional(_integer(1), 10),  # null: the checkpoint's inference.nfe
    "deploy.nfe": _optional(_integer(1), 10),
    "robustness.nfe": _optional(_integer(1), 10),
    "robustness.latent_samples": _integer(2),
    "robustness.state_delta": _number(0.1, above=0),
    "robustness.field_noise": _each(_number(0.1, at_least=0)),
    "diagnose.nfes": _each(_integer(1)),
    "bench.nfes": _each(_integer(1)),
    "speed.nfes": _each(_integer(1)),
    "speed.rollout_nfe": _integer(1),
    "method.inverse_nfe": _integer(1),
    "method.extra_nfes": _each(_integer(1), empty=True),
    "method.residual.time_power": _number(1.0, at_least=0),
    "method.pair_nfe": _integer(1),
    "method.sample_weight": _number(0.0, at_least=0),
    "method.cond_noise": _number(0.0, at_least=0),
    "method.sample_latent_std": _one_of("unit", "inference"),
    "diagnose.inverse_nfe": _integer(1),
    "eval.episodes": _integer(1),
    "eval.n_envs": _integer(1),
    "eval.vector_env": _one_of("sync", "async"),
    "task.max_episode_steps": _integer(1),
    "eval.max_episode_steps": _optional(_integer(1), 300),  # null: the task's limit
    "deploy.steps": _integer(1),
    "demos.episodes": _integer(1),
    "demos.action_noise": _number(0.0, at_least=0),
    "policy.horizon": _integer(1),
    "policy.n_obs_steps": _integer(1),
    "policy.n_action_steps": _integer(1),
    "policy.n_groups": _integer(1),
    "policy.down_dims": _each(_integer(1)),
    "dataset.val_ratio": _number(0.05, at_least=0, below=1),
}

_DIFFUSION_SAMPLERS = ("ddpm", "ddim")  # DDPM (all training steps; NFE ignored) and DDIM (NFE steps)


def _ode_solvers() -> dict[str, int]:
    from fmpolicy.policy.solvers import EVALS_PER_STEP  # the one definition; imported here, not at module load

    return EVALS_PER_STEP


def _first(cfg: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``keys`` set (not null) in ``cfg``: (key, value), or (keys[-1], None)."""
    for key in keys:
        value = _lookup(cfg, key)
        if value is not _MISSING and value is not None:
            return key, value
    return keys[-1], None


# solver key -> (the keys whose first non-null value is the solver, the model kind it samples: flow | method.kind)
_SOLVERS: dict[str, tuple[tuple[str, ...], str]] = {
    "inference.solver": (("inference.solver",), "method"),
    "eval.solver": (("eval.solver", "inference.solver"), "method"),
    "method.inverse_solver": (("method.inverse_solver",), "flow"),
    "diagnose.inverse_solver": (("diagnose.inverse_solver",), "flow"),
    "method.pair_solver": (("method.pair_solver",), "flow"),
}

# NFE key (one NFE or a list) -> the keys whose first non-null value is the solver spending it
_NFE_SOLVER: dict[str, tuple[str, ...]] = {
    "inference.nfe": ("inference.solver",),
    "method.extra_nfes": ("inference.solver",),
    "eval.nfe": ("eval.solver", "inference.solver"),
    "deploy.nfe": ("inference.solver",),
    "method.inverse_nfe": ("method.inverse_solver",),
    "diagnose.inverse_nfe": ("diagnose.inverse_solver",),
    "method.pair_nfe": ("method.pair_solver",),
}


def _check_solver(cfg: dict[str, Any], key: str) -> str | None:
    value = _lookup(cfg, key)
    if value is _MISSING or value is None:
        return None
    keys, model = _SOLVERS[key]
    solver_key, solver = _first(cfg, keys)
    if solver_key != key:
        return None
    ode = sorted(_ode_solvers())
    if solver not in (*ode, *_DIFFUSION_SAMPLERS):
        known = ", ".join(sorted((*ode, *_DIFFUSION_SAMPLERS)))
        return f"{key}={_fmt(solver)}: unknown solver: choose one of {known} (e.g. {key}=euler)"
    kind = _lookup(cfg, "method.kind") if model == "method" else "flow"
    if kind is _MISSING:
        return None
    if kind == "ddpm" and solver not in _DIFFUSION_SAMPLERS:
        return f"{key}={solver}: method.kind=ddpm is a diffusion model: it samples with ddpm or ddim (e.g. {key}=ddim)"
    if kind != "ddpm" and solver in _DIFFUSION_SAMPLERS:
        what = f"method.kind={kind} is a flow model" if model == "method" else "latents come from integrating the flow"
        return f"{key}={solver}: {what}: choose one of {', '.join(ode)} (e.g. {key}=euler)"
    return None


def _check_nfe_multiple(cfg: dict[str, Any], key: str) -> str | None:
    value = _lookup(cfg, key)
    if value is _MISSING or value is None:
        return None
    solver_key, solver = _first(cfg, _NFE_SOLVER[key])
    per = _ode_solvers().get(solver)
    nfes = value if isinstance(value, list) else [value]
    if per is None or all(n % per == 0 for n in nfes):  # diffusion samplers have no multiple rule; unknown names
        return None  # are reported above
    fixed = [-(-n // per) * per for n in nfes]
    return (
        f"{key}={_fmt(value)}: solver {solver} ({solver_key}) spends {per} evaluations per step, so the NFE must be "
        f"a multiple of {per} (e.g. {key}={_fmt(fixed if isinstance(value, list) else fixed[0])})"
    )


def _check_window(cfg: dict[str, Any]) -> str | None:
    p = cfg.get("policy") or {}
    if not all(k in p for k in ("horizon", "n_obs_steps", "n_action_steps")):
        return None
    horizon, n_obs, n_act = p["horizon"], p["n_obs_steps"], p["n_action_steps"]
    if n_obs - 1 + n_act <= horizon:
        return None
    return (
        f"policy.n_obs_steps={n_obs}, policy.n_action_steps={n_act}, policy.horizon={horizon}: need "
        f"n_obs_steps - 1 + n_action_steps <= horizon: lower policy.n_action_steps or policy.n_obs_steps, "
        f"or raise policy.horizon (e.g. policy.horizon={n_obs - 1 + n_act})"
    )


def _check_groups(cfg: dict[str, Any]) -> str | None:
    p = cfg.get("policy") or {}
    if "n_groups" not in p or "down_dims" not in p:
        return None
    groups, dims = p["n_groups"], p["down_dims"]
    if all(d % groups == 0 for d in dims):
        return None
    common = math.gcd(*dims)
    fits = max(g for g in range(1, groups + 1) if common % g == 0)
    return (
        f"policy.n_groups={groups}: GroupNorm needs it to divide every entry of policy.down_dims={_fmt(dims)}: "
        f"change policy.n_groups or policy.down_dims (e.g. policy.n_groups={fits})"
    )


def _check_horizon_halvings(cfg: dict[str, Any]) -> str | None:
    p = cfg.get("policy") or {}
    if "horizon" not in p or "down_dims" not in p:
        return None
    factor = 2 ** (len(p["down_dims"]) - 1)  # the U-Net halves the horizon once per level below the first
    if p["horizon"] % factor == 0:
        return None
    return (
        f"policy.horizon={p['horizon']}: the U-Net halves it {len(p['down_dims']) - 1} times "
        f"(len(policy.down_dims) - 1), so it must be a multiple of {factor} "
        f"(e.g. policy.horizon={-(-p['horizon'] // factor) * factor}, or fewer policy.down_dims)"
    )


# Checks across keys, run in order after RULES: each returns the problem (key, value and fix) or None.
RELATIONS: list[Callable[[dict[str, Any]], str | None]] = [
    *(partial(_check_solver, key=key) for key in _SOLVERS),
    *(partial(_check_nfe_multiple, key=key) for key in _NFE_SOLVER),
    _check_window,
    _check_groups,
    _check_horizon_halvings,
]


def _example(rule: Rule, default: Any) -> Any:
    """base.yaml's value where it follows the rule (and is not null), else the rule's example."""
    if default is None or default is _MISSING:
        return rule.example
    try:
        rule.apply(default)
    except ValueError:
        return rule.example
    return default


def validate(
    cfg: dict[str, Any], defaults: dict[str, Any] | None = None, given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check ``cfg`` against RULES (converting e.g. "1e-4" to 0.0001 in place) and RELATIONS; UserError otherwise.

    ``defaults`` (base.yaml) supplies examples in messages; ``given`` (the overrides) the values as the user wrote them.
    """
    given = given or {}
    defaults = _load_yaml(CONFIG_DIR / "base.yaml") if defaults is None else defaults
    for key, rule in RULES.items():
        value = _lookup(cfg, key)
        if value is _MISSING:
            continue
        try:
            converted = rule.apply(value)
        except ValueError:
            example = _example(rule, _lookup(defaults, key))
            shown = _fmt(given.get(key, value))
            raise UserError(f"{key}={shown}: {rule.requirement()} (e.g. {key}={_fmt(example)})") from None
        set_dotted(cfg, key, converted)
    for check in RELATIONS:
        problem = check(cfg)
        if problem:
            raise UserError(problem)
    return cfg


def dump(cfg: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))

"""Task x method configs composed from YAML files and ``key=value`` overrides.

Resolution order: ``configs/base.yaml`` < ``configs/task/<task>.yaml`` <
``configs/method/<method>.yaml`` < command-line overrides. An override may only
set a key that exists after composition, so typos fail loudly.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from fmpolicy.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"


def available(kind: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


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
    """Build a resolved config; ``base`` (e.g. a checkpoint's config) replaces base.yaml."""
    overrides = dict(overrides)
    defaults = _load_yaml(CONFIG_DIR / "base.yaml")
    # A checkpoint's config is laid over today's defaults, so sections added since it was written exist.
    cfg = merge(defaults, base) if base is not None else defaults
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
        set_dotted(cfg, key, value)
    return cfg


def dump(cfg: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))

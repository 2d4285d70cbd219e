"""Override values are converted to the type they replace, and composed configs are range-checked.

Bad values end in one ``error: ...`` line naming the key (exit status 2) before any data is read.
"""

from pathlib import Path

import pytest

from fmpolicy.cli import main
from fmpolicy.config import _MISSING, RULES, _lookup, compose, parse_overrides, validate
from fmpolicy.errors import UserError

# (bad overrides, substrings the one-line error must contain: the key first)
BAD = [
    # types of overrides
    (["train.steps=abc"], ["train.steps=abc", "expected an integer", "e.g. train.steps="]),
    (["train.steps=3.5"], ["train.steps=3.5", "expected an integer"]),
    (["train.steps=true"], ["train.steps=true", "expected an integer"]),
    (["train.steps="], ["train.steps=null", "expected an integer"]),
    (["train.lr=abc"], ["train.lr=abc", "expected a number", "e.g. train.lr="]),
    (["train.lr=nan"], ["train.lr=nan", "expected a number"]),
    (["train.betas=0.9"], ["train.betas=0.9", "expected a list of numbers", "e.g. train.betas=[0.95, 0.999]"]),
    (["train.betas=[0.9, x]"], ["train.betas=[0.9, x]", "expected a list of numbers"]),
    (["policy.down_dims=64"], ["policy.down_dims=64", "expected a list of integers"]),
    (["policy.down_dims=[64, 1.5]"], ["policy.down_dims", "expected a list of integers"]),
    (["bench.nfes=4"], ["bench.nfes=4", "expected a list"]),
    (["bench.reconstruction=maybe"], ["bench.reconstruction=maybe", "expected true or false"]),
    (["bench.runs=runs/fm"], ["bench.runs=runs/fm", "expected a mapping"]),
    (["out=[1, 2]"], ["out=[1, 2]", "expected a string"]),
    (["seed=abc"], ["seed=abc", "expected an integer"]),
    (["train=3"], ["train=3", "expected a mapping"]),
    (["task.shape_meta.obs.keypoint.shape=[9, a]"], ["task.shape_meta.obs.keypoint.shape", "list of integers"]),
    (["task.shape_meta={obs: 3}"], ["task.shape_meta.obs=3", "expected a mapping"]),
    (["method=ft_mle", "method.sigma.init=x"], ["method.sigma.init=x", "expected a number"]),
    # ranges
    (["train.steps=-1"], ["train.steps=-1", ">= 0"]),
    (["train.batch_size=0"], ["train.batch_size=0", ">= 1"]),
    (["train.lr=0"], ["train.lr=0", "> 0"]),
    (["train.lr=-1e-4"], ["train.lr=-1e-4", "> 0"]),
    (["train.warmup_steps=-5"], ["train.warmup_steps=-5", ">= 0"]),
    (["train.ckpt_every=0"], ["train.ckpt_every=0", ">= 1"]),
    (["train.log_every=0"], ["train.log_every=0", ">= 1"]),
    (["inference.nfe=0"], ["inference.nfe=0", ">= 1"]),
    (["eval.nfe=0"], ["eval.nfe=0", "null or an integer >= 1"]),
    (["eval.nfe=abc"], ["eval.nfe=abc", "null or an integer >= 1"]),
    (["deploy.nfe=0"], ["deploy.nfe=0", "null or an integer >= 1"]),
    (["diagnose.nfes=[1, 0]"], ["diagnose.nfes=[1, 0]", ">= 1"]),
    (["bench.nfes=[0, 2]"], ["bench.nfes=[0, 2]", ">= 1"]),
    (["bench.nfes=[]"], ["bench.nfes=[]", "non-empty"]),
    (["eval.episodes=0"], ["eval.episodes=0", ">= 1"]),
    (["eval.n_envs=0"], ["eval.n_envs=0", ">= 1"]),
    (["task.max_episode_steps=0"], ["task.max_episode_steps=0", ">= 1"]),
    (["eval.max_episode_steps=0"], ["eval.max_episode_steps=0", "null or an integer >= 1"]),
    (["deploy.steps=0"], ["deploy.steps=0", ">= 1"]),
    (["demos.episodes=0"], ["demos.episodes=0", ">= 1"]),
    (["policy.horizon=0"], ["policy.horizon=0", ">= 1"]),
    (["policy.n_obs_steps=0"], ["policy.n_obs_steps=0", ">= 1"]),
    (["policy.n_action_steps=0"], ["policy.n_action_steps=0", ">= 1"]),
    (["policy.n_groups=0"], ["policy.n_groups=0", ">= 1"]),
    (["policy.down_dims=[]"], ["policy.down_dims=[]", "non-empty"]),
    (["dataset.val_ratio=1"], ["dataset.val_ratio=1", ">= 0 and < 1"]),
    (["dataset.val_ratio=-0.1"], ["dataset.val_ratio=-0.1", ">= 0 and < 1"]),
    # relations between keys
    (
        ["policy.n_action_steps=20"],
        ["policy.n_action_steps=20", "policy.horizon=16", "n_obs_steps - 1 + n_action_steps"],
    ),
    (["policy.n_obs_steps=10", "policy.n_action_steps=8"], ["policy.n_obs_steps=10", "<= horizon"]),
    (
        ["policy.n_groups=5"],
        ["policy.n_groups=5", "GroupNorm", "policy.down_dims=[64, 128, 256]", "e.g. policy.n_groups=4"],
    ),
    (["policy.down_dims=[64, 100]"], ["policy.n_groups=8", "policy.down_dims=[64, 100]"]),
    (["policy.horizon=10"], ["policy.horizon=10", "multiple of 4"]),
    (["inference.solver=rk4", "inference.nfe=2"], ["inference.nfe=2", "rk4", "multiple of 4", "e.g. inference.nfe=4"]),
    (["inference.solver=midpoint", "inference.nfe=3"], ["inference.nfe=3", "multiple of 2"]),
    (["eval.solver=midpoint", "eval.nfe=3"], ["eval.nfe=3", "midpoint (eval.solver)"]),
    (["inference.solver=rk4", "inference.nfe=4", "eval.nfe=6"], ["eval.nfe=6", "rk4 (inference.solver)"]),
    (["inference.solver=heun"], ["inference.solver=heun", "unknown solver", "euler, midpoint, rk4"]),
    (["eval.solver=foo"], ["eval.solver=foo", "unknown solver"]),
    (["inference.solver=ddim"], ["inference.solver=ddim", "flow model"]),
    (["method=ddpm", "inference.solver=euler"], ["inference.solver=euler", "ddpm or ddim"]),
    (["method=ft_mle", "method.inverse_nfe=30"], ["method.inverse_nfe=30", "multiple of 4"]),
    (["diagnose.inverse_solver=ddim"], ["diagnose.inverse_solver=ddim", "euler, midpoint, rk4"]),
]


@pytest.mark.parametrize("bad, expected", BAD, ids=[" ".join(b) for b, _ in BAD])
def test_bad_value_is_one_line_error(capsys, monkeypatch, tmp_path, bad, expected):
    def accepted(cfg, *args, **kwargs):
        raise AssertionError(f"compose accepted {bad}")

    monkeypatch.setattr("fmpolicy.policy.pretrain.pretrain", accepted)  # never train if a bad value slips through
    out = tmp_path / "run"
    code = main(["train", "task=pusht_lowdim", f"out={out}", *bad])  # bad last: a bad out= is not overridden
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in captured.err
    for fragment in expected:
        assert fragment in err, err
    assert not out.exists()  # caught in compose, before any data is read or anything is written


def _compose(*args: str) -> dict:
    return compose(parse_overrides(["task=pusht_lowdim", *args]))


def test_learning_rate_in_e_notation_is_a_float():
    # YAML reads "1e-4" (no dot) as a string: it must still become the number 1e-4.
    assert parse_overrides(["train.lr=1e-4"])["train.lr"] == "1e-4"
    lr = _compose("train.lr=1e-4")["train"]["lr"]
    assert isinstance(lr, float) and lr == 1e-4
    assert _compose("train.lr=3")["train"]["lr"] == 3.0 and isinstance(_compose("train.lr=3")["train"]["lr"], float)


@pytest.mark.parametrize("given, steps", [("1e3", 1000), ("2000", 2000), ("3.0", 3), ("0", 0)])
def test_integer_steps(given, steps):
    value = _compose(f"train.steps={given}")["train"]["steps"]
    assert value == steps and type(value) is int


def test_null_defaults_stay_null_or_take_values():
    cfg = _compose("eval.nfe=null", "eval.max_episode_steps=", "dataset.path=null")
    assert cfg["eval"]["nfe"] is None and cfg["eval"]["max_episode_steps"] is None and cfg["dataset"]["path"] is None
    assert _compose("eval.nfe=1e1")["eval"]["nfe"] == 10


def test_solver_multiples():
    cfg = _compose("inference.solver=midpoint", "inference.nfe=4")
    assert (cfg["inference"]["solver"], cfg["inference"]["nfe"]) == ("midpoint", 4)
    with pytest.raises(UserError, match=r"inference\.nfe=2: solver rk4"):
        _compose("inference.solver=rk4", "inference.nfe=2")
    # eval.solver falls back to inference.solver
    assert _compose("inference.solver=rk4", "inference.nfe=8", "eval.nfe=4")["eval"]["nfe"] == 4
    # diffusion samplers: no multiple rule (DDPM ignores the NFE, DDIM takes any)
    assert _compose("method=ddpm", "inference.solver=ddpm", "inference.nfe=3")["inference"]["nfe"] == 3
    assert _compose("method=ddpm", "inference.nfe=7")["inference"]["solver"] == "ddim"


def test_lists_dicts_and_strings_are_converted():
    cfg = _compose(
        "bench.nfes=[1, 2.0, 4]",
        "train.betas=[0.9, 1]",
        "robustness.perturbations={block_displaced: [10, 20]}",
        "out=7",
    )
    assert cfg["bench"]["nfes"] == [1, 2, 4] and all(type(n) is int for n in cfg["bench"]["nfes"])
    assert cfg["train"]["betas"] == [0.9, 1.0] and type(cfg["train"]["betas"][1]) is float
    assert cfg["robustness"]["perturbations"] == {"block_displaced": [10, 20]}
    assert cfg["out"] == "7"
    runs = _compose("bench.runs={FM: runs/fm, FT-FM: runs/ft}")["bench"]["runs"]
    assert runs == {"FM": "runs/fm", "FT-FM": "runs/ft"}
    assert compose({"out": Path("runs/x"), "task": "pusht_lowdim"})["out"] == "runs/x"
    assert _compose("bench.reconstruction=false")["bench"]["reconstruction"] is False


def test_every_shipped_task_method_and_preset_composes():
    import yaml

    from fmpolicy.config import CONFIG_DIR, available

    for task in available("task"):
        for method in available("method"):
            compose({"task": task, "method": method})
    for preset in available("preset"):
        p = yaml.safe_load((CONFIG_DIR / "preset" / f"{preset}.yaml").read_text())
        fm = compose({"task": "pusht_lowdim", "method": "fm", **p["pretrain"]})
        for method in ("ft_mle", "ft_residual"):
            compose({"method": method, "inference.nfe": p["nfe"], **p["finetune"]}, base=fm)
        compose({"bench.nfes": sorted({p["nfe"], p["reference_nfe"]}), **p["evaluate"]})


def test_values_from_files_and_checkpoints_are_checked_too():
    # A checkpoint's config (the base) is range-checked like YAML files and overrides.
    with pytest.raises(UserError, match=r"train\.batch_size=0"):
        compose({}, base={"train": {"batch_size": 0}})
    with pytest.raises(UserError, match=r"eval\.nfe=0"):
        compose({"out": "x"}, base={"eval": {"nfe": 0}})
    # a value written "1e-4" in a YAML file is a string to YAML: the check converts it
    assert compose({}, base={"train": {"lr": "1e-4"}})["train"]["lr"] == 1e-4


def test_validator_tolerates_missing_sections():
    assert validate({}) == {}
    assert validate({"train": {"steps": 5}, "policy": {"horizon": 16}}) == {
        "train": {"steps": 5},
        "policy": {"horizon": 16},
    }
    assert validate({"inference": {"solver": "rk4", "nfe": 8}})["inference"]["nfe"] == 8


def test_every_rule_names_a_real_key():
    cfgs = [compose({"task": "pusht_lowdim", "method": m}) for m in ("fm", "ft_mle", "ft_residual", "reflow")]
    for key in RULES:
        assert any(_lookup(cfg, key) is not _MISSING for cfg in cfgs), key


def test_unknown_key_still_reported():
    with pytest.raises(UserError, match="unknown config key 'train.stepz'"):
        _compose("train.stepz=3")

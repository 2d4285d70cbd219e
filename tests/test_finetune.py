"""Fine-tuning: the reconstruction objective on a 2-D toy, the contracting residual, real checkpoints."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from fmpolicy.config import compose
from fmpolicy.errors import UserError
from fmpolicy.policy import flow, load_policy
from fmpolicy.policy.checkpoint import load_checkpoint
from fmpolicy.policy.finetune import LatentBank, ReconstructionObjective, executed_step_weight, finetune
from fmpolicy.policy.model import FlowSampling
from fmpolicy.policy.normalizer import MinMaxNormalizer
from fmpolicy.policy.residual import AffineContraction, ConvexPotentialContraction


class ToyFlow(FlowSampling, nn.Module):
    """An unconditional MLP velocity field over 2-D points (chunks of one 2-D action)."""

    action_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))
        self.action_norm = MinMaxNormalizer(2)  # identity

    def condition(self, obs: None) -> None:
        return None  # unconditional

    def velocity(self, x, t, cond):
        return self.net(torch.cat([x[:, 0], t[:, None]], -1))[:, None]


def two_modes(n: int, gen: torch.Generator) -> torch.Tensor:
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    x = torch.stack([2.0 * sign, torch.zeros(n)], -1) + 0.1 * torch.randn(n, 2, generator=gen)
    return x[:, None]


def toy_cfg(pairing: str) -> dict:
    cfg = compose({"method": "ft_mle"})
    cfg["method"].update(pairing=pairing, fm_weight=0.0)
    cfg["inference"].update(solver="euler", nfe=1)
    return cfg


@pytest.fixture(scope="module")
def pretrained_toy():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = ToyFlow()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 2000)
    for _ in range(2000):
        loss = model.pretrain_loss(None, two_modes(256, gen), "uniform")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model


def _recon_error(model, a, z):
    with torch.no_grad():
        return ((model.sample(None, z, "euler", 1) - a) ** 2).sum(-1).mean().item()


def _finetune_toy(pretrained, pairing: str, sample_weight: float = 0.0):
    import copy

    gen = torch.Generator().manual_seed(1)
    train_a = two_modes(2048, gen)
    with torch.no_grad():
        train_z = pretrained.invert(None, train_a, "rk4", 256, warp=2.0)
    model = copy.deepcopy(pretrained)
    bank = {"train": LatentBank(np.arange(2048), train_z, 2048)}
    cfg = toy_cfg(pairing)
    cfg["method"]["sample_weight"] = sample_weight
    samples = None
    if sample_weight > 0:  # the pretrained flow's own samples from fresh latents, as build_pairs makes them
        fresh = torch.randn(2048, 1, 2, generator=gen)
        with torch.no_grad():
            pairs = torch.stack([fresh, pretrained.sample(None, fresh, "rk4", 256)], 1)
        samples = {"train": LatentBank(np.arange(2048), pairs, 2048)}
    objective = ReconstructionObjective(model, cfg, bank if pairing == "inverse" else None, samples)
    opt = torch.optim.Adam(objective.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    for _ in range(600):
        idx = rng.integers(0, 2048, 256)
        loss, _ = objective({"obs": None, "action": train_a[idx], "index": idx, "split": "train"})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_ft_fm_on_two_modes_inverse_keeps_modes_independent_collapses(pretrained_toy):
    gen = torch.Generator().manual_seed(2)
    held_a = two_modes(1024, gen)
    with torch.no_grad():
        held_z = pretrained_toy.invert(None, held_a, "rk4", 256, warp=2.0)
    # The inverse is accurate: the latents look like N(0, I) and map back to the data.
    assert held_z.std(0).flatten().tolist() == pytest.approx([1.0, 1.0], abs=0.15)
    with torch.no_grad():
        assert ((pretrained_toy.sample(None, held_z, "rk4", 256) - held_a) ** 2).sum(-1).mean() < 1e-2
    base_error = _recon_error(pretrained_toy, held_a, held_z)
    assert base_error > 1.0  # FM at NFE 1 is poor: it lands between the modes

    inverse = _finetune_toy(pretrained_toy, "inverse")
    independent = _finetune_toy(pretrained_toy, "independent")
    assert _recon_error(inverse, held_a, held_z) < 0.3 * base_error

    noise = torch.randn(4096, 1, 2, generator=gen)
    with torch.no_grad():
        x_inv = inverse.sample(None, noise, "euler", 1)[:, 0, 0]
        x_ind = independent.sample(None, noise, "euler", 1)[:, 0, 0]
    # inverse pairing: both modes survive at NFE 1, in about equal shares, near +-2
    assert 0.35 < (x_inv > 0).float().mean().item() < 0.65
    assert (x_inv.abs() - 2.0).abs().median().item() < 0.3
    # independent pairing: regression through the solver averages the modes toward the mean 0
    assert x_ind.abs().median().item() < 1.0


def test_sample_pairs_teach_the_decoder_the_latents_it_is_fed(pretrained_toy):
    """With ``method.sample_weight`` the few-step decoder also follows the accurate flow on fresh N(0, I)
    latents (where sampling happens), not only on the demonstrations' inverse latents."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2048, 1, 2, generator=gen)
    with torch.no_grad():
        target = pretrained_toy.sample(None, z, "rk4", 256)
    plain, with_samples = _finetune_toy(pretrained_toy, "inverse"), _finetune_toy(pretrained_toy, "inverse", 1.0)
    err_plain, err_samples = _recon_error(plain, target, z), _recon_error(with_samples, target, z)
    assert err_samples < 0.95 * err_plain  # measured 0.151 against 0.172: the toy's inverse latents are near N(0, I)
    cfg = toy_cfg("inverse")
    cfg["method"]["sample_weight"] = 1.0
    with pytest.raises(ValueError, match="sample pairs"):
        ReconstructionObjective(with_samples, cfg, {"train": LatentBank(np.arange(1), z[:1], 1)})


def test_sample_split_gives_each_half_of_the_batch_one_reconstruction(pretrained_toy):
    """``method.sample_split``: the demonstrations' NLL on the batch's first half, the pairs' on its second, so a
    step costs what it does without pairs."""
    gen = torch.Generator().manual_seed(4)
    a, z, pairs = two_modes(8, gen), torch.randn(8, 1, 2, generator=gen), torch.randn(8, 2, 1, 2, generator=gen)
    bank, samples = {"train": LatentBank(np.arange(8), z, 8)}, {"train": LatentBank(np.arange(8), pairs, 8)}
    batch = {"obs": None, "action": a, "index": np.arange(8), "split": "train"}
    cfg = toy_cfg("inverse")
    cfg["method"]["sample_weight"] = 2.0
    whole = ReconstructionObjective(pretrained_toy, cfg, bank, samples)
    cfg["method"]["sample_split"] = True
    halves = ReconstructionObjective(pretrained_toy, cfg, bank, samples)
    with torch.no_grad():
        own, _ = whole.reconstruction_nll(None, z[:4], a[:4])
        rest, _ = whole.reconstruction_nll(None, pairs[4:, 0], pairs[4:, 1])
        assert halves(batch)[0].item() == pytest.approx((own + 2.0 * rest).item(), rel=1e-6)
        assert whole(batch)[0].item() != pytest.approx(halves(batch)[0].item(), rel=1e-3)


def test_fresh_pairs_draw_new_latents_in_each_training_batch(pretrained_toy):
    """``method.fresh_pairs``: each training batch reconstructs the teacher's samples of new latents at the
    sampling std (two batches differ); held-out batches keep the stored pairs, so their loss stays comparable."""
    from fmpolicy.policy.reflow import Teacher

    gen = torch.Generator().manual_seed(5)
    a, z, pairs = two_modes(512, gen), torch.randn(512, 1, 2, generator=gen), torch.randn(512, 2, 1, 2, generator=gen)
    bank, samples = {"train": LatentBank(np.arange(512), z, 512)}, {"train": LatentBank(np.arange(512), pairs, 512)}
    batch = {"obs": None, "action": a, "index": np.arange(512), "split": "train"}
    cfg = toy_cfg("inverse")
    cfg["method"]["sample_weight"] = 1.0
    stored = ReconstructionObjective(pretrained_toy, cfg, bank, samples)
    teacher = copy.deepcopy(pretrained_toy)
    fresh = ReconstructionObjective(pretrained_toy, cfg, bank, samples, (Teacher(teacher, "euler", 2), 0.5))
    # the teacher is not a submodule: its weights are neither optimized nor saved
    assert len(list(fresh.parameters())) == len(list(stored.parameters()))
    torch.manual_seed(0)
    first, second = fresh.fresh_pairs(None, slice(None), a), fresh.fresh_pairs(None, slice(None), a)
    assert not torch.allclose(first[:, 0], second[:, 0])
    assert first[:, 0].std().item() == pytest.approx(0.5, rel=0.1)
    with torch.no_grad():
        torch.testing.assert_close(first[:, 1], teacher.sample(None, first[:, 0], "euler", 2))
        assert fresh(batch)[0].item() != pytest.approx(fresh(batch)[0].item(), rel=1e-4)
        fresh.eval(), stored.eval()
        assert fresh(batch)[0].item() == pytest.approx(stored(batch)[0].item(), rel=1e-6)


class ChunkToy(ToyFlow):
    """The toy field applied to each step of a chunk of 2-D actions."""

    def velocity(self, x, t, cond):
        return self.net(torch.cat([x, t[:, None, None].expand(-1, x.shape[1], 1)], -1))


def test_unexecuted_weight_scales_the_chunk_steps_the_policy_never_executes():
    """``method.unexecuted_weight``: 1 on the executed steps (from n_obs_steps - 1, n_action_steps of them),
    the weight elsewhere; at 0 the NLL is the plain NLL of the executed steps alone, blind to the others."""
    cfg = toy_cfg("inverse")
    cfg["method"]["sample_weight"] = 0.0
    cfg["policy"].update(horizon=5, n_obs_steps=2, n_action_steps=2)
    cfg["method"]["unexecuted_weight"] = 0.25
    assert executed_step_weight(cfg).flatten().tolist() == [0.25, 1.0, 1.0, 0.25, 0.25]
    cfg["method"]["unexecuted_weight"] = 1.0
    assert executed_step_weight(cfg) is None
    for bad in (1.5, -0.1, "half"):
        cfg["method"]["unexecuted_weight"] = bad
        with pytest.raises(UserError, match="unexecuted_weight must be a number in"):
            executed_step_weight(cfg)
    torch.manual_seed(5)
    model, gen = ChunkToy(), torch.Generator().manual_seed(5)
    a, z = torch.randn(16, 5, 2, generator=gen), torch.randn(16, 5, 2, generator=gen)
    bank = {"train": LatentBank(np.arange(16), z, 16)}
    unexecuted, executed = a.clone(), a.clone()
    unexecuted[:, [0, 3, 4]] += 1.0  # the past step and the tail moved
    executed[:, 1] += 1.0
    losses = {}
    for w in (0.0, 1.0):
        cfg["method"]["unexecuted_weight"] = w
        objective = ReconstructionObjective(model, cfg, bank)
        with torch.no_grad():
            for name, target in {"clean": a, "unexecuted": unexecuted, "executed": executed}.items():
                batch = {"obs": None, "action": target, "index": np.arange(16), "split": "train"}
                losses[w, name] = objective(batch)[0]
            plain = flow.gaussian_nll(a[:, 1:3], model.sample(None, z, "euler", 1)[:, 1:3], objective.log_sigma)
    torch.testing.assert_close(losses[0.0, "clean"], plain)
    assert losses[0.0, "unexecuted"] == losses[0.0, "clean"] < losses[0.0, "executed"]
    assert losses[1.0, "clean"] < losses[1.0, "unexecuted"]


class ConditionedToy(ToyFlow):
    """The toy field, also fed a 1-D conditioning value (the observation)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.SiLU(), nn.Linear(32, 2))

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def velocity(self, x, t, cond):
        return self.net(torch.cat([x[:, 0], t[:, None], cond], -1))[:, None]


def test_cond_noise_perturbs_the_conditioning_only_while_training():
    """``method.cond_noise``: training losses see a noisy conditioning vector (two draws differ, and differ
    from the clean loss); validation (eval mode) sees the clean one; an unconditional model is unaffected."""
    torch.manual_seed(5)
    model, gen = ConditionedToy(), torch.Generator().manual_seed(5)
    a, z = two_modes(16, gen), torch.randn(16, 1, 2, generator=gen)
    batch = {"obs": torch.randn(16, 1, generator=gen), "action": a, "index": np.arange(16), "split": "train"}
    bank = {"train": LatentBank(np.arange(16), z, 16)}
    cfg = toy_cfg("inverse")
    cfg["method"]["sample_weight"] = 0.0
    clean = ReconstructionObjective(model, cfg, bank)
    cfg["method"]["cond_noise"] = 0.5
    noisy = ReconstructionObjective(model, cfg, bank)
    with torch.no_grad():
        reference = clean(batch)[0].item()
        first, second = noisy(batch)[0].item(), noisy(batch)[0].item()
        assert len({round(v, 6) for v in (reference, first, second)}) == 3
        noisy.eval()
        assert noisy(batch)[0].item() == pytest.approx(reference, rel=1e-6)
        unconditional = ReconstructionObjective(ToyFlow(), cfg, bank)
        assert torch.isfinite(unconditional({**batch, "obs": None})[0])


def _random_head(form: str, eps: float, dim: int) -> torch.nn.Module:
    if form == "affine":
        head = AffineContraction(dim=dim, cond_dim=5, hidden=32, rank=3, eps=eps, time_scale=100.0)
    else:
        head = ConvexPotentialContraction(dim=dim, cond_dim=5, hidden=32, layers=3, eps=eps, time_scale=100.0)
    head = head.double()
    with torch.no_grad():  # random, far from the near-zero initialization
        for p in head.parameters():
            p.normal_(0, 0.5)
    return head


@pytest.mark.parametrize("form", ["affine", "convex_potential"])
def test_residual_symmetric_jacobian_is_below_minus_eps(form):
    torch.manual_seed(0)
    eps, dim = 0.05, 12
    head = _random_head(form, eps, dim)
    for _ in range(20):
        x = torch.randn(1, 6, 2, dtype=torch.float64) * 3
        t, cond = torch.rand(1, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda y, t=t, cond=cond: head(y, t, cond).flatten(), x).reshape(
            dim, dim
        )
        sym = 0.5 * (jac + jac.T)
        assert torch.linalg.eigvalsh(sym).max().item() <= -eps + 1e-9
        if form == "affine":
            assert torch.allclose(jac, -head.precision(t, cond)[0], atol=1e-9)
        else:  # a gradient field: its Jacobian is symmetric, and nonlinear in x
            assert torch.allclose(jac, jac.T, atol=1e-9)


def test_convex_potential_gradient_matches_autograd():
    torch.manual_seed(1)
    head = _random_head("convex_potential", 0.05, 12)
    x = torch.randn(7, 12, dtype=torch.float64, requires_grad=True)
    t, cond = torch.rand(7, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    _, biases = head.parts(t, cond)
    (auto,) = torch.autograd.grad(head.potential(x, biases).sum(), x)
    assert torch.allclose(head.potential_grad(x, biases), auto, atol=1e-10)
    # convex along a line through two points: phi at the midpoint <= the mean of the ends
    y = torch.randn(7, 12, dtype=torch.float64)
    mid = head.potential(0.5 * (x + y), biases)
    assert torch.all(mid <= 0.5 * (head.potential(x, biases) + head.potential(y, biases)) + 1e-12)


@pytest.fixture(scope="module")
def ft_runs(tmp_path_factory, tiny_run):
    _, result = tiny_run
    payload = load_checkpoint(result.checkpoint)
    runs = {}
    for name, method, form in (
        ("ft_mle", "ft_mle", None),
        ("ft_residual", "ft_residual", "affine"),
        ("ft_residual_convex", "ft_residual", "convex_potential"),
        ("reflow", "reflow", None),
    ):
        out = tmp_path_factory.mktemp(name)
        overrides = {
            "method": method,
            "out": str(out),
            "train.steps": 20,
            "train.batch_size": 32,
            "train.warmup_steps": 2,
            "train.ckpt_every": 10,
            "train.log_every": 5,
            "train.val_batches": 1,
            "method.max_windows": 64,
            "inference.nfe": 2,
        }
        if name == "ft_mle":
            overrides["method.extra_nfes"] = [1]  # one checkpoint tuned for NFE 1 and 2
        if method == "reflow":
            overrides.update({"method.pair_nfe": 8, "train.lr": 1e-3})
        else:
            overrides.update({"method.inverse_nfe": 16, "method.sigma.mode": "learned"})
        if form:
            overrides["method.residual.form"] = form
        cfg = compose(overrides, base=payload["config"])
        runs[name] = (finetune(payload, cfg, source=str(result.checkpoint), progress=False), payload)
    return runs


def _tiny_student(tmp_path, extra: dict) -> dict:
    """Overrides of a tiny FT-FM run into ``tmp_path/student`` (two steps on 32 windows), plus ``extra``."""
    return {
        "method": "ft_mle",
        "out": str(tmp_path / "student"),
        "train.steps": 2,
        "train.batch_size": 32,
        "train.val_batches": 1,
        "method.max_windows": 32,
        "method.inverse_nfe": 8,
        **extra,
    }


def test_pair_teacher_makes_the_sample_pairs_with_its_own_solver(ft_runs, tmp_path):
    """``method.pair_teacher``: the pairs' targets are the teacher's samples at its own solver and NFE (not the
    pretrained flow's at pair_solver/pair_nfe); a teacher of other data is refused with a clear error."""
    from fmpolicy.data.tasks import load_task_data
    from fmpolicy.policy.api import model_from_checkpoint
    from fmpolicy.policy.reflow import generate_pairs

    result, payload = ft_runs["ft_mle"]
    teacher_path = result.checkpoint
    overrides = _tiny_student(tmp_path, {"method.pair_teacher": str(teacher_path), "inference.nfe": 1})
    cfg = compose(overrides, base=payload["config"])
    finetune(payload, cfg, source="", progress=False)
    saved = torch.load(tmp_path / "student" / "pairs.pt", weights_only=False)
    assert saved["settings"]["teacher"] == str(teacher_path.resolve())
    assert (saved["settings"]["pair_solver"], saved["settings"]["pair_nfe"]) == ("euler", 2)
    windows, idx = load_task_data(cfg).windows(cfg, "train"), saved["train"]["indices"]
    std = saved["settings"]["latent_std"]
    teacher = model_from_checkpoint(load_checkpoint(teacher_path)).eval()
    expected = generate_pairs(teacher, windows, idx, "euler", 2, cfg["seed"], False, std)
    torch.testing.assert_close(saved["train"]["latents"], expected)
    fresh = compose({**overrides, "method.fresh_pairs": True, "out": str(tmp_path / "fresh")}, base=payload["config"])
    history = finetune(payload, fresh, source="", progress=False).history  # new teacher samples in each batch
    assert np.isfinite(history[-1]["sample_recon_mse"]) and np.isfinite(history[-1]["val_loss"])
    fresh_cache = torch.load(tmp_path / "fresh" / "pairs.pt", weights_only=False)  # held-out pairs only
    assert "train" not in fresh_cache
    torch.testing.assert_close(fresh_cache["val"]["latents"], saved["val"]["latents"])
    pretrained = model_from_checkpoint(payload).eval()
    flow_pairs = generate_pairs(pretrained, windows, idx, "rk4", cfg["method"]["pair_nfe"], cfg["seed"], False, std)
    assert not torch.allclose(saved["train"]["latents"][:, 1], flow_pairs[:, 1], atol=1e-3)

    other = load_checkpoint(teacher_path)
    for weights in ("model", "ema_model"):
        for key in [k for k in other[weights] if k.startswith("action_norm.")]:
            other[weights][key] = other[weights][key] + 1.0
    torch.save(other, tmp_path / "other.pt")
    cfg = compose(
        {**overrides, "method.pair_teacher": str(tmp_path / "other.pt"), "out": str(tmp_path / "s2")},
        base=payload["config"],
    )
    with pytest.raises(UserError, match="pair_teacher .* another task or dataset"):
        finetune(payload, cfg, source="", progress=False)
    cfg["method"]["pair_teacher"] = str(tmp_path / "missing")
    with pytest.raises(UserError, match="method.pair_teacher not found at .*: pass method.pair_teacher=RUN_DIR"):
        finetune(payload, cfg, source="", progress=False)


def test_onpolicy_pairs_sit_at_the_observations_the_policy_acted_on(ft_runs, tmp_path):
    """``method.onpolicy_from``: the observations a run's policy acts on in closed loop (one per decision of an
    unfinished episode), each paired with a latent and the teacher's sample of it; training draws the pairs from
    them, the held-out windows keep their stored pairs; a missing run or no teacher is a clear error."""
    from fmpolicy.eval.rollout import rollout_episodes
    from fmpolicy.policy.api import model_from_checkpoint

    result, payload = ft_runs["ft_mle"]
    policy = load_policy(result.checkpoint)
    recorded = []
    episodes, _, _ = rollout_episodes(policy, policy.cfg, [300000, 300001], 1, "euler", 2, record=recorded.append)
    decisions = sum(-(-e["steps"] // policy.n_action_steps) for e in episodes)  # ceil: a chunk per decision
    assert sum(len(r["agent_pos"]) for r in recorded) == decisions
    assert recorded[0]["keypoint"].shape[1:] == (policy.n_obs_steps, 9, 2)

    overrides = _tiny_student(
        tmp_path,
        {
            "method.pair_nfe": 4,
            "method.onpolicy_from": str(result.checkpoint.parent.parent),
            "method.onpolicy_episodes": 2,
            "method.onpolicy_nfe": 1,  # the run acts at NFE 1 (tuned for 2 and 1) while collecting
            "eval.n_envs": 2,
        },
    )
    cfg = compose(overrides, base=payload["config"])
    history = finetune(payload, cfg, source="", progress=False).history
    assert np.isfinite(history[-1]["sample_recon_mse"]) and np.isfinite(history[-1]["val_loss"])
    saved = torch.load(tmp_path / "student" / "onpolicy.pt", weights_only=False)
    n = len(saved["pairs"])
    assert saved["settings"]["nfe"] == 1 and saved["settings"]["episodes"] == 2
    assert n == decisions and saved["obs"]["agent_pos"].shape == (n, policy.n_obs_steps, 2)
    assert saved["pairs"].shape == (n, 2, cfg["policy"]["horizon"], 2)
    pretrained = model_from_checkpoint(payload).eval()
    with torch.no_grad():  # the teacher (the pretrained flow, rk4 at pair_nfe) samples each latent at its observation
        z = saved["pairs"][:8, 0]
        expected = pretrained.sample(pretrained.condition({k: v[:8] for k, v in saved["obs"].items()}), z, "rk4", 4)
    torch.testing.assert_close(saved["pairs"][:8, 1], expected)
    assert "train" not in torch.load(tmp_path / "student" / "pairs.pt", weights_only=False)

    with pytest.raises(UserError, match="method.onpolicy_from not found at .*: pass method.onpolicy_from=RUN_DIR"):
        finetune(
            payload, compose({**overrides, "method.onpolicy_from": str(tmp_path / "nope")}, base=payload["config"])
        )
    with pytest.raises(UserError, match="needs method.sample_weight > 0"):
        finetune(payload, compose({**overrides, "method.sample_weight": 0.0}, base=payload["config"]))
    with pytest.raises(UserError, match="method.fresh_pairs and method.onpolicy_from both choose"):
        finetune(payload, compose({**overrides, "method.fresh_pairs": True}, base=payload["config"]))


@pytest.mark.parametrize("run", ["ft_residual", "ft_residual_convex"])
def test_residual_training_leaves_base_bit_identical(ft_runs, run):
    result, pretrained = ft_runs[run]
    tuned = load_checkpoint(result.checkpoint)
    for name in ("model", "ema_model"):
        for k, v in pretrained["ema_model"].items():
            assert torch.equal(tuned[name][f"base.{k}"], v), k
    # the residual did train: its conditioning network's output layer starts at zero
    assert tuned["model"]["residual.mlp.4.weight"].abs().sum() > 0


def test_finetuned_checkpoints_round_trip_and_drive_the_policy_api(ft_runs):
    obs = {"keypoint": np.random.default_rng(0).uniform(100, 400, (2, 2, 9, 2)), "agent_pos": np.full((2, 2, 2), 250.0)}
    for name, (result, _) in ft_runs.items():
        payload = load_checkpoint(result.checkpoint)
        assert name.startswith(payload["config"]["method"]["kind"]) and payload["source_checkpoint"]
        if name != "reflow":
            assert result.history[-1]["sigma"] != pytest.approx(0.05)  # learned sigma moved
        # each tuned NFE's reconstruction is trained and logged
        assert ("recon_mse_nfe1" in result.history[-1]) == (name == "ft_mle")
        a = load_policy(result.checkpoint, seed=3).predict_action(obs)
        b = load_policy(result.checkpoint, seed=3).predict_action(obs)
        assert a.shape == (2, 8, 2) and np.array_equal(a, b)
        assert load_policy(result.checkpoint).nfe == 2
        if name != "reflow":  # sampled at the inverse latents' spread (match_latent_std)
            latents = torch.load(result.checkpoint.parent.parent / "latents.pt", weights_only=False)
            want = round(latents["train"]["stats"]["std"], 4)
            assert payload["config"]["inference"]["noise_scale"] == want != 1.0
        else:
            assert payload["config"]["inference"]["noise_scale"] == 1.0
        # the task's temperature (Push-T: 0.8) scales whatever std the checkpoint samples at
        temperature = payload["config"]["inference"]["temperature"]
        assert temperature == 0.8
        want_std = payload["config"]["inference"]["noise_scale"] * temperature
        assert load_policy(result.checkpoint).latent_std == pytest.approx(want_std)


@pytest.mark.parametrize("run", ["ft_residual", "ft_residual_convex"])
def test_diagnose_reports_reconstruction_and_a_valid_certificate(ft_runs, run, tmp_path, capsys):
    import json

    from fmpolicy.cli import main

    result, _ = ft_runs[run]
    argv = [
        "diagnose",
        f"checkpoint={result.checkpoint}",
        f"out={tmp_path}",
        "diagnose.windows=16",
        "diagnose.nfes=[1,4]",
        "diagnose.inverse_nfe=32",
        "diagnose.certificate_samples=2",
        "diagnose.certificate_points=2",
    ]
    assert main(argv) == 0
    d = json.loads((tmp_path / "diagnostics.json").read_text())
    assert set(d["reconstruction_mse"]) == {"inverse", "independent"}
    assert set(d["reconstruction_mse"]["inverse"]) == {"1", "4"}
    # more solver steps from the inverse latent land closer to the demonstration
    assert d["reconstruction_mse"]["inverse"]["4"] < d["reconstruction_mse"]["inverse"]["1"]
    eps = d["contraction"]["residual"]["guaranteed_rate_eps"]
    assert d["contraction"]["residual"]["lambda_max_sym_max"] <= -eps + 1e-4
    assert d["contraction"]["field"]["spectral_norm_max"] > 0
    assert "round-trip" in capsys.readouterr().out


def test_bench_and_robustness_tables(ft_runs, tiny_run, tmp_path):
    import csv

    from fmpolicy.cli import main

    _, fm = tiny_run
    runs = (
        f"{{FM: {fm.checkpoint}, FT-FM: {ft_runs['ft_mle'][0].checkpoint}, "
        f"ResFT-FM: {ft_runs['ft_residual'][0].checkpoint}, Reflow: {ft_runs['reflow'][0].checkpoint}}}"
    )
    common = [
        "eval.episodes=2",
        "eval.n_envs=2",
        "eval.max_episode_steps=16",
        "diagnose.windows=8",
        "diagnose.inverse_nfe=16",
    ]
    assert (
        main(["bench", f"bench.runs={runs}", "bench.nfes=[1,2]", "bench.latency_calls=2", *common, f"out={tmp_path}/b"])
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "b" / "bench.csv")))
    # FM and the reflowed field at each listed NFE; the fine-tuned runs at the NFEs they were tuned for
    assert [(r["method"], r["nfe"]) for r in rows] == [
        ("FM", "1"),
        ("FM", "2"),
        ("FT-FM", "1"),
        ("FT-FM", "2"),
        ("ResFT-FM", "2"),
        ("Reflow", "1"),
        ("Reflow", "2"),
    ]
    for r in rows:
        assert 0 <= float(r["score"]) <= 1 and float(r["latency_ms_batch1"]) > 0
        assert float(r["recon_mse_inverse"]) >= 0
    # every row beside the reference (FM at its highest NFE) carries its seed-by-seed difference to it,
    # the same that `fmpolicy compare` gives from the rows' episode files
    from fmpolicy.eval.paired import compare_episodes, read_episodes

    assert rows[1]["d_score"] == "" and all(r["d_score"] != "" for i, r in enumerate(rows) if i != 1)
    ref, ft = (
        read_episodes(tmp_path / "b" / "episodes" / f"{m}_euler_nfe{n}.csv") for m, n in (("FM", 2), ("FT-FM", 1))
    )
    assert float(rows[2]["d_score"]) == pytest.approx(compare_episodes(ref, ft)["score"]["diff"])
    assert float(rows[2]["d_score"]) == pytest.approx(float(rows[2]["score"]) - float(rows[1]["score"]))
    assert "the row minus FM at NFE 2 (euler) seed by seed" in (tmp_path / "b" / "bench.md").read_text()
    assert "| method |" in (tmp_path / "b" / "bench.md").read_text()
    assert (tmp_path / "b" / "bench.png").exists()

    argv = [
        "robustness",
        f"bench.runs={{FM: {fm.checkpoint}, ResFT-FM: {ft_runs['ft_residual'][0].checkpoint}}}",
        "robustness.obs_noise=[0.0,5.0]",
        "robustness.perturbations={block_displaced: [60.0], action_noise: [5.0]}",
        "robustness.disturb_step=4",
        "robustness.latent_samples=2",
        "robustness.field_noise=[0.1]",
        *common,
        f"out={tmp_path}/r",
    ]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(tmp_path / "r" / "robustness.csv")))
    assert [(r["method"], r["perturbation"], float(r["level"])) for r in rows] == [
        (method, kind, level)
        for method in ("FM", "ResFT-FM")
        for kind, level in (("obs_noise", 0.0), ("obs_noise", 5.0), ("block_displaced", 60.0), ("action_noise", 5.0))
    ]
    assert float(rows[1]["chunk_deviation"]) > 0.0 == float(rows[0]["chunk_deviation"])
    # offline sensitivity, one row per run at its own solver and NFE (FM 10, ResFT-FM 2)
    sens = list(csv.DictReader(open(tmp_path / "r" / "sensitivity.csv")))
    assert [(r["method"], r["nfe"]) for r in sens] == [("FM", "10"), ("ResFT-FM", "2")]
    assert sens[0]["residual_eps"] == "" and float(sens[1]["residual_eps"]) > 0
    assert sens[1]["state_gain_t0.9"] == "" and float(sens[0]["state_gain_t0.9"]) > 0
    for r in sens:
        assert float(r["latent_spread"]) > 0 and float(r["field_noise_rms_0.1"]) > 0
        assert float(r["state_gain_t0"]) > 0 and float(r["state_gain_t0.5"]) > 0
    assert (tmp_path / "r" / "sensitivity.png").exists() and "| method |" in (
        tmp_path / "r" / "sensitivity.md"
    ).read_text()


class LinearContraction(FlowSampling):
    """``v = -c x``: one Euler step of size ``h`` multiplies a state perturbation by exactly ``1 - c h``."""

    horizon, action_dim = 4, 2

    def __init__(self, c: float) -> None:
        self.c = c

    def velocity(self, x, t, cond):
        return -self.c * x


def test_state_gain_of_a_linear_contraction_is_the_product_of_euler_step_factors():
    from fmpolicy.eval.sensitivity import state_gains

    z = torch.randn(5, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gains = state_gains(LinearContraction(0.8), None, z, "euler", 4, norm=0.1)
    assert list(gains) == [0.0, 0.25, 0.5, 0.75]  # each solver step's time t_k
    for k, gain in enumerate(gains.values()):
        assert gain == pytest.approx((1 - 0.8 / 4) ** (4 - k), rel=1e-6)


@pytest.mark.parametrize("run", ["FM", "ResFT-FM"])
def test_sensitivity_measures_are_exact_where_they_must_be(ft_runs, tiny_run, run):
    from fmpolicy.eval.sensitivity import FIELD_NOISE, STATE_GAIN, sensitivity, solve
    from fmpolicy.policy.api import model_from_checkpoint

    path = tiny_run[1].checkpoint if run == "FM" else ft_runs["ft_residual"][0].checkpoint
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload)
    rng = np.random.default_rng(0)
    obs = {
        "keypoint": torch.as_tensor(rng.uniform(100, 400, (6, 2, 9, 2)), dtype=torch.float32),
        "agent_pos": torch.as_tensor(rng.uniform(100, 400, (6, 2, 2)), dtype=torch.float32),
    }
    with torch.no_grad():
        cond = model.condition(obs)
        z = torch.randn(6, 16, 2, generator=torch.Generator().manual_seed(1))
        clean = model.sample(cond, z, "euler", 2)
        # no disturbance, a zero state delta or zero field noise: exactly the model's own sample
        assert torch.equal(solve(model, cond, z, "euler", 2), clean)
        assert torch.equal(solve(model, cond, z, "euler", 2, state_delta=(1, torch.zeros_like(z))), clean)
        assert torch.equal(solve(model, cond, z, "euler", 2, field_noise=0.0), clean)
        # a perturbation of the final state (grid index = steps, t=1) moves the output by itself
        delta = 0.1 * torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(solve(model, cond, z, "euler", 2, state_delta=(2, delta)) - clean, delta, atol=1e-6)
    row = sensitivity(model, obs, "euler", 2, latent_samples=3, state_delta=0.1, field_noise=[0.0, 0.1, 0.3])
    keys = {"latent_spread", f"{STATE_GAIN}0", f"{STATE_GAIN}0.5", f"{FIELD_NOISE}0", f"{FIELD_NOISE}0.1"}
    keys |= {f"{FIELD_NOISE}0.3"} | ({"residual_eps"} if run == "ResFT-FM" else set())
    assert set(row) == keys
    assert row[f"{FIELD_NOISE}0"] == 0.0 < row[f"{FIELD_NOISE}0.1"] < row[f"{FIELD_NOISE}0.3"]
    assert row["latent_spread"] > 0 and row[f"{STATE_GAIN}0"] > 0 and row[f"{STATE_GAIN}0.5"] > 0
    if run == "ResFT-FM":
        assert row["residual_eps"] == payload["config"]["method"]["residual"]["eps"]
    # same latents, directions and noise every time
    assert sensitivity(model, obs, "euler", 2, latent_samples=3, state_delta=0.1, field_noise=[0.0, 0.1, 0.3]) == row


def test_block_displacement_moves_the_block():
    from fmpolicy.envs.pusht import BlockDisturbance, PushTKeypointEnv

    env = BlockDisturbance(PushTKeypointEnv(), distance=50.0, at_step=1)
    obs, _ = env.reset(seed=0)
    before = obs["state"][2:4].copy()
    env.step(obs["agent_pos"])
    obs, *_ = env.step(obs["agent_pos"])
    moved = np.linalg.norm(obs["state"][2:4] - before)
    assert 30.0 < moved <= 50.5


def test_reflow_pairs_are_the_pretrained_flows_samples_and_its_loss_drops(ft_runs):
    from fmpolicy.policy.api import model_from_checkpoint

    result, pretrained_payload = ft_runs["reflow"]
    pairs = torch.load(result.checkpoint.parent.parent / "pairs.pt", weights_only=False)
    from fmpolicy.policy.checkpoint import weights_digest

    pretrained = model_from_checkpoint(pretrained_payload)
    assert pairs["settings"] == {"pair_solver": "rk4", "pair_nfe": 8, "seed": 0, "weights": weights_digest(pretrained)}
    z, a_hat = pairs["train"]["latents"][:, 0], pairs["train"]["latents"][:, 1]
    assert z.shape == a_hat.shape and z.shape[1:] == (16, 2) and len(z) == 64
    # a_hat is what the pretrained flow makes from z with the pair solver: recompute a few
    from fmpolicy.data.tasks import load_task_data
    from fmpolicy.policy.train import make_batch

    cfg = load_checkpoint(result.checkpoint)["config"]
    windows = load_task_data(cfg).windows(cfg, "train")
    idx = pairs["train"]["indices"][:4]
    batch = make_batch(windows, idx, torch.device("cpu"), "")
    with torch.no_grad():
        again = pretrained.sample(pretrained.condition(batch["obs"]), z[:4], "rk4", 8)
    assert torch.allclose(again, a_hat[:4], atol=1e-5)
    # FT-FM's sample pairs at the policy's sampling std (method.sample_latent_std=inference): the same draws, scaled
    from fmpolicy.policy.reflow import generate_pairs

    unit, narrow = (generate_pairs(pretrained, windows, idx, "rk4", 8, 0, False, std) for std in (1.0, 0.5))
    assert torch.equal(narrow[:, 0], 0.5 * unit[:, 0])
    with torch.no_grad():
        from_narrow = pretrained.sample(pretrained.condition(batch["obs"]), narrow[:, 0], "rk4", 8)
    assert torch.allclose(narrow[:, 1], from_narrow, atol=1e-5) and not torch.allclose(narrow[:, 1], unit[:, 1])
    with pytest.raises(UserError, match="method.sample_latent_std"):
        compose({"method": "ft_mle", "method.sample_latent_std": "wide"})
    # the reflowed field fits the straight paths z -> a_hat better than the field that made them
    reflowed = model_from_checkpoint(load_checkpoint(result.checkpoint))
    cond_all = make_batch(windows, pairs["train"]["indices"], torch.device("cpu"), "")["obs"]
    fit = {}
    for name, model in (("pretrained", pretrained), ("reflowed", reflowed)):
        torch.manual_seed(0)
        with torch.no_grad():
            fit[name] = model.pretrain_loss(model.condition(cond_all), a_hat, "uniform", x0=z).item()
    assert fit["reflowed"] < 0.7 * fit["pretrained"]


def test_tuned_nfes_must_fit_the_solver():
    from fmpolicy.policy.finetune import tuned_nfes

    cfg = compose({"method": "ft_mle", "inference.nfe": 2, "method.extra_nfes": [1, 4]})
    assert tuned_nfes(cfg) == [1, 2, 4]
    with pytest.raises(UserError, match=r"method.extra_nfes=\[1\]: solver midpoint .* spends 2 evaluations per step"):
        compose({"method": "ft_mle", "inference.solver": "midpoint", "inference.nfe": 2, "method.extra_nfes": [1]})


def test_time_gated_residual_contracts_at_eps_t_to_the_p_and_vanishes_at_t0():
    from fmpolicy.policy.model import build_model

    cfg = compose(
        {
            "task": "pusht_lowdim",
            "method": "ft_residual",
            "policy.down_dims": [16, 32],
            "policy.n_groups": 4,
            "method.residual.eps": 0.2,
            "method.residual.time_power": 2,
        }
    )
    model = build_model(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # a residual far from its start, so the check sees a real P
        model.residual.mlp[-1].weight.normal_(0.0, 0.1)
    cond = torch.randn(1, model.base.obs_encoder.out_dim)
    x = torch.randn(1, model.horizon, model.action_dim)
    for t in (0.0, 0.5, 0.9):
        tt = torch.full((1,), t)
        jac = torch.autograd.functional.jacobian(
            lambda y, tt=tt: model.gated_residual(y, tt, cond).flatten(), x
        ).flatten(1)
        top = torch.linalg.eigvalsh(0.5 * (jac + jac.T)).max().item()
        assert model.rate(t) == pytest.approx(0.2 * t**2)
        assert top <= -model.rate(t) + 1e-6
        if t == 0.0:
            assert torch.equal(model.velocity(x, tt, cond), model.base.velocity(x, tt, cond))
        else:
            assert top < -1e-3  # it does contract once the gate opens

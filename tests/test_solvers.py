import math

import pytest
import torch

from fmpolicy.policy.solvers import integrate


def _field(x, t):
    # dx/dt = -2 t x + cos(t): no closed form needed; the reference below is RK4 with many steps.
    return -2.0 * t[:, None] * x + torch.cos(t)[:, None]


def _linear(x, t):
    return x  # dx/dt = x, x(t) = x0 e^t


@pytest.mark.parametrize(("solver", "order"), [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_order_of_accuracy(solver, order):
    x0 = torch.ones(1, 1, dtype=torch.float64)
    exact = math.e
    per = {"euler": 1, "midpoint": 2, "rk4": 4}[solver]
    errors = [abs(integrate(_linear, x0, solver, per * n).item() - exact) for n in (8, 16, 32)]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    for r in ratios:
        assert r == pytest.approx(2**order, rel=0.15)


def test_time_dependent_field_converges():
    x0 = torch.tensor([[0.5]], dtype=torch.float64)
    ref = integrate(_field, x0, "rk4", 4 * 512)
    assert abs(integrate(_field, x0, "rk4", 4 * 16) - ref).item() < 1e-6
    assert abs(integrate(_field, x0, "euler", 16) - ref).item() > 1e-3


def test_backward_integration_inverts():
    x0 = torch.randn(4, 3, dtype=torch.float64)
    x1 = integrate(_field, x0, "rk4", 128)
    back = integrate(_field, x1, "rk4", 128, t0=1.0, t1=0.0)
    assert torch.allclose(back, x0, atol=1e-8)


def test_bad_nfe_is_rejected():
    with pytest.raises(ValueError, match="multiple of 4"):
        integrate(_linear, torch.ones(1, 1), "rk4", 6)
    with pytest.raises(ValueError, match="unknown solver"):
        integrate(_linear, torch.ones(1, 1), "heun", 2)

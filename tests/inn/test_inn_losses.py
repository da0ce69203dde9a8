"""Tests of the multi-scale MMD."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tissue_inn.inn import BACKWARD_KERNELS, FORWARD_KERNELS, gaussian_pair_weights, mmd_multiscale
from tissue_inn.inn.losses import inverse_multiquadratic, squared_distances

pytestmark = pytest.mark.usefixtures("one_thread")


def _normal(n: int, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("kernels", [FORWARD_KERNELS, BACKWARD_KERNELS])
def test_zero_for_identical_samples(kernels) -> None:
    x = _normal(200, 3, seed=0)
    assert float(mmd_multiscale(x, x.clone(), kernels)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kernels", [FORWARD_KERNELS, BACKWARD_KERNELS])
def test_grows_with_shift(kernels) -> None:
    x = _normal(400, 2, seed=1)
    same_law = _normal(400, 2, seed=2)
    base = float(mmd_multiscale(x, same_law, kernels))
    values = [float(mmd_multiscale(x, same_law + shift, kernels)) for shift in (0.5, 1.0, 2.0)]
    assert base >= 0.0
    assert base < values[0] < values[1] < values[2]
    assert values[0] > 3 * base  # a half-sigma shift stands far above the sampling noise


def test_kernel_formula_by_hand() -> None:
    # k(d) = C^a · ((C + d)/a)^(−a); C = 1.5, a = 2, d = 0.5 → 2.25 · (2/2)^(−2) = 2.25.
    d = torch.tensor([0.5], dtype=torch.float64)
    assert float(inverse_multiquadratic(d, [(1.5, 2.0)])) == pytest.approx(2.25)
    # Sum over kernels; C = 0.2, a = 0.5, d = 0.3 → 0.2^0.5 · (0.5/0.5)^(−0.5) = √0.2.
    total = inverse_multiquadratic(torch.tensor([0.3]), [(1.5, 2.0), (0.2, 0.5)])
    assert float(total) == pytest.approx(1.5**2 * (1.8 / 2.0) ** -2 + 0.2**0.5, rel=1e-6)


def test_mmd_by_hand_on_two_points() -> None:
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [3.0]], dtype=torch.float64)
    k = lambda d: 0.2**2 * ((0.2 + d) / 2.0) ** -2  # noqa: E731
    k_xx = 2 * k(0.0) + 2 * k(1.0)
    k_yy = 2 * k(0.0) + 2 * k(9.0)
    k_xy = k(0.0) + k(9.0) + k(1.0) + k(4.0)
    expected = (k_xx + k_yy - 2 * k_xy) / 4
    assert float(mmd_multiscale(x, y, [(0.2, 2.0)])) == pytest.approx(expected, rel=1e-12)


def test_squared_distances_match_cdist() -> None:
    x, y = _normal(7, 4, seed=3), _normal(7, 4, seed=4)
    assert torch.allclose(squared_distances(x, y), torch.cdist(x, y) ** 2, atol=1e-10)


def test_pair_weights_and_weighted_mmd() -> None:
    y = torch.tensor([[0.0], [0.48]], dtype=torch.float64)
    weights = gaussian_pair_weights(y, sigma=0.48)
    off = torch.exp(torch.tensor(-0.5, dtype=torch.float64))  # exp(−0.48² / (2 · 0.48²))
    assert torch.allclose(weights, torch.tensor([[1.0, off], [off, 1.0]], dtype=torch.float64))
    x, z = _normal(2, 2, seed=5), _normal(2, 2, seed=6)
    assert float(mmd_multiscale(x, z, BACKWARD_KERNELS, weights=torch.ones(2, 2, dtype=torch.float64))) == (
        pytest.approx(float(mmd_multiscale(x, z, BACKWARD_KERNELS)))
    )
    with pytest.raises(ValueError, match="weights"):
        mmd_multiscale(x, z, weights=torch.ones(3, 3))


def test_gradient_flows_to_both_samples() -> None:
    x = _normal(50, 2, seed=7).requires_grad_()
    y = (_normal(50, 2, seed=8) + 1.0).requires_grad_()
    mmd_multiscale(x, y).backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mmd_multiscale(torch.zeros(4, 2), torch.zeros(5, 2))


@settings(max_examples=10, deadline=None)
@given(n=st.integers(2, 40), dim=st.integers(1, 5), seed=st.integers(0, 1000))
def test_property_nonnegative_and_symmetric(n: int, dim: int, seed: int) -> None:
    x, y = _normal(n, dim, seed), _normal(n, dim, seed + 1) * 1.3
    forward = float(mmd_multiscale(x, y, FORWARD_KERNELS))
    backward = float(mmd_multiscale(y, x, FORWARD_KERNELS))
    assert forward >= -1e-12  # the kernel is positive definite, so the V-statistic is ≥ 0
    assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12)

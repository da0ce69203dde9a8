"""Validation of the batched adding-doubling solver.

References: van de Hulst (1980) table values (also in Wang, Jacques & Zheng 1995, the MCML paper),
analytic Beer-Lambert/Fresnel limits, and iadpython (S. Prahl's independent adding-doubling code).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tissue_inn.optics.adding_doubling import (
    ACCURATE_N_QUAD,
    DEFAULT_N_QUAD,
    fresnel_reflectance,
    slab_rt,
    stack_reflectance,
)
from tissue_inn.optics.quadrature import gauss_unit, radau_unit, split_quadrature

F64 = torch.float64


def _t(x):
    return torch.tensor(x, dtype=F64)


def _specular(n_slab: float) -> float:
    return ((n_slab - 1.0) / (n_slab + 1.0)) ** 2


# ----------------------------------------------------------------------------- quadrature


@pytest.mark.parametrize("n", [2, 8, 16, 32, 64])
def test_radau_exact_for_polynomials(n):
    x, w = radau_unit(n)
    assert x[-1] == 1.0 and np.all(np.diff(x) > 0) and np.all(w > 0)
    for k in range(2 * n - 1):  # exact up to degree 2n - 2
        assert abs(np.sum(w * x**k) - 1.0 / (k + 1)) < 1e-12


@pytest.mark.parametrize("n", [4, 8, 16])
def test_gauss_exact_for_polynomials(n):
    x, w = gauss_unit(n)
    for k in range(2 * n):
        assert abs(np.sum(w * x**k) - 1.0 / (k + 1)) < 1e-12


def test_split_quadrature_places_nodes_around_critical_angle():
    n = 1.4
    mu_c = math.sqrt(1 - 1 / n**2)
    mu, w = split_quadrature(torch.tensor([mu_c, 0.0], dtype=F64), 16, F64, torch.device("cpu"))
    assert torch.allclose(w.sum(-1), torch.ones(2, dtype=F64))
    assert torch.all(mu[0, :8] < mu_c) and torch.all(mu[0, 8:] > mu_c)
    assert mu[0, -1] == 1.0 and mu[1, -1] == 1.0
    # the integral of mu^3 over (0, 1] is 1/4 in both cases
    assert torch.allclose((w * mu**3).sum(-1), torch.full((2,), 0.25, dtype=F64))


def test_fresnel_normal_incidence_and_total_internal_reflection():
    mu = _t([1.0, 0.5, 0.1])
    r = fresnel_reflectance(_t(1.4), 1.0, mu)
    assert abs(r[0].item() - _specular(1.4)) < 1e-12
    assert r[2].item() == 1.0  # beyond the critical angle (mu_c = 0.714)
    assert 0 < r[1].item() <= 1.0


# ----------------------------------------------------------------------------- published values


@pytest.mark.parametrize("n_quad", [DEFAULT_N_QUAD, ACCURATE_N_QUAD])
def test_van_de_hulst_table_value(n_quad):
    """a = 0.9, b = 2, g = 0.75, n = 1: R = 0.09739, T = 0.66096 (van de Hulst 1980; MCML paper table)."""
    r, t = slab_rt(_t(0.9), _t(2.0), _t(0.75), 1.0, n_quad=n_quad)
    assert abs(r.item() / 0.09739 - 1) < 1e-3
    assert abs(t.item() / 0.66096 - 1) < 1e-3


@pytest.mark.parametrize("n_slab", [1.0, 1.4])
@pytest.mark.parametrize("tau", [0.1, 1.0, 3.0])
def test_pure_absorber_matches_beer_lambert_with_fresnel(n_slab, tau):
    """No scattering: multiple reflections of the collimated beam between two Fresnel surfaces."""
    r0 = _specular(n_slab)
    att = math.exp(-tau)
    expect_r = (1 - r0) ** 2 * r0 * att**2 / (1 - r0**2 * att**2)
    expect_t = (1 - r0) ** 2 * att / (1 - r0**2 * att**2)
    r, t = slab_rt(_t(0.0), _t(tau), _t(0.9), n_slab, n_quad=16, max_start_tau=1 / 64)
    assert abs(t.item() / expect_t - 1) < 1e-4
    assert abs(r.item() - expect_r) < 1e-4 * max(expect_r, 1e-3)


@pytest.mark.parametrize("g", [0.0, 0.8, 0.95])
def test_conservative_scattering_conserves_energy(g):
    r, t = slab_rt(_t(1.0), _t(5.0), _t(g), 1.0, n_quad=16)
    assert abs(r.item() + t.item() - 1.0) < 1e-6


# ----------------------------------------------------------------------------- iadpython


def _iad_rt(a, b, g, n, quad_pts):
    """(R without the first-surface specular reflection, total T) from iadpython."""
    iadpython = pytest.importorskip("iadpython")
    ur1, ut1, _, _ = iadpython.Sample(a=a, b=b, g=g, n=n, quad_pts=quad_pts).rt()
    # iadpython's UR1 includes the specular reflection of the top surface (checked: a = 0 and a thick
    # slab gives exactly ((n - 1) / (n + 1))^2).
    return float(ur1) - _specular(n), float(ut1)


@pytest.fixture
def fixed_iad_radau(monkeypatch):
    """iadpython 0.5.3 computes Radau weights from a power-basis polynomial: wrong beyond ~24 nodes.

    Recompute the weights from its own nodes with the stable formula (Abramowitz & Stegun 25.4.31,
    Legendre values by scipy's recurrence).
    """
    quadrature = pytest.importorskip("iadpython.quadrature")
    orig = quadrature.radau

    def radau(n, a=-1, b=1):
        x, _ = orig(n, a=a, b=b)
        t = (2 * x - (a + b)) / (a - b)  # back to [-1, 1] with the fixed node at -1
        w = (1 - t) / (n**2 * scipy.special.eval_legendre(n - 1, t) ** 2)
        w[np.isclose(t, -1.0)] = 2.0 / n**2
        return x, w * (b - a) / 2

    monkeypatch.setattr(quadrature, "radau", radau)


def test_iadpython_reference_is_fixed(fixed_iad_radau):
    import iadpython.quadrature

    x, w = iadpython.quadrature.radau(48, a=0, b=1)
    assert abs(w.sum() - 1) < 1e-9 and abs(np.sum(w * x**5) - 1 / 6) < 1e-9


SMALL_GRID = [
    (0.5, 0.1, 0.8, 1.0),
    (0.9, 2.0, 0.9, 1.36),
    (0.99, 10.0, 0.95, 1.45),
    (0.999, 100.0, 0.9, 1.36),
    (0.95, 1.0, 0.95, 1.0),
]


@pytest.mark.parametrize(("a", "b", "g", "n"), SMALL_GRID)
def test_same_quadrature_as_iadpython_agrees_closely(a, b, g, n):
    """Same discretisation (16 points, same rules and delta-M): differences only from the start layer."""
    r_ref, t_ref = _iad_rt(a, b, g, n, 16)
    r, t = slab_rt(_t(a), _t(b), _t(g), n, n_quad=16, max_start_tau=1 / 256)
    assert abs(r.item() / r_ref - 1) < 2e-4
    assert abs(t.item() - t_ref) < 2e-4 * max(t_ref, 1e-3)


def _iad_grid():
    return [
        (a, b, g, n)
        for a in (0.5, 0.9, 0.99, 0.999)
        for b in (0.1, 1.0, 10.0, 100.0)
        for g in (0.8, 0.9, 0.95)
        for n in (1.0, 1.36, 1.45)
    ]


@pytest.mark.slow
def test_grid_against_iadpython_64_points(fixed_iad_radau):
    """Grid a 0.5-0.999, b 0.1-100, g 0.8-0.95, n 1-1.45 against iadpython.

    (1) At the same quadrature order both codes solve the same discrete problem: they must agree
    everywhere. (2) Against 64 points (reference) the quadrature-order error is reported; the
    targets (<= 0.2 % at 32 points, <= 1 % at 16) hold where g <= 0.9 and a >= 0.9. For g = 0.95
    with low albedo the delta-M truncated phase function (N Legendre terms) misrepresents single
    back-scattering: R for a = 0.5, g = 0.95, n = 1.45 (R = 0.00087) converges as
    N = 16: +22 %, 32: +5.7 %, 64: +0.5 %, 96/128: 0.000871 in BOTH codes.
    """
    grid = _iad_grid()
    a, b, g, n = (_t([p[i] for p in grid]) for i in range(4))
    for n_quad in (DEFAULT_N_QUAD, ACCURATE_N_QUAD):
        same = np.array([_iad_rt(*p, quad_pts=n_quad)[0] for p in grid])
        r, _ = slab_rt(a, b, g, n, n_quad=n_quad, max_start_tau=1 / 128)
        assert np.max(np.abs(r.numpy() / same - 1)) < 2e-3, n_quad
    ref = np.array([_iad_rt(*p, quad_pts=64) for p in grid])
    arr = np.array(grid)
    relevant = (arr[:, 0] >= 0.9) & (arr[:, 2] <= 0.9)
    print("\nn_quad: max |R/R_ref - 1| (all; a>=0.9 & g<=0.9), max |T/T_ref - 1| (T_ref > 1e-4), worst (a, b, g, n)")
    errors = {}
    for n_quad in (DEFAULT_N_QUAD, 24, ACCURATE_N_QUAD):
        r, t = slab_rt(a, b, g, n, n_quad=n_quad)
        err_r = np.abs(r.numpy() / ref[:, 0] - 1)
        mask = ref[:, 1] > 1e-4
        err_t = np.abs(t.numpy()[mask] / ref[mask, 1] - 1)
        errors[n_quad] = (err_r[relevant].max(), err_t.max())
        print(
            n_quad, f"{err_r.max():.2e}; {err_r[relevant].max():.2e}", f"{err_t.max():.2e}", grid[int(err_r.argmax())]
        )
    assert errors[ACCURATE_N_QUAD][0] < 2e-3 and errors[ACCURATE_N_QUAD][1] < 2e-3
    assert errors[DEFAULT_N_QUAD][0] < 1.5e-2 and errors[DEFAULT_N_QUAD][1] < 1e-2


# ----------------------------------------------------------------------------- stacks


def _layers(n_spectra, n_wl=3, n_layers=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (n_spectra, n_wl, n_layers)
    mu_a = 0.05 * torch.exp(torch.rand(shape, generator=gen, dtype=F64) * math.log(400))
    g = 0.8 + 0.15 * torch.rand((n_spectra, n_layers), generator=gen, dtype=F64)
    mu_s = 5 * torch.exp(torch.rand(shape, generator=gen, dtype=F64) * math.log(10)) / (1 - g[:, None, :])
    d = 0.04 + 0.06 * torch.rand((n_spectra, n_layers), generator=gen, dtype=F64)
    return mu_a, mu_s, g, d


def test_single_layer_stack_equals_slab():
    mu_a, mu_s, g, d = (x[..., :1] for x in _layers(4, n_layers=1))
    r = stack_reflectance(mu_a, mu_s, g, d, n_tissue=1.36)
    mu_t = mu_a + mu_s
    r_slab, _ = slab_rt(mu_s / mu_t, mu_t * d[:, None, :], g[:, None, :], 1.36)
    assert torch.allclose(r, r_slab[..., 0], rtol=1e-10)


def test_splitting_a_layer_does_not_change_reflectance():
    """A homogeneous layer cut into three identical sub-layers exercises the adding equations."""
    mu_a, mu_s, g, d = (x[..., :1] for x in _layers(4))
    r1 = stack_reflectance(mu_a, mu_s, g, d, n_tissue=1.4)
    r3 = stack_reflectance(mu_a.repeat(1, 1, 3), mu_s.repeat(1, 1, 3), g.repeat(1, 3), d.repeat(1, 3) / 3, 1.4)
    assert torch.allclose(r1, r3, rtol=5e-4)


def test_layer_order_matters_and_deep_layers_matter_less():
    mu_a = _t([[[0.1, 20.0]]])
    mu_s = _t([[[100.0, 100.0]]])
    g, d = _t([[0.9, 0.9]]), _t([[0.05, 0.05]])
    r_clear_top = stack_reflectance(mu_a, mu_s, g, d, 1.36)
    r_dark_top = stack_reflectance(mu_a.flip(-1), mu_s, g, d, 1.36)
    assert r_clear_top.item() > 2 * r_dark_top.item()


def test_shapes_scalar_index_and_broadcasting():
    mu_a, mu_s, g, d = _layers(2, n_wl=4)
    r = stack_reflectance(mu_a, mu_s, g, d, n_tissue=torch.tensor([1.36, 1.36], dtype=F64))
    assert r.shape == (2, 4)
    r_float = stack_reflectance(mu_a, mu_s, g, d, n_tissue=1.36)
    assert torch.allclose(r, r_float, rtol=1e-12)
    # extra leading batch dimension
    r2 = stack_reflectance(mu_a[None], mu_s[None], g[None], d[None], n_tissue=1.36)
    assert r2.shape == (1, 2, 4) and torch.allclose(r2[0], r, rtol=1e-12)


def test_refractive_index_matched_and_mismatched_both_work():
    mu_a, mu_s, g, d = _layers(2)
    n_t = torch.tensor([1.0, 1.45], dtype=F64)
    r = stack_reflectance(mu_a, mu_s, g, d, n_tissue=n_t)
    r_each = torch.stack([stack_reflectance(mu_a[i], mu_s[i], g[i], d[i], n_tissue=n_t[i].item()) for i in range(2)])
    assert torch.allclose(r, r_each, rtol=1e-10)
    assert torch.all(torch.isfinite(r))


# ----------------------------------------------------------------------------- properties

_coef = st.floats(min_value=0.0, max_value=1.0)
_PROPS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _stack_from_unit(u_a, u_s, u_g, u_d):
    mu_a = 0.05 * 400.0**u_a
    g = 0.8 + 0.15 * u_g
    mu_s = 5 * 10.0**u_s / (1 - g)
    d = 0.01 + 0.2 * u_d
    return mu_a, mu_s, g, d


@_PROPS
@given(st.lists(st.tuples(_coef, _coef, _coef, _coef), min_size=1, max_size=3), st.floats(1.0, 1.5))
def test_reflectance_in_unit_interval_and_decreases_with_absorption(layers, n_tissue):
    vals = [_stack_from_unit(*lay) for lay in layers]
    mu_a = _t([[v[0] for v in vals]])
    mu_s = _t([[v[1] for v in vals]])
    g = _t([v[2] for v in vals])
    d = _t([v[3] for v in vals])
    r = stack_reflectance(mu_a, mu_s, g, d, n_tissue)
    assert 0.0 <= r.item() <= 1.0
    r_more = stack_reflectance(mu_a * 1.5, mu_s, g, d, n_tissue)
    assert r_more.item() < r.item()
    # more absorption in the top layer alone also lowers R
    bump = torch.ones_like(mu_a)
    bump[..., 0] = 2.0
    assert stack_reflectance(mu_a * bump, mu_s, g, d, n_tissue).item() < r.item()


@_PROPS
@given(st.integers(min_value=0, max_value=10_000))
def test_float32_matches_float64_and_batch_matches_single(seed):
    mu_a, mu_s, g, d = _layers(3, n_wl=2, seed=seed)
    r64 = stack_reflectance(mu_a, mu_s, g, d, 1.36)
    r32 = stack_reflectance(mu_a.float(), mu_s.float(), g.float(), d.float(), 1.36)
    assert r32.dtype == torch.float32
    assert torch.allclose(r32.double(), r64, rtol=2e-5, atol=1e-7)
    singles = torch.stack([stack_reflectance(mu_a[i], mu_s[i], g[i], d[i], 1.36) for i in range(3)])
    assert torch.allclose(singles, r64, rtol=1e-10, atol=1e-13)

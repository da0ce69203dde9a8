"""Slow cross-validation: the adding-doubling solver against the Monte Carlo reference.

Random 3-layer stacks of two kinds are solved by both methods:

* colon-like (Wirkert et al. 2016 prior ranges): mu_a log-uniform 0.05-20 /cm per layer and wavelength,
  mu_s' = a (lambda / 500 nm)^-b with a ~ U(5, 40) /cm and b = 1.286, g ~ U(0.8, 0.95),
  d ~ U(0.04, 0.1) cm, n = 1.36 for every layer;
* generic-like (Wirkert et al. 2017 ranges, wider): d log-uniform 0.002-0.2 cm, a ~ U(5, 100) /cm,
  b ~ U(0, 3.25), n ~ U(1.33, 1.54) (one index for the stack).

Monte Carlo uses 2e5 photons per spectrum point; adding-doubling uses 32 quadrature points (its
accurate setting; the default 16 is reported, not asserted). The criterion is statistical: the
z-scores |AD - MC| / sigma_MC must look like |N(0, 1)| draws (median < 1.2, none above 4, which for
~30 comparisons is a 3-sigma test with a Bonferroni-style allowance for the number of comparisons).
No model-error allowance is added.

All samples of a kind run in one batched MC call (about 3.6e6 photons, a few minutes on one core).

Run with: .venv/bin/python -m pytest -q -p no:cacheprovider -m slow tests/optics/test_ad_vs_mc.py -s
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from tissue_inn.optics.montecarlo import mc_reflectance

WAVELENGTHS_NM = (470.0, 560.0, 660.0)
N_PHOTONS = 200_000
N_COLON = 6
N_GENERIC = 6

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _ad_module():
    if importlib.util.find_spec("tissue_inn.optics.adding_doubling") is None:
        pytest.skip("tissue_inn.optics.adding_doubling is not present yet (the solver under validation)")
    from tissue_inn.optics import adding_doubling

    return adding_doubling


def _draw(kind: str, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One random 3-layer sample at WAVELENGTHS_NM: mu_a, mu_s [W, L], g, d [L], n scalar."""
    n_lay, lam = 3, np.asarray(WAVELENGTHS_NM)
    mu_a = np.exp(rng.uniform(math.log(0.05), math.log(20.0), size=(lam.size, n_lay)))
    g = rng.uniform(0.8, 0.95, size=n_lay)
    if kind == "colon":
        a, b = rng.uniform(5.0, 40.0, size=n_lay), np.full(n_lay, 1.286)
        d = rng.uniform(0.04, 0.1, size=n_lay)
        n = 1.36
    else:
        a, b = rng.uniform(5.0, 100.0, size=n_lay), rng.uniform(0.0, 3.25, size=n_lay)
        d = np.exp(rng.uniform(math.log(0.002), math.log(0.2), size=n_lay))
        n = float(rng.uniform(1.33, 1.54))
    mus_red = a[None, :] * (lam[:, None] / 500.0) ** (-b[None, :])
    mu_s = mus_red / (1.0 - g[None, :])
    f64 = torch.float64
    return {
        "mu_a": torch.tensor(mu_a, dtype=f64),
        "mu_s": torch.tensor(mu_s, dtype=f64),
        "g": torch.tensor(g, dtype=f64),
        "d": torch.tensor(d, dtype=f64),
        "n": n,
    }


def _mc_all(samples: list[dict], n_photons: int, seed: int, n_per_layer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """All samples and wavelengths in one batched MC call (the lock-step tail is shared); Rd, sigma [S, W]."""
    n_s, n_w = len(samples), samples[0]["mu_a"].shape[0]
    mu_a = torch.cat([s["mu_a"] for s in samples])
    mu_s = torch.cat([s["mu_s"] for s in samples])
    g = torch.cat([s["g"].expand(n_w, -1) for s in samples])
    d = torch.cat([s["d"].expand(n_w, -1) for s in samples])
    if n_per_layer is None:
        n = torch.cat([torch.full((n_w, 3), s["n"], dtype=torch.float64) for s in samples])
    else:
        n = torch.as_tensor(n_per_layer, dtype=torch.float64)
    res = mc_reflectance(mu_a, mu_s, g, d, n, n_photons=n_photons, seed=seed)
    return res.rd.reshape(n_s, n_w), res.rd_std_err.reshape(n_s, n_w)


def _draw_many(kind: str, n_samples: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_draw(kind, rng) for _ in range(n_samples)]



@pytest.mark.parametrize(("kind", "n_samples", "seed"), [("colon", N_COLON, 2024), ("generic", N_GENERIC, 2025)])
def test_adding_doubling_agrees_with_monte_carlo(kind, n_samples, seed):
    ad = _ad_module()
    samples = _draw_many(kind, n_samples, seed)
    rd_mc, sigma = _mc_all(samples, N_PHOTONS, seed=seed + 1)
    stack = {k: torch.stack([torch.as_tensor(s[k], dtype=torch.float64) for s in samples]) for k in samples[0]}
    args = (stack["mu_a"], stack["mu_s"], stack["g"], stack["d"], stack["n"])
    r32 = ad.stack_reflectance(*args, n_quad=32)
    r16 = ad.stack_reflectance(*args, n_quad=16)
    for i in range(len(samples)):
        print(
            f"{kind}[{i}] MC {rd_mc[i].numpy().round(5)} +- {sigma[i].numpy().round(5)} AD32 "
            f"{r32[i].numpy().round(5)} AD16 {r16[i].numpy().round(5)}"
        )
    z, rel = ((r32 - rd_mc) / sigma).abs().flatten(), ((r32 - rd_mc) / rd_mc).abs().flatten()
    z16, rel16 = ((r16 - rd_mc) / sigma).abs().flatten(), ((r16 - rd_mc) / rd_mc).abs().flatten()
    print(
        f"{kind}: n={z.numel()} |z| median {z.median():.2f} max {z.max():.2f}; |rel| median {rel.median():.4f} "
        f"max {rel.max():.4f}  (n_quad=16: |z| median {z16.median():.2f} max {z16.max():.2f}; |rel| median "
        f"{rel16.median():.4f} max {rel16.max():.4f})"
    )
    assert float(z.median()) < 1.2, z
    assert float(z.max()) < 4.0, z


def test_single_index_approximation_error_for_colon_layering():
    """Measures (and bounds) the error of one stack index 1.36 instead of 1.36 / 1.36 / 1.38 (colon)."""
    samples = _draw_many("colon", N_COLON, 7)
    rd_layers, se_layers = _mc_all(samples, N_PHOTONS, seed=3000, n_per_layer=[1.36, 1.36, 1.38])
    rd_single, se_single = _mc_all(samples, N_PHOTONS, seed=3000)  # same seed: correlated walks, smaller noise
    sigma = torch.hypot(se_layers, se_single)
    diff = (rd_single - rd_layers).flatten()
    rel = ((rd_single - rd_layers) / rd_layers).flatten()
    z = ((rd_single - rd_layers) / sigma).flatten()
    print(
        f"single-index error: rel median {rel.median():+.4f}, |rel| max {rel.abs().max():.4f}, "
        f"diff median {diff.median():+.5f}, z median {z.median():+.2f}, |z| max {z.abs().max():.2f}"
    )
    # the 1.36/1.38 interface reflects < 0.01 % at normal incidence: the effect must be far below 2 %
    assert float(rel.abs().max()) < 0.02

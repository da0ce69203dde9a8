"""Slow: the forward model with every new absorber against the project's own Monte Carlo.

Stacks come from tissue files through :func:`tissue_inn.optics.forward.optical_properties` (so the
absorber tables, closed forms, ``baseline = "rest"`` and the Rayleigh part are all on the path):

* the shipped ``skin`` tissue (melanosomes in a thin epidermis, blood + baseline dermis, fat subcutis),
  at its prior corners of light and dark pigmentation;
* a two-layer test tissue with eumelanin, pheomelanin, bilirubin and water in the top layer and a
  Rayleigh part in the scattering of both.

Adding-doubling (32 quadrature points, one refractive index for the stack as in the forward model)
must agree with Monte Carlo within its statistical error: |z| median < 1.2 and max < 4 over all
comparisons (the criterion of tests/optics/test_ad_vs_mc.py). Run with
``pytest -m slow tests/optics/test_absorbers_mc.py -s``.
"""

from __future__ import annotations

import pytest
import torch

from tissue_inn.config import TissueModel, load_tissue
from tissue_inn.optics.adding_doubling import stack_reflectance
from tissue_inn.optics.forward import optical_properties
from tissue_inn.optics.montecarlo import mc_reflectance

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

WAVELENGTHS = torch.tensor([470.0, 560.0, 660.0], dtype=torch.float64)
N_PHOTONS = 100_000

PIGMENT_TISSUE = {
    "name": "pigments",
    "constants": {"c_hb_g_per_l": 120.0, "hb_molar_mass_g_per_mol": 64500.0, "n_above": 1.0, "n_below": 1.0},
    "shared": {"sao2": 0.6},
    "layers": [
        {"eumelanin": {"prior": "uniform", "low": 0.5, "high": 3.0}, "pheomelanin": 1.0, "bilirubin": 40.0,
         "water": 0.7, "a_mie": 40.0, "b_mie": 1.0, "f_ray": 0.3, "g": 0.85, "d": 150.0, "n": 1.4},
        {"vhb": 0.03, "fat": 0.2, "water": 0.6, "a_mie": 25.0, "b_mie": 1.3, "f_ray": 0.2, "g": 0.9,
         "d": 1500.0, "n": 1.4},
    ],
}


def _compare(tissue: TissueModel, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    props = optical_properties(tissue, x, WAVELENGTHS)
    n_s, n_w, n_l = props["mu_a_per_cm"].shape
    ad = stack_reflectance(props["mu_a_per_cm"], props["mu_s_per_cm"], props["g"], props["thickness_cm"],
                           props["n_layers"][:, 0], n_above=tissue.n_above, n_below=tissue.n_below, n_quad=32)
    flat = lambda t: t.reshape(n_s * n_w, n_l)  # noqa: E731
    rep = lambda t: t[:, None, :].expand(n_s, n_w, n_l).reshape(n_s * n_w, n_l)  # noqa: E731
    n_stack = props["n_layers"][:, :1].expand(n_s, n_l)  # one index for the stack, as the solver
    mc = mc_reflectance(flat(props["mu_a_per_cm"]), flat(props["mu_s_per_cm"]), rep(props["g"]),
                        rep(props["thickness_cm"]), rep(n_stack), n_above=tissue.n_above, n_below=tissue.n_below,
                        n_photons=N_PHOTONS, seed=seed)
    z = ((ad.reshape(-1) - mc.rd) / mc.rd_std_err).abs()
    for i in range(n_s):
        print(f"{tissue.name}[{i}] AD {ad[i].numpy().round(5)} MC {mc.rd.reshape(n_s, n_w)[i].numpy().round(5)} "
              f"± {mc.rd_std_err.reshape(n_s, n_w)[i].numpy().round(5)}")
    return z, ((ad.reshape(-1) - mc.rd) / mc.rd).abs()


def test_skin_and_pigment_stacks_agree_with_monte_carlo():
    skin = load_tissue("skin")
    x = skin.sample_prior(2, torch.Generator().manual_seed(11))
    x[:, 1] = torch.tensor([0.02, 0.35], dtype=torch.float64)  # light and dark epidermis
    pig = TissueModel.from_dict(PIGMENT_TISSUE)
    xp = pig.sample_prior(2, torch.Generator().manual_seed(12))
    z1, r1 = _compare(skin, x, 101)
    z2, r2 = _compare(pig, xp, 202)
    z, rel = torch.cat([z1, z2]), torch.cat([r1, r2])
    print(f"n={z.numel()} |z| median {z.median():.2f} max {z.max():.2f}; |rel| median {rel.median():.4f} "
          f"max {rel.max():.4f}")
    assert float(z.median()) < 1.2, z
    assert float(z.max()) < 4.0, z

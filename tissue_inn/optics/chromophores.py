"""Chromophore absorption: oxy- and deoxyhaemoglobin.

Molar extinction coefficients from S. Prahl's tabulation (Oregon Medical Laser Center,
compiled from W. B. Gratzer and N. Kollias), 250-1000 nm in 2 nm steps, shipped in
``resources/chromophores/hemoglobin_prahl.tsv`` (see its PROVENANCE.md).

Absorption of tissue with blood volume fraction ``vhb`` and oxygen saturation ``sao2``
(Wirkert et al. 2016; SCIENCE.md section 2)::

    mu_a(lambda) = ln(10) * c_Hb * vhb * (sao2 * eps_HbO2 + (1 - sao2) * eps_Hb) / M_Hb   [1/cm]

with eps in cm^-1/M (base 10), c_Hb in g/L (120 g/L) and M_Hb = 64500 g/mol.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from tissue_inn.config import resources_dir

__all__ = ["hemoglobin_table", "hemoglobin_extinction", "mu_a_blood_per_cm", "reduced_scattering_per_cm"]


@functools.lru_cache(maxsize=1)
def hemoglobin_table() -> np.ndarray:
    """``[K, 3]`` array: wavelength (nm), eps_HbO2, eps_Hb (cm^-1/M)."""
    path = resources_dir() / "chromophores" / "hemoglobin_prahl.tsv"
    table = np.loadtxt(path, skiprows=1, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 3:
        raise ValueError(f"{path}: expected 3 columns (wavelength, eps_HbO2, eps_Hb)")
    return table


def hemoglobin_extinction(wavelengths_nm: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolated (eps_HbO2, eps_Hb) in cm^-1/M at the given wavelengths."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    table = hemoglobin_table()
    if wl.min() < table[0, 0] or wl.max() > table[-1, 0]:
        raise ValueError(f"wavelengths must lie in {table[0, 0]:.0f}-{table[-1, 0]:.0f} nm, got {wl.min()}-{wl.max()}")
    return np.interp(wl, table[:, 0], table[:, 1]), np.interp(wl, table[:, 0], table[:, 2])


def mu_a_blood_per_cm(
    sao2: torch.Tensor,
    vhb: torch.Tensor,
    eps_hbo2: torch.Tensor,
    eps_hb: torch.Tensor,
    c_hb_g_per_l: float = 120.0,
    hb_molar_mass_g_per_mol: float = 64500.0,
) -> torch.Tensor:
    """Absorption coefficient (1/cm). ``sao2 [N, 1, 1]``, ``vhb [N, 1, L]``, ``eps [W, 1]`` broadcast to ``[N, W, L]``."""
    eps = sao2 * eps_hbo2 + (1.0 - sao2) * eps_hb
    return math.log(10.0) * c_hb_g_per_l * vhb * eps / hb_molar_mass_g_per_mol


def reduced_scattering_per_cm(a_mie: torch.Tensor, b_mie: torch.Tensor, wavelengths_nm: torch.Tensor,
                              f_ray: torch.Tensor | None = None) -> torch.Tensor:
    """mu_s' = a_mie * (lambda / 500 nm)^(-b_mie) (Wirkert et al. 2016).

    With a Rayleigh fraction ``f_ray`` (S. L. Jacques, Phys. Med. Biol. 58 (2013) R37, eq. 2):
    mu_s' = a_mie * (f_ray (lambda / 500 nm)^-4 + (1 - f_ray) (lambda / 500 nm)^(-b_mie)).
    """
    if f_ray is None:
        return a_mie * (wavelengths_nm / 500.0) ** (-b_mie)
    ratio = wavelengths_nm / 500.0
    return a_mie * (f_ray * ratio ** (-4.0) + (1.0 - f_ray) * ratio ** (-b_mie))

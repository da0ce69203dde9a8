"""Absorption per unit amount of every tissue absorber other than blood (blood: :mod:`chromophores`).

Each absorber maps wavelengths (nm) to the absorption coefficient μa (1/cm) of one unit of its
amount; a layer's μa is the sum over its absorbers of ``amount × unit_mu_a``. The tables live in
``resources/chromophores/`` (provenance: its PROVENANCE.md); the closed forms are from
S. L. Jacques, "Optical properties of biological tissues: a review", Phys. Med. Biol. 58 (2013) R37,
and his skin-optics summary (OMLC 1998), as listed in the project's chromophore README.

=============  ==========================  ===================================================
absorber       amount (unit)               μa per unit amount
=============  ==========================  ===================================================
mel            melanosome volume fraction  519 (λ/500 nm)^-3.5 cm⁻¹ (Jacques 2013)
baseline       volume fraction             7.84e7 λ^-3.255 cm⁻¹, λ in nm (bloodless skin)
eumelanin      mg/mL                       ln(10) ε(λ), ε decadic in cm⁻¹ mL/mg (Sarna 2006)
pheomelanin    mg/mL                       same
fat            volume fraction             pure-fat μa (van Veen 2005, table in m⁻¹)
water          volume fraction             pure-water μa (Hale & Querry 1973)
bilirubin      µmol/L                      ln(10) ε(λ) 1e-6, ε molar decadic (0 above 700 nm)
=============  ==========================  ===================================================

The melanin tables are coarse (30–48 points) and the water table is coarse in the visible, so
they are interpolated linearly in log(μa); the fat and bilirubin tables (1 nm, 0.25 nm) linearly.
The bilirubin table has small negative read-out values in its tail (noise around zero): they are
clipped to 0, and bilirubin is taken as non-absorbing above the table's end (700 nm).
A wavelength outside a table's range is refused with an error naming the absorber and range.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from tissue_inn.config import resources_dir
from tissue_inn.errors import ConfigError

__all__ = ["ABSORBER_TABLES", "unit_mu_a_per_cm", "table_range_nm", "absorber_table"]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class _Table:
    file: str
    column: int  # column holding the value
    scale: float  # multiplies the column to give μa (1/cm) per unit amount
    log_interp: bool
    zero_above: bool = False  # the absorber is taken as non-absorbing above the table


#: Tabulated absorbers (file in resources/chromophores, column, scale to μa per unit amount).
ABSORBER_TABLES: dict[str, _Table] = {
    "eumelanin": _Table("eumelanin_sarna.tsv", 1, _LN10, True),  # ε in cm⁻¹ (mL/mg), decadic
    "pheomelanin": _Table("pheomelanin_sarna.tsv", 1, _LN10, True),
    "fat": _Table("fat_vanveen.tsv", 1, 0.01, False),  # μa in 1/m → 1/cm
    "water": _Table("water_hale_querry.tsv", 1, 1.0, True),  # μa in 1/cm
    "bilirubin": _Table("bilirubin_li.tsv", 1, _LN10 * 1e-6, False, zero_above=True),  # ε in 1/(cm M); µmol/L
}


@functools.cache
def absorber_table(name: str) -> np.ndarray:
    """``[K, 2]``: wavelength (nm), μa (1/cm) per unit amount, for a tabulated absorber."""
    spec = ABSORBER_TABLES[name]
    path = resources_dir() / "chromophores" / spec.file
    table = np.loadtxt(path, skiprows=1, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] <= spec.column:
        raise ConfigError(f"{path}: unexpected table layout; reinstall tissue_inn")
    out = np.stack([table[:, 0], np.clip(table[:, spec.column], 0.0, None) * spec.scale], axis=1)
    return out[np.argsort(out[:, 0])]


def table_range_nm(name: str) -> tuple[float, float]:
    """Wavelength range (nm) where an absorber is defined (closed forms: everywhere)."""
    if name not in ABSORBER_TABLES:
        return (0.0, math.inf)
    t = absorber_table(name)
    return (float(t[0, 0]), math.inf if ABSORBER_TABLES[name].zero_above else float(t[-1, 0]))


def unit_mu_a_per_cm(name: str, wavelengths_nm: np.ndarray) -> np.ndarray:
    """μa (1/cm) of one unit amount of absorber ``name`` at the given wavelengths (nm)."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    if name == "mel":
        return 519.0 * (wl / 500.0) ** -3.5
    if name == "baseline":
        return 7.84e7 * wl**-3.255
    if name not in ABSORBER_TABLES:
        raise ConfigError(f"unknown absorber {name!r}; known: mel, baseline, {', '.join(ABSORBER_TABLES)}")
    lo, hi = table_range_nm(name)
    if wl.size and (wl.min() < lo or wl.max() > hi):
        raise ConfigError(
            f"absorber '{name}' is tabulated for {lo:.0f}-{hi:.0f} nm only, but the camera needs "
            f"{wl.min():.0f}-{wl.max():.0f} nm; drop '{name}' from the tissue or use a camera inside that range"
        )
    table = absorber_table(name)
    spec = ABSORBER_TABLES[name]
    if spec.log_interp:
        positive = table[:, 1] > 0
        return np.exp(np.interp(wl, table[positive, 0], np.log(table[positive, 1])))
    return np.interp(wl, table[:, 0], table[:, 1], right=0.0)

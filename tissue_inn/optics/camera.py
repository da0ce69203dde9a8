"""Camera band integration.

A band value is the filter-weighted mean of the reflectance spectrum,
``y_b = ∫ R(λ) f_b(λ) dλ / ∫ f_b(λ) dλ`` (SCIENCE.md section 3). For Gaussian filters the
integral is evaluated with Gauss-Hermite quadrature (``nodes_per_band`` wavelengths per band,
exact for spectra that are polynomials of degree < 2·nodes in λ); ``mode="dense"`` uses a 1 nm grid
over ±4 sigma and serves as the reference. Tabulated filters are integrated with the trapezoid
rule on their own wavelength grid (restricted to where the filter transmits).

With an illumination spectrum E(λ) and/or a sensor response S(λ) the weights become
``f_b E S / ∫ f_b E S`` (the same quadrature nodes, each node's weight multiplied by E·S there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tissue_inn.config import Camera
from tissue_inn.errors import ConfigError

__all__ = ["BandIntegrator", "band_integrator"]


@dataclass(frozen=True)
class BandIntegrator:
    """Wavelengths to simulate and the ``[B, W]`` weights that turn R(λ) into band values."""

    wavelengths_nm: np.ndarray
    weights: np.ndarray
    mode: str

    def integrate(self, spectrum):
        """``spectrum [..., W]`` (numpy or torch) → bands ``[..., B]``."""
        if hasattr(spectrum, "new_tensor"):
            return spectrum @ spectrum.new_tensor(self.weights.T)
        return np.asarray(spectrum) @ self.weights.T


def band_integrator(camera: Camera, mode: str = "gauss-hermite", nodes_per_band: int = 3) -> BandIntegrator:
    """Build the integrator for ``camera``.

    Args:
        camera: the camera definition.
        mode: ``"gauss-hermite"`` (default, Gaussian filters), ``"center"`` (one wavelength per band),
            or ``"dense"`` (1 nm grid, the reference).
        nodes_per_band: Gauss-Hermite nodes per band.
    """
    integ = _unweighted(camera, mode, nodes_per_band)
    if camera.illumination is None and camera.sensor_response is None:
        return integ
    weights = integ.weights * _light_weight(camera, integ.wavelengths_nm)[None, :]
    if np.any(weights.sum(axis=1) <= 0):
        raise ConfigError(f"camera {camera.name!r}: illumination × sensor response is zero over a whole band")
    return BandIntegrator(integ.wavelengths_nm, weights / weights.sum(axis=1, keepdims=True), integ.mode)


def _light_weight(camera: Camera, wl: np.ndarray) -> np.ndarray:
    """E(λ)·S(λ) at the integration wavelengths (1 where not given)."""
    w = np.ones_like(wl)
    for what, spec in (("illumination", camera.illumination), ("sensor response", camera.sensor_response)):
        if spec is None:
            continue
        grid, values = np.asarray(spec[0]), np.asarray(spec[1])
        if wl.min() < grid[0] - 1e-9 or wl.max() > grid[-1] + 1e-9:
            raise ConfigError(f"camera {camera.name!r}: the {what} covers {grid[0]:.0f}-{grid[-1]:.0f} nm, but the "
                              f"bands need {wl.min():.0f}-{wl.max():.0f} nm; extend the {what} table")
        w = w * np.interp(wl, grid, values)
    return w


def _unweighted(camera: Camera, mode: str, nodes_per_band: int) -> BandIntegrator:
    centers = np.asarray(camera.band_centers_nm, dtype=np.float64)
    n_bands = len(centers)
    fwhm = camera.fwhm_per_band
    if fwhm is None:
        return _tabulated(camera)
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    if mode == "center":
        return BandIntegrator(centers.copy(), np.eye(n_bands), mode)
    if mode == "gauss-hermite":
        # probabilists' Hermite: ∫ f(x) N(x; 0, 1) dx ≈ Σ w_i f(x_i) / sqrt(2π)
        nodes, w = np.polynomial.hermite_e.hermegauss(nodes_per_band)
        w = w / w.sum()
        wl = (centers[:, None] + sigma[:, None] * nodes[None, :]).ravel()
        weights = np.zeros((n_bands, wl.size))
        for b in range(n_bands):
            weights[b, b * nodes_per_band:(b + 1) * nodes_per_band] = w
        return BandIntegrator(wl, weights, f"gauss-hermite-{nodes_per_band}")
    if mode == "dense":
        lo = math.floor((centers - 4 * sigma).min())
        hi = math.ceil((centers + 4 * sigma).max())
        wl = np.arange(lo, hi + 1, 1.0)
        f = np.exp(-0.5 * ((wl[None, :] - centers[:, None]) / sigma[:, None]) ** 2)
        f[np.abs(wl[None, :] - centers[:, None]) > 4 * sigma[:, None]] = 0.0
        weights = f / f.sum(axis=1, keepdims=True)
        keep = weights.sum(axis=0) > 0
        return BandIntegrator(wl[keep], weights[:, keep], "dense-1nm")
    raise ValueError(f"unknown band integration mode {mode!r}; use 'gauss-hermite', 'center' or 'dense'")


def _tabulated(camera: Camera) -> BandIntegrator:
    wl = np.asarray(camera.filter_wavelengths_nm, dtype=np.float64)
    f = np.asarray(camera.filter_transmission, dtype=np.float64)
    # trapezoid weights on a possibly irregular grid
    dw = np.zeros_like(wl)
    dw[1:] += 0.5 * np.diff(wl)
    dw[:-1] += 0.5 * np.diff(wl)
    weights = f * dw[None, :]
    weights = weights / weights.sum(axis=1, keepdims=True)
    keep = weights.max(axis=0) > 1e-4 * weights.max()
    weights = weights[:, keep]
    weights = weights / weights.sum(axis=1, keepdims=True)
    return BandIntegrator(wl[keep], weights, "tabulated")

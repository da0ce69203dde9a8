"""Seeding and batching rules shared by pixel posteriors and image maps, and the relative residual.

A low-level module (no import of :mod:`~tissue_inn.inference.posterior` or
:mod:`~tissue_inn.inference.image`) so that both import it and neither imports the other.

Example:
    >>> g1, g2 = unit_generator(0, 5, 2), unit_generator(0, 5, 2)
    >>> bool(torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2)))
    True
    >>> round(float(relative_residual(np.array([0.1, 0.2]), np.array([0.2, 0.4]), scale_free=True)), 12)
    0.0
    >>> round(float(relative_residual(np.array([0.1, 0.2]), np.array([0.2, 0.4]), scale_free=False)), 4)
    0.6931
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "DEFAULT_MAX_BATCH_ELEMENTS",
    "MAX_UNIT_PIXELS",
    "PREDICTIVE_N_QUAD",
    "unit_generator",
    "relative_residual",
]

DEFAULT_MAX_BATCH_ELEMENTS = 131072  # (spectrum × draw) rows per network call
MAX_UNIT_PIXELS = 64  # spectra per seed unit (one generator, one network call)
PREDICTIVE_N_QUAD = 8  # quadrature of predictive re-simulation; ≈1 % from n_quad=16, below camera noise


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One SplitMix64 step (Steele et al. 2014): a fast, well-mixed 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def unit_generator(seed: int, row: int, unit: int) -> torch.Generator:
    """The CPU generator of seed unit ``unit`` of image row ``row``: seeded with SplitMix64(seed, row, unit)."""
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(row) & _MASK64))
    h = _splitmix64(h ^ (int(unit) & _MASK64))
    return torch.Generator().manual_seed(h & 0x7FFFFFFFFFFFFFFF)


def relative_residual(y_sim: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, scale_free: bool):
    """RMS over the last axis of ``log(y_sim / y)`` (mean removed when ``scale_free``); see :mod:`tissue_inn.inference.posterior`."""
    if isinstance(y_sim, torch.Tensor) or isinstance(y, torch.Tensor):
        ys = torch.as_tensor(y_sim, dtype=torch.float64)
        ym = torch.as_tensor(y, dtype=torch.float64, device=ys.device)
        lr = torch.log(ys.clamp_min(1e-12)) - torch.log(ym.clamp_min(1e-12))
        if scale_free:
            lr = lr - lr.mean(dim=-1, keepdim=True)
        return lr.pow(2).mean(dim=-1).sqrt()
    lr = np.log(np.maximum(np.asarray(y_sim, np.float64), 1e-12)) - np.log(np.maximum(np.asarray(y, np.float64), 1e-12))
    if scale_free:
        lr = lr - lr.mean(axis=-1, keepdims=True)
    return np.sqrt(np.mean(lr**2, axis=-1))

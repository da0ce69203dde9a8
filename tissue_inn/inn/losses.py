"""Maximum mean discrepancy with the paper's multi-scale inverse multiquadratic kernels.

Kernel (Ardizzone et al. 2019, authors' code; SCIENCE.md §5), on the *squared* distance ``d``::

    k(d) = C^a · ((C + d) / a)^(−a)  =  (a · C / (C + d))^a

summed over a list of ``(C, a)`` pairs. The MMD estimate is the (biased, V-statistic) mean over all
pairs ``(i, j)`` of the matrix ``k(x_i, x_j) + k(y_i, y_j) − 2 k(x_i, y_j)``; it is exactly zero for
identical samples. Optional per-pair weights multiply that matrix before the mean (the medical run
weights the backward MMD by ``exp(−‖y_i − y_j‖² / (2 · 0.48²))``, see :func:`gaussian_pair_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "BACKWARD_KERNELS",
    "FORWARD_KERNELS",
    "gaussian_pair_weights",
    "inverse_multiquadratic",
    "mmd_matrix",
    "mmd_multiscale",
    "squared_distances",
]

FORWARD_KERNELS: tuple[tuple[float, float], ...] = ((0.2, 2.0), (1.5, 2.0), (3.0, 2.0))
"""(C, a) pairs of the forward (latent) MMD, paper's medical run."""

BACKWARD_KERNELS: tuple[tuple[float, float], ...] = ((0.2, 0.1), (0.2, 0.5), (0.2, 2.0))
"""(C, a) pairs of the backward (x-space) MMD, paper's medical run."""


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances ``[len(x), len(y)]``, clamped at 0 against round-off."""
    xx = (x * x).sum(dim=1, keepdim=True)
    yy = (y * y).sum(dim=1, keepdim=True)
    return (xx + yy.T - 2.0 * x @ y.T).clamp_min(0.0)


def inverse_multiquadratic(d: Tensor, kernels: Sequence[tuple[float, float]]) -> Tensor:
    """Sum over ``(C, a)`` of ``C^a · ((C + d)/a)^(−a)`` on squared distances ``d``.

    Example:
        >>> float(inverse_multiquadratic(torch.tensor(0.0), [(0.2, 2.0)]))  # k(0) = a^a
        4.0
    """
    if len(kernels) == 0:
        raise ValueError("at least one (C, a) kernel is needed")
    total = torch.zeros_like(d)
    for c_width, a_exponent in kernels:
        if c_width <= 0 or a_exponent <= 0:
            raise ValueError(f"kernel parameters must be positive, got (C, a) = ({c_width}, {a_exponent})")
        total = total + (a_exponent * c_width / (c_width + d)) ** a_exponent
    return total


def mmd_matrix(x: Tensor, y: Tensor, kernels: Sequence[tuple[float, float]]) -> Tensor:
    """The matrix ``k(x_i, x_j) + k(y_i, y_j) − 2 k(x_i, y_j)`` (shape ``[n, n]``, same batch sizes)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"mmd needs two samples of the same shape [n, dim], got {tuple(x.shape)} and {tuple(y.shape)}")
    k_xx = inverse_multiquadratic(squared_distances(x, x), kernels)
    k_yy = inverse_multiquadratic(squared_distances(y, y), kernels)
    k_xy = inverse_multiquadratic(squared_distances(x, y), kernels)
    return k_xx + k_yy - 2.0 * k_xy


def mmd_multiscale(
    x: Tensor,
    y: Tensor,
    kernels: Sequence[tuple[float, float]] = FORWARD_KERNELS,
    weights: Tensor | None = None,
) -> Tensor:
    """Multi-scale MMD between two samples of equal size.

    Args:
        x: ``[n, dim]`` first sample.
        y: ``[n, dim]`` second sample.
        kernels: ``(C, a)`` pairs, e.g. :data:`FORWARD_KERNELS` or :data:`BACKWARD_KERNELS`.
        weights: optional ``[n, n]`` per-pair weights multiplying the MMD matrix.

    Returns:
        Scalar tensor (differentiable in ``x`` and ``y``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(64, 2, generator=g)
        >>> float(mmd_multiscale(a, a))
        0.0
    """
    matrix = mmd_matrix(x, y, kernels)
    if weights is not None:
        if weights.shape != matrix.shape:
            raise ValueError(f"weights must have shape {tuple(matrix.shape)}, got {tuple(weights.shape)}")
        matrix = matrix * weights
    return matrix.mean()


def gaussian_pair_weights(y: Tensor, sigma: float = 0.48) -> Tensor:
    """Pair weights ``exp(−‖y_i − y_j‖² / (2 σ²))`` of the medical run's backward MMD (σ = 0.48)."""
    return torch.exp(-squared_distances(y, y) / (2.0 * sigma**2))

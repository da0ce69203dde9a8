"""Quadrature rules on the direction cosine interval for the adding-doubling solver.

Two reference rules are computed once in numpy (float64) and mapped affinely onto the needed
intervals in torch:

* Gauss-Legendre on (0, 1): both ends excluded.
* Gauss-Radau on (0, 1] with the fixed node at 1 (so the normally incident collimated beam,
  direction cosine 1, is a quadrature direction).

With a refractive-index mismatch the direction-cosine interval inside the tissue is split at the
cosine of the critical angle, mu_c = sqrt(1 - (n_out / n_tissue)^2): Gauss on (0, mu_c) (all
totally internally reflected) and Radau on (mu_c, 1] (as in S. Prahl, "The adding-doubling
method", 1995). Weights are normalised so that they sum to 1 over (0, 1].
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numpy.polynomial import legendre as npleg

__all__ = ["gauss_unit", "radau_unit", "split_quadrature"]


@functools.lru_cache(maxsize=64)
def gauss_unit(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre rule on (0, 1).

    Args:
        n: number of nodes (>= 1).

    Returns:
        (nodes, weights), float64 arrays of length ``n``, nodes ascending, weights summing to 1.
        Exact for polynomials of degree <= 2n - 1.
    """
    x, w = npleg.leggauss(n)
    return (x + 1.0) / 2.0, w / 2.0


@functools.lru_cache(maxsize=64)
def radau_unit(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Radau rule on (0, 1] whose last node is fixed at 1.

    On [-1, 1] with the fixed node at -1 the free nodes are the roots of
    (P_{n-1}(x) + P_n(x)) / (1 + x), the weights (1 - x_i) / (n^2 P_{n-1}(x_i)^2) and 2 / n^2 at the
    fixed node (Abramowitz & Stegun 25.4.31). The rule is mirrored (x -> -x) and mapped to (0, 1].

    Args:
        n: number of nodes (>= 1).

    Returns:
        (nodes, weights), float64 arrays of length ``n``, nodes ascending with nodes[-1] == 1,
        weights summing to 1. Exact for polynomials of degree <= 2n - 2.
    """
    if n == 1:
        return np.array([1.0]), np.array([1.0])
    coef = np.zeros(n + 1)
    coef[n - 1] = 1.0
    coef[n] = 1.0
    roots = np.sort(np.real(npleg.legroots(coef)))
    # drop the root at -1, polish the others with Newton steps on P_{n-1} + P_n
    free = roots[np.argsort(np.abs(roots + 1.0))[1:]]
    dcoef = npleg.legder(coef)
    for _ in range(3):
        free = free - npleg.legval(free, coef) / npleg.legval(free, dcoef)
    pnm1 = npleg.legval(free, np.eye(n)[n - 1])
    w_free = (1.0 - free) / (n**2 * pnm1**2)
    x = np.concatenate([[-1.0], np.sort(free)])
    w = np.concatenate([[2.0 / n**2], w_free[np.argsort(free)]])
    # mirror to put the fixed node at +1, then map [-1, 1] -> [0, 1]
    x, w = -x[::-1], w[::-1]
    return (x + 1.0) / 2.0, w / 2.0


def split_quadrature(
    mu_c: torch.Tensor, n_quad: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched quadrature on (0, 1], split at ``mu_c`` where ``mu_c > 0``.

    Args:
        mu_c: cosine of the critical angle inside the tissue, shape ``[...]`` (0 where there is no
            critical angle).
        n_quad: number of nodes; must be even (half Gauss, half Radau) when split.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        (mu, w): shape ``[..., n_quad]`` each; ascending nodes with mu[..., -1] == 1, weights
        summing to 1. Where ``mu_c <= 0`` a single Radau rule on (0, 1] is used.
    """
    if n_quad % 2:
        raise ValueError(f"n_quad must be even, got {n_quad}")
    half = n_quad // 2
    xg, wg = (torch.as_tensor(a, dtype=dtype, device=device) for a in gauss_unit(half))
    xr, wr = (torch.as_tensor(a, dtype=dtype, device=device) for a in radau_unit(half))
    xf, wf = (torch.as_tensor(a, dtype=dtype, device=device) for a in radau_unit(n_quad))
    c = mu_c.to(dtype=dtype, device=device)[..., None]
    mu_split = torch.cat([c * xg, c + (1.0 - c) * xr], dim=-1)
    w_split = torch.cat([c * wg, (1.0 - c) * wr], dim=-1)
    has_split = c > 0
    mu = torch.where(has_split, mu_split, xf)
    w = torch.where(has_split, w_split, wf)
    return mu, w

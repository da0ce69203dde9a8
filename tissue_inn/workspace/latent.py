"""The latent explorer's maths (Ardizzone et al., ICLR 2019, Fig. 5): run the network backwards on a
grid over two latent coordinates (the others 0) for one spectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tissue_inn.inference.posterior import Posterior

__all__ = ["LatentGrid", "n_latent", "latent_grid"]


@dataclass
class LatentGrid:
    """Parameters obtained by running the network backwards on a grid of two latent coordinates.

    Attributes:
        axis: The latent coordinate values along each grid axis (``[n]``).
        values: ``[n, n, D]`` parameters in physical units; ``values[i, j]`` has latent
            ``z[dim_a] = axis[j]`` (x axis) and ``z[dim_b] = axis[i]`` (y axis), other latents 0.
        dims: (dim_a, dim_b); ``dim_b`` is None when the model has one latent dimension.
        n_latent: Number of latent dimensions of the model.
    """

    axis: np.ndarray
    values: np.ndarray
    dims: tuple[int, int | None]
    n_latent: int


def n_latent(posterior: Posterior) -> int:
    """Number of latent dimensions of the model's network (the family protocol's ``latent_dim``)."""
    return int(posterior.estimator.latent_dim)


def latent_grid(
    posterior: Posterior,
    spectrum: np.ndarray,
    dim_a: int = 0,
    dim_b: int | None = 1,
    extent: float = 3.0,
    n: int = 41,
    snr: float | None = None,
) -> LatentGrid:
    """Parameters on an ``n × n`` grid over latent dimensions ``dim_a`` × ``dim_b`` in ``[−extent, extent]``
    (the estimator's ``decode``: the network run backwards from chosen latent codes, any family)."""
    import torch

    est = posterior.estimator
    n_lat = n_latent(posterior)
    if not 0 <= dim_a < n_lat or (dim_b is not None and not 0 <= dim_b < n_lat):
        raise ValueError(f"latent dimensions must lie in 0..{n_lat - 1}")
    if dim_b == dim_a:
        raise ValueError("choose two different latent dimensions")
    axis = np.linspace(-extent, extent, n)
    zb, za = (np.zeros(1), axis) if dim_b is None else (axis, axis)
    grid_b, grid_a = np.meshgrid(zb, za, indexing="ij")
    m = grid_a.size
    param = next(est.parameters(), None)
    dev = param.device if param is not None else torch.device("cpu")
    z = torch.zeros(m, n_lat, dtype=torch.float32, device=dev)
    z[:, dim_a] = torch.as_tensor(grid_a.ravel(), dtype=torch.float32, device=dev)
    if dim_b is not None:
        z[:, dim_b] = torch.as_tensor(grid_b.ravel(), dtype=torch.float32, device=dev)
    y = torch.as_tensor(np.asarray(spectrum, dtype=np.float64).reshape(1, -1), device=dev)
    with torch.no_grad():
        x = est.decode(y, z, snr=snr).cpu().numpy()
    values = x.reshape(grid_a.shape + (x.shape[1],))
    return LatentGrid(axis, values, (dim_a, dim_b), n_lat)

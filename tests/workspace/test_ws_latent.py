"""The latent explorer's grid, checked by running the network forwards again."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_latent_grid_inverts_to_its_own_latents(ws):
    y = ws.model_spectrum(4, 5)
    grid = ws.latent_grid(y, dim_a=0, dim_b=2, extent=2.0, n=7)
    assert grid.values.shape == (7, 7, 13) and grid.n_latent == 13
    bounds = np.array([ws.prior_bounds[n] for n in ws.parameter_names])
    assert np.all(grid.values >= bounds[:, 0] - 1e-9) and np.all(grid.values <= bounds[:, 1] + 1e-9)
    # run the network forwards (x → z | y) on the grid's parameters: we must get the grid's latents back
    est = ws.posterior.estimator
    x = torch.as_tensor(grid.values.reshape(-1, 13))
    c = est.y_to_net(torch.as_tensor(y[None])).repeat(x.shape[0], 1)
    with torch.no_grad():
        z, _ = est.net.forward(est.x_to_net(x), c)
    z = z.numpy().reshape(7, 7, 13)
    np.testing.assert_allclose(z[:, :, 0], np.broadcast_to(grid.axis[None, :], (7, 7)), atol=2e-3)
    np.testing.assert_allclose(z[:, :, 2], np.broadcast_to(grid.axis[:, None], (7, 7)), atol=2e-3)
    np.testing.assert_allclose(z[:, :, 1], 0.0, atol=2e-3)


def test_latent_grid_refuses_bad_dimensions(ws):
    y = ws.model_spectrum(0, 0)
    with pytest.raises(ValueError, match="different"):
        ws.latent_grid(y, dim_a=1, dim_b=1)
    with pytest.raises(ValueError, match="0..12"):
        ws.latent_grid(y, dim_a=13, dim_b=0)

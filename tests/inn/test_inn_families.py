"""Tests of the two model families (bidirectional MMD INN and conditional max-likelihood INN)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tissue_inn.errors import ConfigError
from tissue_inn.inn import BidirectionalINN, ConditionalINN

SMALL = {"n_blocks": 2, "hidden": 16, "n_hidden_layers": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(module: torch.nn.Module, seed: int, scale: float = 0.2) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(scale * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return module


def _batch(n: int, dim_x: int, dim_y: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim_x, generator=generator), torch.randn(n, dim_y, generator=generator)


@pytest.mark.parametrize(
    ("dim_x", "dim_y", "dim_z", "total_dim", "pad_x", "pad_yz"),
    [(5, 3, 2, None, 0, 0), (2, 4, 2, 16, 14, 10), (6, 2, 2, None, 0, 2), (3, 3, 2, None, 2, 0)],
)
def test_bidirectional_padding_layout(dim_x, dim_y, dim_z, total_dim, pad_x, pad_yz) -> None:
    model = BidirectionalINN(dim_x, dim_y, dim_z, total_dim=total_dim, **SMALL)
    assert (model.pad_x, model.pad_yz) == (pad_x, pad_yz)
    x, _ = _batch(7, dim_x, dim_y)
    y_hat, z_hat, pad_hat = model.predict(x)
    assert y_hat.shape == (7, dim_y) and z_hat.shape == (7, dim_z) and pad_hat.shape == (7, pad_yz)


def test_bidirectional_inverse_recovers_x_when_pads_are_zero() -> None:
    model = _randomise(BidirectionalINN(3, 2, 1, **SMALL), seed=1).double()
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y_hat, z_hat, pad_hat = model.predict(x)
    assert pad_hat.shape[1] == 0  # 3 = 2 + 1: no pads, so the map is an exact bijection x ↔ [y, z]
    assert torch.allclose(model.inverse(y_hat, z_hat), x, atol=1e-10)


def test_bidirectional_loss_terms_and_gradients() -> None:
    model = _randomise(BidirectionalINN(2, 3, 2, total_dim=8, **SMALL), seed=3)
    x, y = _batch(64, 2, 3, seed=4)
    losses = model.loss(x, y, generator=torch.Generator().manual_seed(5))
    expected = {"L_y", "L_pad_y", "L_z", "L_x", "L_pad_x", "L_rec", "total"}
    assert set(losses) == expected
    for name, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value), name
        assert float(value.detach()) > 0, name
    weights = model.loss_weights
    recombined = (
        weights["y"] * losses["L_y"]
        + weights["pad"] * (losses["L_pad_y"] + losses["L_pad_x"])
        + weights["z"] * losses["L_z"]
        + weights["x"] * losses["L_x"]
        + weights["rec"] * losses["L_rec"]
    )
    assert torch.isclose(losses["total"], recombined)
    losses["total"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bidirectional_default_weights_are_the_medical_run() -> None:
    model = BidirectionalINN(13, 8, 5, **SMALL)
    assert model.total_dim == 13
    assert (model.loss_weights["y"], model.loss_weights["z"], model.loss_weights["x"], model.loss_weights["rec"]) == (
        1.0,
        50.0,
        500.0,
        1.0,
    )


def test_bidirectional_sampling_is_seeded_and_shaped() -> None:
    model = _randomise(BidirectionalINN(2, 3, 2, total_dim=6, **SMALL), seed=8)
    y = torch.randn(4, 3, generator=torch.Generator().manual_seed(9))
    a = model.sample(y, 11, generator=torch.Generator().manual_seed(1))
    b = model.sample(y, 11, generator=torch.Generator().manual_seed(1))
    c = model.sample(y, 11, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 11, 2)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # Draw j of observation i is g(y_i, z_ij): recompute it by hand.
    z = torch.randn(44, 2, generator=torch.Generator().manual_seed(1))
    direct = model.inverse(y.repeat_interleave(11, dim=0), z).reshape(4, 11, 2)
    assert torch.allclose(a, direct)


def test_bidirectional_config_round_trip() -> None:
    model = _randomise(
        BidirectionalINN(4, 3, 2, total_dim=7, loss_weights={"x": 10.0}, y_uncertainty_sigma=None, **SMALL), seed=10
    )
    config = json.loads(json.dumps(model.config()))
    assert config["loss_weights"]["x"] == 10.0 and config["y_uncertainty_sigma"] is None
    rebuilt = BidirectionalINN.from_config(config)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x, _ = _batch(5, 4, 3)
    assert torch.equal(torch.cat(model.predict(x), dim=1), torch.cat(rebuilt.predict(x), dim=1))
    assert rebuilt.config() == config


def test_bidirectional_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="total_dim"):
        BidirectionalINN(4, 3, 2, total_dim=4)
    with pytest.raises(ConfigError, match="loss weight"):
        BidirectionalINN(4, 3, 2, loss_weights={"kl": 1.0})
    with pytest.raises(ConfigError, match="unknown keys"):
        BidirectionalINN.from_config({"dim_x": 2, "dim_y": 1, "dim_z": 1, "depth": 3})
    model = BidirectionalINN(4, 3, 2, **SMALL)
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        model.sample(torch.zeros(2, 4), 3)


@pytest.mark.parametrize("cond_net_hidden", [None, 8])
def test_conditional_log_prob_matches_change_of_variables(cond_net_hidden) -> None:
    model = _randomise(ConditionalINN(3, 2, cond_net_hidden=cond_net_hidden, **SMALL), seed=11).double()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    c = torch.randn(4, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    log_prob = model.log_prob(x, c)
    for i in range(4):
        ci = c[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ci=ci: model(v, ci)[0], x[i : i + 1]).reshape(3, 3)
        z = model(x[i : i + 1], ci)[0]
        expected = -0.5 * (z**2).sum() - 1.5 * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
        assert torch.isclose(log_prob[i], expected, atol=1e-9)
    nll = model.loss(x, c)["nll"]
    assert torch.isclose(nll, (-log_prob.mean() - 1.5 * math.log(2 * math.pi)) / 3)


def test_conditional_sample_inverts_forward() -> None:
    model = _randomise(ConditionalINN(2, 3, cond_net_hidden=8, **SMALL), seed=14)
    c = torch.randn(5, 3, generator=torch.Generator().manual_seed(15))
    samples = model.sample(c, 7, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (5, 7, 2)
    z = torch.randn(35, 2, generator=torch.Generator().manual_seed(3))
    z_back, _ = model(samples.reshape(35, 2), c.repeat_interleave(7, dim=0))
    assert torch.allclose(z_back, z, atol=1e-4)


def test_conditional_loss_gradients_and_condition_net() -> None:
    model = _randomise(ConditionalINN(2, 3, cond_net_hidden=8, cond_features=4, **SMALL), seed=16)
    assert model.network.cond_dim == 4
    x, c = _batch(32, 2, 3, seed=17)
    model.loss(x, c)["total"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_conditional_training_lowers_nll_on_a_gaussian() -> None:
    """Fit x | c ~ N(2c, 0.5²): the NLL per dim must fall below the true value plus a margin."""
    model = ConditionalINN(2, 1, n_blocks=2, hidden=16, n_hidden_layers=1, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(2)
    for _ in range(300):
        c = torch.randn(128, 1, generator=generator)
        x = 2 * c + 0.5 * torch.randn(128, 2, generator=generator)
        loss = model.loss(x, c)["nll"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    c = torch.randn(2000, 1, generator=generator)
    x = 2 * c + 0.5 * torch.randn(2000, 2, generator=generator)
    nll = float(model.loss(x, c)["nll"].detach())
    # True NLL per dim without the ½log2π constant: log(0.5) + ½ = −0.193.
    assert nll < math.log(0.5) + 0.5 + 0.05
    samples = model.sample(torch.tensor([[1.0]]), 3000, generator=generator)[0]
    assert torch.allclose(samples.mean(dim=0), torch.tensor([2.0, 2.0]), atol=0.1)
    assert torch.allclose(samples.std(dim=0), torch.tensor([0.5, 0.5]), atol=0.08)


def test_conditional_config_round_trip() -> None:
    model = _randomise(ConditionalINN(3, 2, cond_net_hidden=8, block_type="glow", **SMALL), seed=18)
    config = json.loads(json.dumps(model.config()))
    rebuilt = ConditionalINN.from_config(config)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x, c = _batch(6, 3, 2)
    assert torch.equal(model.log_prob(x, c), rebuilt.log_prob(x, c))
    with pytest.raises(ConfigError):
        ConditionalINN(3, 2, cond_features=4)

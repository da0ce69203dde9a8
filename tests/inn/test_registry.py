"""The family contract and registry: every family honours it, and a new family needs one class + one entry."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

from tissue_inn.errors import ConfigError, ModelBundleError
from tissue_inn.estimators import PosteriorEstimator, make_spec
from tissue_inn.inn.registry import FAMILIES, NetworkFamily, family_names, get_family

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"n_blocks": 2, "hidden": 16, "n_hidden_layers": 2}
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_honours_the_contract(name: str) -> None:
    cls = get_family(name)
    assert cls.family_name == name
    assert isinstance(cls.from_config(cls.network_config(4, 3, False, SMALL)), NetworkFamily)
    net = cls.from_config(cls.network_config(4, 3, False, SMALL))
    rebuilt = cls.from_config(net.config())
    rebuilt.load_state_dict(net.state_dict())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    rebuilt.load_state_dict(net.state_dict())
    c = torch.randn(3, 3, generator=gen)
    a = net.sample(c, 5, generator=torch.Generator().manual_seed(7))
    b = rebuilt.sample(c, 5, generator=torch.Generator().manual_seed(7))
    assert a.shape == (3, 5, 4) and torch.equal(a, b)
    # sample = decode of the latent codes latent_draws hands out (what merged seed units rely on)
    z_all = net.latent_draws(15, c, torch.Generator().manual_seed(7))
    with torch.no_grad():
        again = net.decode(c.repeat_interleave(5, dim=0), z_all).reshape(3, 5, 4)
    assert torch.equal(again, a)
    # decode is the sampler's map: the same latent draws give the same samples
    z = torch.randn(4, net.latent_dim, generator=gen)
    x = net.decode(c[:1].expand(4, -1), z)
    assert x.shape == (4, 4) and torch.isfinite(x).all()
    x_batch = torch.stack([net.decode(c[:1], z[i : i + 1])[0] for i in range(4)])
    assert torch.allclose(x, x_batch, atol=1e-5)
    terms = net.loss(torch.randn(6, 4, generator=gen), torch.randn(6, 3, generator=gen), generator=gen,
                     **cls.training_options({"y_noise": 0.05, "inn_pair_sigma": 0.48})[1])
    assert torch.isfinite(terms["total"]) and terms["total"].ndim == 0


def test_snr_conditioning_follows_the_family_flag() -> None:
    for name, cls in FAMILIES.items():
        args = (name, ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0], [500.0, 600.0], SMALL)
        if cls.supports_snr_conditioning:
            spec = make_spec(*args, snr_range=(10.0, 50.0))
            assert PosteriorEstimator(spec).snr_conditioning
        else:
            with pytest.raises(ValueError, match="SNR conditioning"):
                make_spec(*args, snr_range=(10.0, 50.0))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_merged_seed_units_equal_one_call_per_unit(name: str) -> None:
    spec = make_spec(name, ["a", "b", "c"], ["1"] * 3, [0.0] * 3, [1.0] * 3, [500.0, 600.0], SMALL)
    est = PosteriorEstimator(spec)
    y = torch.rand(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.4 + 0.1
    one_by_one = torch.cat([est.sample(y[:3], 6, generator=torch.Generator().manual_seed(1)),
                            est.sample(y[3:], 6, generator=torch.Generator().manual_seed(2))])
    merged = est.sample_units(y, 6, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)], [3, 4])
    assert torch.equal(merged, one_by_one)


def test_unknown_family_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="cinn"):
        get_family("flowmatching")
    spec = make_spec("cinn", ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0], [500.0, 600.0], SMALL)
    spec["family"] = "flowmatching"
    with pytest.raises(ModelBundleError, match="unknown"):
        PosteriorEstimator(spec)
    assert family_names() == sorted(FAMILIES)


def test_no_string_branches_on_family_names_outside_inn() -> None:
    pattern = re.compile(r"family\s*(==|!=|in|not in)\s*[\(\[]?\s*[\"'](" + "|".join(FAMILIES) + r")[\"']")
    offenders = []
    for path in (ROOT / "tissue_inn").rglob("*.py"):
        if path.parent.name == "inn":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []


class DiagonalGaussian(nn.Module):
    """A newcomer's family: x | c ~ N(μ(c), diag σ(c)²), trained by maximum likelihood (no flow at all)."""

    family_name: ClassVar[str] = "gauss"
    supports_snr_conditioning: ClassVar[bool] = True

    def __init__(self, dim_x: int, dim_cond: int, hidden: int = 32, seed: int = 0, **block_options: Any) -> None:
        super().__init__()
        self.dim_x, self.dim_cond, self.hidden, self.seed = dim_x, dim_cond, hidden, seed
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Linear(dim_cond, hidden), nn.ReLU(), nn.Linear(hidden, 2 * dim_x))

    @classmethod
    def network_config(cls, dim_x, dim_y, snr_conditioning, options):
        return {"hidden": options.get("hidden", 32), "seed": options.get("seed", 0), "dim_x": dim_x,
                "dim_cond": dim_y + int(snr_conditioning)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def training_options(cls, settings):
        return {}, {}

    def config(self):
        return {"hidden": self.hidden, "seed": self.seed, "dim_x": self.dim_x, "dim_cond": self.dim_cond}

    @property
    def latent_dim(self) -> int:
        return self.dim_x

    def _moments(self, c: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_sigma = self.body(c).chunk(2, dim=1)
        return mu, log_sigma.clamp(-6, 3)

    def decode(self, c: Tensor, z: Tensor) -> Tensor:
        mu, log_sigma = self._moments(c)
        return mu + log_sigma.exp() * z

    def latent_draws(self, n_rows, like, generator=None):
        return torch.randn(n_rows, self.dim_x, generator=generator, dtype=like.dtype)

    @torch.no_grad()
    def sample(self, c, n_draws, generator=None):
        c_rep = c.repeat_interleave(n_draws, dim=0)
        return self.decode(c_rep, self.latent_draws(c_rep.shape[0], c, generator)).reshape(c.shape[0], n_draws, -1)

    def loss(self, x, c, generator=None):
        mu, log_sigma = self._moments(c)
        nll = (0.5 * ((x - mu) / log_sigma.exp()) ** 2 + log_sigma).sum(dim=1).mean() / self.dim_x
        return {"nll": nll + 0.5 * math.log(2 * math.pi), "total": nll}


def test_a_new_family_is_one_class_and_one_registry_entry(monkeypatch, fake_dataset, tmp_path) -> None:
    from tissue_inn.io.bundle import load_bundle, save_bundle
    from tissue_inn.progress import run_to_completion
    from tissue_inn.training.trainer import TrainSettings, train

    monkeypatch.setitem(FAMILIES, "gauss", DiagonalGaussian)  # the one registry line
    settings = TrainSettings(family="gauss", epochs=3, iterations_per_epoch=10, batch_size=200, hidden=16, lr=1e-2,
                             val_fraction=0.1, snr_conditioning=True, snr_min=10, snr_max=50)
    res = run_to_completion(train(fake_dataset, settings))
    assert res.history[-1].val_loss < res.history[0].val_loss
    card = {"name": "gauss"}
    card.update(res.card_sections())
    est, card2 = load_bundle(save_bundle(res.estimator, card, tmp_path / "gauss"))
    assert card2["family"] == "gauss" and est.latent_dim == 13
    y = torch.full((2, 8), 0.2, dtype=torch.float64)
    a = est.sample(y, 64, generator=torch.Generator().manual_seed(3), snr=20.0)
    b = res.estimator.sample(y, 64, generator=torch.Generator().manual_seed(3), snr=20.0)
    assert a.shape == (2, 64, 13) and torch.equal(a, b)
    bounds = est.prior_bounds()
    assert torch.all(a >= bounds[:, 0]) and torch.all(a <= bounds[:, 1])
    # the map engine's merged seed units work for it too
    merged = est.sample_units(y, 64, [torch.Generator().manual_seed(3)], [2], snr=20.0)
    assert torch.equal(merged, a)

"""The bidirectional INN with the measurement noise as a latent input (family ``inn_noise``, issue 15)."""

from __future__ import annotations

import math

import pytest
import torch

from tissue_inn.errors import ConfigError
from tissue_inn.estimators import PosteriorEstimator, make_spec
from tissue_inn.inn.bidirectional import BidirectionalINN
from tissue_inn.inn.noise_latent import NOISE_SCALE, NoiseLatentINN
from tissue_inn.inn.registry import get_family

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"n_blocks": 2, "hidden": 16, "n_hidden_layers": 2}


def test_layout_from_the_family_config():
    assert get_family("inn_noise") is NoiseLatentINN
    cfg = NoiseLatentINN.network_config(13, 8, True, SMALL)
    net = NoiseLatentINN.from_config(cfg)
    # input side [x 13, noise 8, s 1] = 22; output side [y 8, s 1, z 13] = 22
    assert (net.dim_x, net.dim_y, net.dim_z, net.dim_aux, net.snr_columns) == (13, 9, 13, 9, 1)
    assert net.total_dim == 22 and net.latent_dim == 13 and net.n_features == 8
    plain = NoiseLatentINN.from_config(NoiseLatentINN.network_config(13, 8, False, SMALL))
    assert (plain.dim_y, plain.snr_columns, plain.total_dim) == (8, 0, 21)
    rebuilt = NoiseLatentINN.from_config(net.config())
    assert rebuilt.config() == net.config() and net.config()["noise_scale"] == NOISE_SCALE


@pytest.mark.parametrize("bad", [{"snr_columns": 9}, {"noise_scale": 0.0}, {"dim_aux": 2}, {"colour": 1}])
def test_bad_options_are_refused(bad):
    cfg = {**NoiseLatentINN.network_config(4, 3, False, SMALL), **bad}
    with pytest.raises(ConfigError):
        NoiseLatentINN.from_config(cfg)


def test_snr_condition_feeds_log_snr_to_every_subnet():
    """``snr_condition``: the coupling subnets get y's log-SNR column as their condition, in the loss's three
    passes and in sampling; the option round-trips through the config; without the column it is refused."""
    cfg = NoiseLatentINN.network_config(5, 3, True, {**SMALL, "snr_condition": True, "unit_noise": True})
    net = NoiseLatentINN.from_config(cfg)
    assert net.network.cond_dim == 1 and net.config()["snr_condition"] is True and "cond_dim" not in net.config()
    assert NoiseLatentINN.from_config(net.config()).config() == net.config()
    with pytest.raises(ConfigError, match="log-SNR column"):
        NoiseLatentINN.from_config(NoiseLatentINN.network_config(5, 3, False, {**SMALL, "snr_condition": True}))
    seen: list[torch.Tensor] = []
    original = net.network.forward

    def spy(x, c=None, rev=False):
        seen.append(c)
        return original(x, c=c, rev=rev)

    net.network.forward = spy
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(6, 4, generator=gen)
    net.loss(torch.randn(6, 5, generator=gen), y, noise=0.05 * torch.randn(6, 3, generator=gen),
             snr=torch.full((6,), 20.0), generator=gen)
    assert len(seen) == 3 and all(torch.equal(c, y[:, 3:]) for c in seen)
    net.network.forward = original
    z = torch.zeros(6, net.dim_z)
    a = net.inverse(y, z)
    shifted = net.network.transform(torch.cat([y, z, z.new_zeros(6, net.pad_yz)], 1), c=y[:, 3:] + 1.0, rev=True)
    with torch.no_grad():
        for p in net.parameters():  # break the zero init of the output layers so the condition matters
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    b = net.inverse(y, z)
    b_shifted = net.network.transform(torch.cat([y, z, z.new_zeros(6, net.pad_yz)], 1), c=y[:, 3:] + 1.0,
                                      rev=True)[:, :5]
    assert torch.equal(a, shifted[:, :5])  # zero-initialised output layers: the condition is not used yet
    b_own = net.network.transform(torch.cat([y, z, z.new_zeros(6, net.pad_yz)], 1), c=y[:, 3:], rev=True)[:, :5]
    assert torch.equal(b, b_own) and not torch.allclose(b, b_shifted)  # sampling is conditioned on the column


def test_loss_is_the_paper_loss_on_x_noise_and_log_snr():
    """The same terms as the paper's INN given [noise · scale, s] as its auxiliary x-side inputs."""
    gen = torch.Generator().manual_seed(0)
    net = NoiseLatentINN.from_config(NoiseLatentINN.network_config(4, 3, True, SMALL))
    ref = BidirectionalINN(dim_x=4, dim_y=4, dim_z=4, dim_aux=4, **SMALL)
    ref.load_state_dict(net.state_dict())
    x, y, noise = torch.randn(32, 4, generator=gen), torch.randn(32, 4, generator=gen), torch.randn(32, 3, generator=gen)
    aux = torch.cat([noise * 20.0, y[:, 3:]], dim=1)
    mine = net.loss(x, y, noise=noise, generator=torch.Generator().manual_seed(5))
    theirs = ref.loss(x, y, aux=aux, y_noise=0.0, generator=torch.Generator().manual_seed(5))
    for key in ("L_y", "L_z", "L_x", "L_rec", "L_pad_x", "total"):
        assert torch.allclose(mine[key], theirs[key]), key
    # a different noise realisation is a different input side
    other = net.loss(x, y, noise=noise + 1.0, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(mine["L_rec"], other["L_rec"])
    with pytest.raises(ValueError, match="noise"):
        net.loss(x, y, noise=torch.zeros(32, 4))


def test_without_noise_input_only_log_snr_is_carried_and_the_pad_takes_the_noise():
    cfg = NoiseLatentINN.network_config(13, 8, True, {**SMALL, "noise_input": False})
    net = NoiseLatentINN.from_config(cfg)
    # input side [x 13, s 1, pad 8]; output side [y 8, s 1, z 13]
    assert (net.dim_aux, net.total_dim, net.dim_z, net.uses_noise_realisation) == (1, 22, 13, False)
    assert NoiseLatentINN.from_config(net.config()).config() == net.config()
    ref = BidirectionalINN(dim_x=13, dim_y=9, dim_z=13, dim_aux=1, **SMALL)
    ref.load_state_dict(net.state_dict())
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 13, generator=gen), torch.randn(16, 9, generator=gen)
    mine = net.loss(x, y, noise=torch.ones(16, 8), generator=torch.Generator().manual_seed(4))  # noise ignored
    theirs = ref.loss(x, y, aux=y[:, 8:], y_noise=0.0, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(mine["total"], theirs["total"])
    assert NoiseLatentINN.training_options({"inn_noise_input": False})[0]["noise_input"] is False


def test_unit_noise_is_noise_times_snr():
    gen = torch.Generator().manual_seed(6)
    net = NoiseLatentINN.from_config(NoiseLatentINN.network_config(4, 3, True, {**SMALL, "unit_noise": True}))
    assert NoiseLatentINN.from_config(net.config()).unit_noise
    ref = BidirectionalINN(dim_x=4, dim_y=4, dim_z=4, dim_aux=4, **SMALL)
    ref.load_state_dict(net.state_dict())
    x, y, noise = torch.randn(8, 4, generator=gen), torch.randn(8, 4, generator=gen), torch.randn(8, 3, generator=gen)
    snr = torch.linspace(10, 50, 8)
    mine = net.loss(x, y, noise=noise, snr=snr, generator=torch.Generator().manual_seed(1))
    aux = torch.cat([noise * snr[:, None], y[:, 3:]], dim=1)
    theirs = ref.loss(x, y, aux=aux, y_noise=0.0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(mine["total"], theirs["total"])
    spec = make_spec("inn_noise", ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0], [500.0, 600.0, 700.0],
                     {**SMALL, "unit_noise": True}, snr_range=(10.0, 50.0))
    est = PosteriorEstimator(spec)
    xp = torch.full((4, 2), 0.5, dtype=torch.float64)
    y_clean = torch.full((4, 3), 0.3, dtype=torch.float64)
    y_noisy = y_clean * torch.tensor([1.05, 0.97, 1.0], dtype=torch.float64)
    s4 = torch.full((4,), 20.0)
    a = est.loss(xp, y_noisy, snr=s4, y_clean=y_clean, generator=torch.Generator().manual_seed(2))["total"]
    b = est.loss(xp, y_noisy, snr=2 * s4, y_clean=y_clean, generator=torch.Generator().manual_seed(2))["total"]
    assert not torch.allclose(a, b)  # the SNR reaches the noise input (and the log-SNR column)


def test_training_settings_reach_the_network():
    network, loss = NoiseLatentINN.training_options(
        {"dim_z": 9, "inn_pair_sigma": 0.0, "y_noise": 0.05, "inn_backward_kernels": [[1, 2], [4, 2]]})
    assert network == {"dim_z": 9, "y_uncertainty_sigma": None, "backward_kernels": [[1.0, 2.0], [4.0, 2.0]]}
    assert loss == {"y_noise": 0.0}  # the measured noise is modelled, no extra y noise
    net = NoiseLatentINN.from_config(NoiseLatentINN.network_config(13, 8, True, {**SMALL, **network}))
    assert net.backward_kernels == [[1.0, 2.0], [4.0, 2.0]] and net.y_uncertainty_sigma is None


def test_paper_layout_is_unchanged_without_aux():
    net = BidirectionalINN(dim_x=4, dim_y=3, dim_z=2, **SMALL)
    assert net.total_dim == 5 and "dim_aux" not in net.config()


def test_estimator_passes_the_noise_of_the_log_features():
    spec = make_spec("inn_noise", ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0], [500.0, 600.0, 700.0], SMALL,
                     snr_range=(10.0, 50.0))
    est = PosteriorEstimator(spec)
    assert est.snr_conditioning and est.net.dim_y == 4
    gen = torch.Generator().manual_seed(1)
    x = 0.2 + 0.6 * torch.rand(16, 2, generator=gen, dtype=torch.float64)
    y_clean = 0.1 + 0.5 * torch.rand(16, 3, generator=gen, dtype=torch.float64)
    y_noisy = y_clean * (1 + 0.05 * torch.randn(16, 3, generator=gen, dtype=torch.float64))
    snr = torch.full((16,), 20.0)

    def loss(**kw):
        return est.loss(x, y_noisy, snr=snr, generator=torch.Generator().manual_seed(3), **kw)["total"]

    assert torch.allclose(loss(y_clean=y_noisy), loss())  # no clean spectrum: counted as noise-free
    # the noise the estimator passes is log(y_noisy) - log(y_clean), centred over the bands
    log_ratio = torch.log(y_noisy) - torch.log(y_clean)
    expected = (log_ratio - log_ratio.mean(dim=1, keepdim=True)).float()
    direct = est.net.loss(est.x_to_net(x), est.y_to_net(y_noisy, snr), noise=expected,
                          generator=torch.Generator().manual_seed(3))["total"]
    assert torch.allclose(loss(y_clean=y_clean), direct)
    assert not torch.allclose(loss(y_clean=y_clean), loss())


def test_trains_and_round_trips_through_a_bundle(fake_dataset, tmp_path):
    from tissue_inn.io.bundle import load_bundle, save_bundle
    from tissue_inn.progress import run_to_completion
    from tissue_inn.training.trainer import TrainSettings, train

    settings = TrainSettings(family="inn_noise", epochs=2, iterations_per_epoch=5, batch_size=200, val_fraction=0.1,
                             snr_conditioning=True, inn_pair_sigma=0.0, **SMALL)
    res = run_to_completion(train(fake_dataset, settings))
    assert all(math.isfinite(h.val_loss) for h in res.history)
    card = {"name": "nl"}
    card.update(res.card_sections())
    est, card2 = load_bundle(save_bundle(res.estimator, card, tmp_path / "nl"))
    assert card2["family"] == "inn_noise" and est.latent_dim == 13
    y = torch.full((2, 8), 0.2, dtype=torch.float64)
    a = est.sample(y, 32, generator=torch.Generator().manual_seed(3), snr=20.0)
    b = res.estimator.sample(y, 32, generator=torch.Generator().manual_seed(3), snr=20.0)
    assert a.shape == (2, 32, 13) and torch.equal(a, b)


def test_snr_per_batch_gives_each_training_batch_one_snr(fake_dataset, monkeypatch):
    """``snr_per_batch``: every batch the loss sees carries one SNR; off, the SNRs differ within a batch."""
    from tissue_inn.progress import run_to_completion
    from tissue_inn.training import trainer

    seen: list[torch.Tensor] = []
    original = trainer.PosteriorEstimator.loss

    def spy(self, x, y, snr=None, **kw):
        if self.net.training:
            seen.append(torch.as_tensor(snr).clone())
        return original(self, x, y, snr=snr, **kw)

    monkeypatch.setattr(trainer.PosteriorEstimator, "loss", spy)
    for per_batch in (True, False):
        seen.clear()
        settings = trainer.TrainSettings(family="inn_noise", epochs=1, iterations_per_epoch=4, batch_size=100,
                                         val_fraction=0.1, snr_conditioning=True, inn_pair_sigma=0.0,
                                         inn_unit_noise=True, snr_per_batch=per_batch, **SMALL)
        run_to_completion(trainer.train(fake_dataset, settings))
        assert len(seen) == 4
        spreads = [float(s.max() - s.min()) for s in seen]
        if per_batch:
            assert all(sp == 0.0 for sp in spreads) and len({float(s[0]) for s in seen}) == 4
            assert all(10.0 <= float(s[0]) <= 50.0 for s in seen)
        else:
            assert all(sp > 1.0 for sp in spreads)


def _train_1d(net: NoiseLatentINN, sigma: float, steps: int) -> float:
    """x ~ N(0, 1), y = x + sigma·ε; returns the posterior std the trained network gives at y = 0.5."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.9, 0.95))
    for _ in range(steps):
        x = torch.randn(256, 1, generator=gen)
        eps = torch.randn(256, 1, generator=gen)
        y = x + sigma * eps
        terms = net.loss(x, y, generator=gen, noise=sigma * eps / NOISE_SCALE)
        opt.zero_grad()
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
    samples = net.sample(torch.full((1, 1), 0.5), 4000, generator=torch.Generator().manual_seed(1))
    return float(samples.std())


@pytest.mark.slow
def test_linear_gaussian_posterior_width():
    """x ~ N(0, 1), y = x + 0.5·ε: the exact posterior std is 0.5 / sqrt(1.25) = 0.447; with the noise on
    its input side the bidirectional INN recovers it to within 15 %."""
    sigma, exact = 0.5, 0.5 / math.sqrt(1.25)
    kernels = ((0.5, 2.0), (2.0, 2.0), (8.0, 2.0))
    net = NoiseLatentINN(dim_x=1, dim_y=1, dim_z=1, n_blocks=3, hidden=32, n_hidden_layers=2, clamp=2.0,
                         y_uncertainty_sigma=None, backward_kernels=kernels, seed=0)
    width = _train_1d(net, sigma, 1500)
    assert abs(width - exact) < 0.15 * exact, width

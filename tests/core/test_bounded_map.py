"""The two ways a parameter bounded on both sides enters the network (logit, probit), and how bundles keep them."""

import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from tissue_inn.data.preprocess import BoundedTransform
from tissue_inn.errors import ConfigError, ModelBundleError
from tissue_inn.io.bundle import load_bundle, save_bundle
from tissue_inn.progress import run_to_completion
from tissue_inn.training.trainer import TrainSettings, train

LOW = [0.0, 0.8, 1.0, -math.inf]
HIGH = [1.0, 0.95, math.inf, math.inf]


@pytest.mark.parametrize("bounded_map", ["logit", "probit"])
def test_round_trip_and_bounds(bounded_map):
    t = BoundedTransform(LOW, HIGH, bounded_map)
    x = torch.tensor([[0.3, 0.9, 5.0, -2.0], [1e-3, 0.949, 1.5, 7.0]], dtype=torch.float64)
    assert torch.allclose(t.inverse(t(x)), x, rtol=1e-12, atol=1e-12)
    wild = t.inverse(torch.tensor([[-40.0, 40.0, 0.0, 3.0]], dtype=torch.float64))
    assert 0.0 <= wild[0, 0] <= 1.0 and 0.8 <= wild[0, 1] <= 0.95


def test_probit_is_the_normal_quantile_and_the_logit_is_not():
    p = torch.tensor([0.025, 0.16, 0.5, 0.84, 0.975], dtype=torch.float64)
    x = torch.stack([p, 0.8 + 0.15 * p, p + 1.0, p], dim=1)
    probit = BoundedTransform(LOW, HIGH, "probit")(x)
    expected = torch.tensor(stats.norm.ppf(p.numpy()))  # independent reference: scipy's normal quantile
    assert torch.allclose(probit[:, 0], expected, atol=1e-9) and torch.allclose(probit[:, 1], expected, atol=1e-9)
    logit = BoundedTransform(LOW, HIGH, "logit")(x)
    assert torch.allclose(logit[:, 0], torch.log(p / (1 - p)), atol=1e-12)
    assert not torch.allclose(logit[:, 0], expected, atol=1e-2)
    # the other columns do not depend on the choice
    assert torch.equal(probit[:, 2:], logit[:, 2:])


def test_a_uniform_prior_becomes_a_standard_normal_under_the_probit_only():
    g = 0.8 + 0.15 * torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.stack([g * 0 + 0.5, g, g * 0 + 2.0, g * 0], dim=1)
    opened = {m: BoundedTransform(LOW, HIGH, m)(x)[:, 1] for m in ("probit", "logit")}
    for bounded_map, kurtosis in (("probit", 0.0), ("logit", 1.2)):  # logistic: excess kurtosis 6/5
        u = opened[bounded_map]
        k = float(((u - u.mean()) ** 4).mean() / u.var() ** 2 - 3)
        assert abs(k - kurtosis) < 0.05, (bounded_map, k)
    assert stats.kstest(opened["probit"][:5000].numpy(), "norm").pvalue > 1e-3


def test_unknown_maps_are_refused():
    with pytest.raises(ValueError, match="bounded_map"):
        BoundedTransform(LOW, HIGH, "tanh")
    with pytest.raises(ConfigError, match="bounded_map"):
        TrainSettings(bounded_map="tanh")


SMALL = dict(epochs=1, iterations_per_epoch=5, batch_size=200, n_blocks=2, hidden=32, n_hidden_layers=2,
             val_fraction=0.1, seed=0, threads=1)


def test_bundle_keeps_the_map_and_old_cards_read_as_logit(fake_dataset, tmp_path):
    res = run_to_completion(train(fake_dataset, TrainSettings(family="inn", bounded_map="probit", **SMALL)))
    card = {"name": "p"}
    card.update(res.card_sections())
    folder = save_bundle(res.estimator, card, tmp_path / "p")
    est, card2 = load_bundle(folder)
    assert card2["estimator"]["bounded_map"] == "probit" and est.x_transform.bounded_map == "probit"
    y = torch.rand(3, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.3 + 0.05
    a = res.estimator.sample(y, 64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, est.sample(y, 64, generator=torch.Generator().manual_seed(1)))
    # a card written before the setting existed has no key: it is read as the logit it was trained with
    path = folder / "model_card.json"
    raw = json.loads(path.read_text())
    del raw["estimator"]["bounded_map"]
    path.write_text(json.dumps(raw))
    est_old, _ = load_bundle(folder)
    assert est_old.x_transform.bounded_map == "logit"
    assert not torch.equal(a, est_old.sample(y, 64, generator=torch.Generator().manual_seed(1)))
    raw["estimator"]["bounded_map"] = "arctan"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelBundleError, match="bounded_map 'arctan'"):
        load_bundle(folder)


def test_the_predicted_cost_of_a_gaussian_rendering_matches_a_simulation():
    """benchmarks/inn_latent_check.py's closed form against drawing it: uniform truths, logit draws N(0, π²/3)."""
    import numpy as np
    from conftest import load_repo_script

    median_abs, at68 = load_repo_script("benchmarks/inn_latent_check.py").gaussian_rendering_of_logistic()
    rng = np.random.default_rng(0)
    draws = 1 / (1 + np.exp(-rng.normal(0.0, math.pi / math.sqrt(3), 400_000)))
    truths = rng.random(400_000)
    errors = []
    for q in np.arange(1, 101) / 101:
        lo, hi = np.quantile(draws, [0.5 - q / 2, 0.5 + q / 2])
        errors.append(np.mean((truths >= lo) & (truths <= hi)) - q)
    lo68, hi68 = np.quantile(draws, [0.16, 0.84])
    assert abs(at68 - (np.mean((truths >= lo68) & (truths <= hi68)) - 0.68)) < 0.005
    assert abs(median_abs - np.median(np.abs(errors))) < 0.005
    assert 0.025 < median_abs < 0.04  # the ≈ 3 % the INN's uninformed parameters showed under the logit


def test_the_shipped_bidirectional_inn_uses_the_probit_and_keeps_samples_inside_the_prior():
    folder = Path(__file__).resolve().parents[2] / "models" / "colon_inn_calibrated"
    if not (folder / "model_card.json").exists():
        pytest.skip("colon_inn_calibrated not shipped in this checkout")
    est, card = load_bundle(folder)
    assert card["estimator"]["bounded_map"] == "probit" == est.x_transform.bounded_map
    y = torch.full((2, est.n_bands), 0.2, dtype=torch.float64)
    draws = est.sample(y, 512, generator=torch.Generator().manual_seed(0), snr=10.0)
    bounds = est.prior_bounds()
    assert torch.all(draws >= bounds[:, 0]) and torch.all(draws <= bounds[:, 1])

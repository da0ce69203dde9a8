"""The toy experiment of Ardizzone et al. (2019): both families must recover the multimodal posteriors.

Shared-labels variant ([0, 0, 0, 0, 1, 1, 2, 3]): for every label, ≥ 95 % of the posterior samples lie
within 3σ of a mode carrying that label and every such mode receives ≥ 10 % of them (an exact posterior
gives 98.9 % within 3σ and equal shares: 25 %, 50 % or 100 %). Slow: trains two networks (minutes).
"""

from __future__ import annotations

import pytest
import torch
from conftest import load_repo_script


@pytest.fixture(scope="module")
def toy():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_repo_script("benchmarks/toy_eight_modes.py")
    torch.set_num_threads(previous)


def _check(metrics: dict) -> None:
    for entry in metrics["per_label"]:
        assert entry["frac_within_3sigma"] >= 0.95, entry
        assert entry["min_mode_share"] >= 0.10, entry


def test_toy_data_matches_the_paper_layout(toy) -> None:
    x, y, mode = toy.make_toy_data(20000, "shared", torch.Generator().manual_seed(0))
    assert y.shape == (20000, 4)
    # Every point sits near its own mode (σ = 0.2) and all modes lie on a circle of radius √(1 + 2.4142²).
    distance = torch.linalg.norm(x.double() - toy.MODES_XY[mode], dim=1)
    assert distance.std() < 0.2 and torch.allclose(
        torch.linalg.norm(toy.MODES_XY, dim=1), torch.tensor(2.6131, dtype=torch.float64), atol=1e-3
    )
    counts = torch.bincount(y.argmax(dim=1), minlength=4).double() / 20000
    assert torch.allclose(counts, torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64), atol=0.02)


def test_metric_detects_a_wrong_posterior(toy) -> None:
    """The check itself must fail a model that ignores the label (samples from the whole prior)."""

    class PriorSampler(torch.nn.Module):
        def sample(self, y, n_draws, generator):
            x, _, _ = toy.make_toy_data(y.shape[0] * n_draws, "shared", generator)
            return (x / toy.X_SCALE).reshape(y.shape[0], n_draws, 2)

    metrics = toy.evaluate_posterior(PriorSampler(), "shared", n_draws=2000)
    assert metrics["min_frac_within_3sigma"] < 0.5
    with pytest.raises(AssertionError):
        _check(metrics)


@pytest.mark.slow
def test_bidirectional_inn_recovers_shared_label_posteriors(toy) -> None:
    model, _ = toy.train_bidirectional("shared", **toy.TEST_SETTINGS["bidirectional"])
    _check(toy.evaluate_posterior(model, "shared"))


@pytest.mark.slow
def test_conditional_inn_recovers_shared_label_posteriors(toy) -> None:
    model, _ = toy.train_conditional("shared", **toy.TEST_SETTINGS["conditional"])
    _check(toy.evaluate_posterior(model, "shared"))

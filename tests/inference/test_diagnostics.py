"""Diagnostics against hand-computed values and synthetic posteriors with known calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from tissue_inn.inference import diagnostics as dg

pytestmark = pytest.mark.usefixtures("one_thread")


def _gaussian_case(n=2000, s=1000, d=2, sample_scale=1.0, bias=0.0, seed=0):
    """Posterior N(mu_n, 1) per case; truth ~ N(mu_n, 1); samples ~ N(mu_n + bias, sample_scale²)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 3, size=(n, d))
    truth = mu + rng.normal(size=(n, d))
    samples = mu[:, None, :] + bias + sample_scale * rng.normal(size=(n, s, d))
    return samples, truth


def test_calibration_error_near_zero_when_calibrated():
    samples, truth = _gaussian_case()
    summ = dg.calibration_summary(samples, truth)
    assert np.all(summ["median_abs"] < 0.025)
    assert np.all(np.abs(summ["at_68"]) < 0.04)


def test_calibration_error_overconfident_matches_analytic():
    samples, truth = _gaussian_case(sample_scale=0.5)
    summ = dg.calibration_summary(samples, truth)
    # truth inside the central 68 % interval of N(mu, 0.5²): P(|Z| < 0.5 · z_0.84)
    expected = 2 * norm.cdf(0.5 * norm.ppf(0.84)) - 1 - 0.68
    assert expected < -0.25
    np.testing.assert_allclose(summ["at_68"], expected, atol=0.035)
    assert np.all(summ["median_abs"] > 0.1)


def test_calibration_error_biased():
    samples, truth = _gaussian_case(bias=1.0)
    summ = dg.calibration_summary(samples, truth)
    assert np.all(summ["median_abs"] > 0.05)
    assert np.all(summ["at_68"] < -0.1)


def test_calibration_error_uses_central_quantile_interval():
    rng = np.random.default_rng(3)
    samples = rng.gamma(2.0, size=(50, 37, 3))
    truth = rng.gamma(2.0, size=(50, 3))
    levels = np.array([0.1, 0.5, 0.68, 0.9])
    e = dg.calibration_error(samples, truth, levels)
    for i, q in enumerate(levels):
        lo = np.quantile(samples, (1 - q) / 2, axis=1)
        hi = np.quantile(samples, (1 + q) / 2, axis=1)
        inside = ((lo <= truth) & (truth <= hi)).mean(axis=0)
        np.testing.assert_allclose(e[i], inside - q, atol=1e-12)


def test_sbc_uniform_vs_overconfident():
    samples, truth = _gaussian_case(n=2000, s=199, d=1)
    good = dg.sbc_histogram(samples, truth, n_bins=10)
    assert good["p_value"][0] > 1e-3
    assert good["counts"].sum() == 2000
    samples_bad, truth_bad = _gaussian_case(n=2000, s=199, d=1, sample_scale=0.5)
    bad = dg.sbc_histogram(samples_bad, truth_bad, n_bins=10)
    assert bad["p_value"][0] < 1e-6
    c = bad["counts"][:, 0]
    assert c[0] + c[-1] > 3 * (c[4] + c[5])  # U shape: truths fall outside the too-narrow samples


def test_sbc_ranks_handle_ties_and_range():
    samples = np.zeros((400, 9, 1))
    truth = np.zeros((400, 1))
    ranks = dg.sbc_ranks(samples, truth, torch.Generator().manual_seed(1))
    assert ranks.min() >= 0 and ranks.max() <= 9
    assert len(np.unique(ranks)) == 10  # ties broken at random over 0..S


def test_errors_hand_computed():
    est = np.array([[1.0], [2.0], [3.0]])
    truth = np.array([[1.0], [3.0], [5.0]])
    assert dg.mae(est, truth)[0] == pytest.approx(1.0)
    assert dg.median_abs_error(est, truth)[0] == pytest.approx(1.0)
    # mean truth 3: SS_tot = 8, SS_res = 0 + 1 + 4 = 5
    assert dg.r2_score(est, truth)[0] == pytest.approx(1 - 5 / 8)


def test_map_estimate_finds_mode_not_median():
    rng = np.random.default_rng(0)
    gamma = rng.gamma(3.0, size=(20, 4096, 1))  # mode 2, median ≈ 2.67
    m = dg.map_estimate(gamma).numpy()
    assert abs(m.mean() - 2.0) < 0.25
    mix = np.where(
        rng.random((10, 4096, 1)) < 0.7, rng.normal(0, 0.3, (10, 4096, 1)), rng.normal(3, 0.3, (10, 4096, 1))
    )
    m2 = dg.map_estimate(mix).numpy()
    assert np.all(np.abs(m2) < 0.2)
    pe = dg.point_estimates(gamma)
    assert abs(pe["median"].mean().item() - 2.674) < 0.1


def test_width_and_contraction():
    samples, _ = _gaussian_case(n=100, s=4000, d=1)
    w = dg.interval_width(samples)
    assert np.median(w) == pytest.approx(2 * norm.ppf(0.84), rel=0.05)
    post_var = np.full((10, 2), 0.25)
    np.testing.assert_allclose(dg.posterior_contraction(post_var, np.array([1.0, 0.25])), [0.75, 0.0])


def test_posterior_predictive_residual():
    def forward(x):
        return torch.cat([2 * x, 2 * x], dim=1)

    truth = torch.rand(30, 1, dtype=torch.float64) + 0.5
    y = forward(truth)
    exact = dg.posterior_predictive_residual(truth[:, None, :].expand(30, 16, 1), y, forward, n_resim=4)
    assert exact["median"] == pytest.approx(0.0, abs=1e-12)
    off = dg.posterior_predictive_residual(1.1 * truth[:, None, :].expand(30, 16, 1), y, forward, n_resim=4)
    assert off["median"] == pytest.approx(0.1, rel=1e-9)
    np.testing.assert_allclose(off["per_band"], [0.1, 0.1], rtol=1e-9)


def test_streamed_statistics_match_direct():
    samples, truth = _gaussian_case(n=60, s=300, d=2, sample_scale=0.7)
    stats = dg.concat_statistics(
        [dg.case_statistics(samples[:25], truth[:25]), dg.case_statistics(samples[25:], truth[25:])]
    )
    levels = np.concatenate([dg.CALIBRATION_LEVELS, dg.EXTRA_LEVELS])
    np.testing.assert_allclose(
        dg.calibration_curve(stats["inside"], levels), dg.calibration_error(samples, truth, levels)
    )
    np.testing.assert_allclose(stats["median"], np.median(samples, axis=1))
    np.testing.assert_allclose(stats["width68"], dg.interval_width(samples))

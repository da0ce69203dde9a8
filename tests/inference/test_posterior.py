"""Posterior engine: summary math on known distributions, determinism, support, validation, predictive check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torch import nn

from tissue_inn.config import load_camera, load_tissue
from tissue_inn.errors import MeasurementError, TissueInnError
from tissue_inn.inference.posterior import Posterior, relative_residual
from tissue_inn.inference.summaries import bimodality_coefficient, count_peaks, summarize, summarize_pixel
from tissue_inn.optics.forward import ForwardModel, SolverSettings

# ----------------------------------------------------------------------------- summary math


def _mixture(rng, n, p, sep):
    pick = rng.uniform(size=n) < p
    return np.where(pick, rng.normal(-sep, 0.3, n), rng.normal(sep, 0.3, n))


def test_quantiles_mean_std_match_numpy_and_theory():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 0.5, size=(3, 4000, 2))
    out = summarize(
        torch.as_tensor(x), torch.tensor([1.0, 0.25]), ("mean", "std", "q05", "median", "q95", "iqr", "contraction")
    )
    np.testing.assert_allclose(out["q05"].numpy(), np.quantile(x, 0.05, axis=1), rtol=1e-12)
    np.testing.assert_allclose(out["median"].numpy(), np.median(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(out["std"].numpy(), x.std(axis=1, ddof=1), rtol=1e-12)
    # against the generating distribution
    assert np.all(np.abs(out["q95"].numpy() - sps.norm.ppf(0.95, 2.0, 0.5)) < 0.05)
    assert np.all(np.abs(out["iqr"].numpy() - 0.5 * (sps.norm.ppf(0.75) - sps.norm.ppf(0.25))) < 0.05)
    # contraction = 1 − 0.25 / prior variance
    np.testing.assert_allclose(out["contraction"].numpy()[:, 0], 0.75, atol=0.03)
    np.testing.assert_allclose(out["contraction"].numpy()[:, 1], 0.0, atol=0.1)


def test_mode_of_skewed_distribution():
    rng = np.random.default_rng(2)
    # gamma(k=3, θ=1): mode 2, mean 3, median ≈ 2.67
    x = rng.gamma(3.0, 1.0, size=(20, 4096, 1))
    mode = summarize(torch.as_tensor(x), None, ("map",))["map"].numpy()
    assert abs(np.median(mode) - 2.0) < 0.25
    # bimodal 70/30: the mode is the larger component, not the mean
    xb = np.stack([_mixture(rng, 4096, 0.7, 2.0) for _ in range(10)])[:, :, None]
    mode_b = summarize(torch.as_tensor(xb), None, ("map", "mean"))
    assert np.all(np.abs(mode_b["map"].numpy() + 2.0) < 0.3)
    assert np.all(np.abs(mode_b["mean"].numpy() + 0.8) < 0.2)


@pytest.mark.parametrize("n", [256, 1000, 4096])
def test_multimodality_score_separates_shapes(n):
    rng = np.random.default_rng(n)
    cols = [
        rng.normal(0, 1, (30, n)),
        rng.uniform(0, 1, (30, n)),
        rng.exponential(1, (30, n)),
        np.stack([_mixture(rng, n, 0.5, 2.0) for _ in range(30)]),
    ]
    x = torch.as_tensor(np.stack(cols, -1))
    score = summarize(x, None, ("multimodality",))["multimodality"].numpy()
    assert score[:, :3].max() < 0.1  # unimodal, flat and skewed → ≈ 0
    assert score[:, 3].min() > 0.4  # two equal separated modes
    assert count_peaks(cols[3][0]) == 2
    assert count_peaks(cols[0][0]) == 1


def test_bimodality_coefficient_reference_values():
    rng = np.random.default_rng(3)
    x = np.stack([rng.normal(size=200000), rng.uniform(size=200000)], 1)
    bc = bimodality_coefficient(x)
    assert abs(bc[0] - 1 / 3) < 0.01  # normal: 1/3
    assert abs(bc[1] - 5 / 9) < 0.01  # uniform: 5/9


def test_summarize_pixel_keys_and_degenerate_samples():
    s = np.zeros((100, 2))
    s[:, 1] = np.linspace(0, 1, 100)
    out = summarize_pixel(s, ["a", "b"], np.array([1.0, 1 / 12]))
    assert out["a"]["map"] == 0.0 and out["a"]["multimodality"] == 0.0 and out["a"]["contraction"] == 1.0
    assert abs(out["b"]["contraction"]) < 0.05
    assert {
        "mean",
        "median",
        "map",
        "std",
        "q05",
        "q16",
        "q25",
        "q75",
        "q84",
        "q95",
        "iqr",
        "contraction",
        "multimodality",
        "n_peaks",
        "bimodality_coefficient",
    } <= set(out["b"])


# ----------------------------------------------------------------------------- fake estimator


class FakeEstimator(nn.Module):
    """Samples ``center + scale · N(0, 1)`` clipped into the colon prior, independent of y."""

    def __init__(self, center: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        tissue = load_tissue("colon")
        self.parameter_names = tissue.parameter_names
        self.parameter_units = tissue.parameter_units
        self.band_centers_nm = tuple(load_camera("spectrocam8").band_centers_nm)
        self._bounds = torch.as_tensor(tissue.prior_bounds())
        self.center = torch.as_tensor(center, dtype=torch.float64)
        self.scale = torch.as_tensor(scale, dtype=torch.float64)
        self.spec = {"normalization": "geometric_mean"}
        self.family = "fake"

    def prior_bounds(self):
        return self._bounds

    def sample(self, y, n_draws, generator=None):
        z = torch.randn((y.shape[0], n_draws, len(self.center)), generator=generator, dtype=torch.float64)
        x = self.center + self.scale * z
        return torch.maximum(torch.minimum(x, self._bounds[:, 1]), self._bounds[:, 0])


def _fake_posterior(center, scale):
    tissue, camera = load_tissue("colon"), load_camera("spectrocam8")
    card = {"name": "fake", "tissue": tissue.to_dict(), "camera": camera.to_dict(), "weights": {"sha256": "0" * 64}}
    return Posterior(FakeEstimator(center, scale), card, device="cpu")


_X0 = np.array([0.7, 0.03, 20.0, 0.88, 800.0, 0.04, 20.0, 0.88, 600.0, 0.05, 20.0, 0.88, 500.0])


def test_pixel_summaries_and_contraction_from_card_prior():
    scale = np.full(13, 1e-3) * _X0
    scale[0] = 0.05  # sO2 posterior sd 0.05 → contraction 1 − 0.0025 / (1/12) = 0.97
    post = _fake_posterior(_X0, scale)
    y = np.full(8, 0.2)
    px = post.pixel(y, n_draws=4096, seed=0, predictive_draws=0)
    s = px.summaries["sao2"]
    assert abs(s["mean"] - 0.7) < 0.005 and abs(s["median"] - 0.7) < 0.005 and abs(s["map"] - 0.7) < 0.02
    assert abs(s["std"] - 0.05) < 0.003
    assert abs(s["q84"] - s["q16"] - 2 * 0.05) < 0.01
    assert abs(s["contraction"] - (1 - 0.05**2 * 12)) < 0.005
    assert s["multimodality"] < 0.1 and s["n_peaks"] == 1
    # a_mie prior is a truncated normal: contraction uses its variance (≈ 89 cm⁻², not the infinite support)
    assert post.prior_variance[2] == pytest.approx(load_tissue("colon").parameters[2].prior.variance())
    assert px.samples.shape == (4096, 13)
    assert px.column("sao2").shape == (4096,)


def test_predictive_check_explains_own_simulation():
    tissue, camera = load_tissue("colon"), load_camera("spectrocam8")
    y0 = ForwardModel(tissue, camera, SolverSettings(n_quad=16)).bands(torch.as_tensor(_X0[None])).numpy()[0]
    post = _fake_posterior(_X0, np.full(13, 1e-9))
    good = post.pixel(y0, n_draws=64, predictive_draws=4).predictive
    assert good.relative_residual < 0.01  # the re-simulation reproduces the measurement (n_quad 8 vs 16)
    assert np.all(good.band_q05 <= good.band_q50 + 1e-12) and np.all(good.band_q50 <= good.band_q95 + 1e-12)
    y_bad = y0.copy()
    y_bad[3] *= 1.3  # a spectral shape the model cannot produce
    bad = post.pixel(y_bad, n_draws=64, predictive_draws=4).predictive
    assert bad.relative_residual > 5 * max(good.relative_residual, 1e-3)
    # scale-free models ignore an overall illumination factor
    assert post.pixel(0.5 * y0, n_draws=64, predictive_draws=4).predictive.relative_residual < 0.01


def test_relative_residual_definition():
    y = np.array([0.1, 0.2, 0.4])
    assert relative_residual(2 * y, y, scale_free=True) == pytest.approx(0.0, abs=1e-12)
    assert relative_residual(2 * y, y, scale_free=False) == pytest.approx(np.log(2))


# ----------------------------------------------------------------------------- with the trained tiny bundle


@pytest.fixture(scope="module")
def post(tiny_bundle):
    return Posterior.from_bundle(tiny_bundle, device="cpu")


def _spectra(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.6, size=(n, 8))


def test_properties(post, tiny_bundle):
    assert post.device == "cpu"
    assert post.parameter_names[0] == "sao2" and len(post.parameter_names) == 13
    assert post.units == dict(zip(load_tissue("colon").parameter_names, load_tissue("colon").parameter_units))
    assert post.prior_bounds.shape == (13, 2)
    assert np.allclose(post.band_centers_nm, [470, 480, 511, 560, 580, 600, 660, 700])
    assert post.model_sha256 and len(post.model_sha256) == 64
    assert np.all(np.isfinite(post.prior_variance))


def test_sample_deterministic_for_seed(post):
    y = _spectra(5)
    a = post.sample(y, 50, seed=3)
    b = post.sample(y, 50, seed=3)
    c = post.sample(y, 50, seed=4)
    assert a.shape == (5, 50, 13) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # a spectrum's draws do not depend on the other spectra of its call beyond its seed unit
    np.testing.assert_array_equal(post.sample(y[0], 50, seed=3)[0], post.sample(y[:1], 50, seed=3)[0])


def test_samples_inside_prior_support(post):
    s = post.sample(_spectra(20, 1), 200, seed=0)
    lo, hi = post.prior_bounds[:, 0], post.prior_bounds[:, 1]
    assert np.all(s >= lo) and np.all(s <= hi)


@pytest.mark.parametrize(
    "y, words",
    [
        ([0.1] * 7, ["8 band"]),
        ([0.1] * 7 + [np.nan], ["NaN"]),
        ([0.1] * 7 + [0.0], ["≤"]),
        ([0.1] * 7 + [1.4], ["above"]),
    ],
)
def test_invalid_measurements_rejected(post, y, words):
    with pytest.raises(MeasurementError) as err:
        post.pixel(np.asarray(y), n_draws=16, predictive_draws=0)
    assert isinstance(err.value, TissueInnError) and isinstance(err.value, ValueError)
    for w in words:
        assert w in str(err.value)


def test_pixel_with_trained_model(post):
    px = post.pixel(_spectra(1)[0], n_draws=512, seed=0, predictive_draws=0)
    assert set(px.summaries) == set(post.parameter_names)
    for s in px.summaries.values():
        assert s["q05"] <= s["q25"] <= s["median"] <= s["q75"] <= s["q95"]
        assert s["contraction"] <= 1.0
    assert px.predictive is None

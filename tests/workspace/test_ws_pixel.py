"""A click: the posterior of that pixel, stale answers dropped, predictive band, readable values."""

from __future__ import annotations

import numpy as np
import pytest

from tissue_inn.workspace import Workspace


def test_pixel_matches_posterior_and_stale_answers_are_dropped(ws):
    from tissue_inn.inference.posterior import Posterior

    first = ws.request_pixel(2, 3)
    second = ws.request_pixel(5, 7)
    assert second.generation == first.generation + 1
    r1, r2 = ws.compute_pixel(first), ws.compute_pixel(second)
    assert not ws.accept_pixel(r1)  # stale: the user clicked on
    assert ws.accept_pixel(r2) and ws.pixel_result is r2
    ref = Posterior.from_bundle(ws.model_path).pixel(ws.image[5, 7, :], n_draws=256, seed=3, predictive_draws=0)
    np.testing.assert_allclose(r2.samples, ref.samples, rtol=1e-6)
    assert r2.ground_truth["sao2"] == pytest.approx(0.3 + 0.6 * 7 / 16)
    hists = ws.histograms()
    h = hists["sao2"]
    expect, _ = np.histogram(ref.samples[:, 0], bins=h["edges"])
    np.testing.assert_allclose(h["posterior"] * np.diff(h["edges"]) * 256, expect, atol=1e-9)
    # a new image makes every pending answer stale
    third = ws.request_pixel(1, 1)
    ws.load_image(ws.image_path)
    assert not ws.accept_pixel(ws.compute_pixel(third))


def test_contraction_label_threshold():
    assert Workspace.contraction_label(0.05)[1] is False
    assert "≈ prior" in Workspace.contraction_label(0.05)[0]
    assert Workspace.contraction_label(0.6) == ("60 % contracted", True)


def test_predictive_quantiles_are_ordered(ws):
    res = ws.compute_pixel(ws.request_pixel(4, 4))
    ws.accept_pixel(res)
    check = ws.compute_predictive(res, n=8)
    assert ws.accept_predictive(res, check)
    q = ws.predictive_quantiles(res)
    assert set(q) == {"q05", "q16", "q50", "q84", "q95"}
    assert np.all(q["q05"] <= q["q16"]) and np.all(q["q16"] <= q["q50"]) and np.all(q["q84"] <= q["q95"])


def test_value_texts_read_median_and_interval_in_clinical_units(ws):
    res = ws.compute_pixel(ws.request_pixel(4, 4))
    ws.accept_pixel(res)
    s = res.summaries["sao2"]
    texts = ws.value_texts()
    expect = f"StO2 {100 * s['median']:.0f} % [{100 * s['q16']:.0f}–{100 * s['q84']:.0f} %]"
    assert texts["sao2"] == expect
    d = res.summaries["d_1"]
    assert texts["d_1"] == f"thickness L1 {d['median']:.0f} µm [{d['q16']:.0f}–{d['q84']:.0f} µm]"


def test_prior_samples_come_from_the_posteriors_tissue(ws):
    import torch

    prior = ws.prior_samples(1000, seed=7)
    expect = ws.posterior.tissue.sample_prior(1000, torch.Generator().manual_seed(7)).double().numpy()
    np.testing.assert_array_equal(prior, expect)
    assert ws.prior_samples(1000, seed=7) is prior  # cached

"""Display helpers: parameter groups, histograms, stretch, pseudo-RGB bands, plot ranges."""

from __future__ import annotations

import numpy as np

from tissue_inn.workspace import histogram, parameter_groups, stretch
from tissue_inn.workspace.display import band_label, default_rgb_bands, plot_range

COLON = ("sao2", "vhb_1", "a_mie_1", "g_1", "d_1", "vhb_2", "a_mie_2", "g_2", "d_2", "vhb_3", "a_mie_3", "g_3", "d_3")


def test_parameter_groups_by_layer():
    groups = parameter_groups(COLON)
    assert [g for g, _ in groups] == ["shared", "layer 1 (top)", "layer 2", "layer 3"]
    assert groups[0][1] == ["sao2"]
    assert groups[2][1] == ["vhb_2", "a_mie_2", "g_2", "d_2"]


def test_histogram_density_integrates_to_inside_fraction():
    x = np.random.default_rng(0).uniform(0, 2, 10000)
    edges, dens = histogram(x, 0.0, 1.0, bins=20)
    assert np.isclose(np.sum(dens * np.diff(edges)), np.mean(x < 1.0), atol=1e-9)


def test_stretch_maps_percentiles_to_unit_range_and_keeps_nan():
    img = np.stack([np.arange(100.0).reshape(10, 10), 5 + np.arange(100.0).reshape(10, 10) * 2], axis=2)
    img[0, 0, 0] = np.nan
    out = stretch(img, 0, 100)
    assert np.isnan(out[0, 0, 0]) and out[9, 9, 0] == 1.0 and out[0, 1, 0] == 0.0
    assert out[0, 0, 1] == 0.0 and out[9, 9, 1] == 1.0


def test_rgb_bands_pick_the_nearest_wavelengths():
    wl = np.array([470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0])
    assert default_rgb_bands(wl, 8) == (5, 3, 0)  # 600 is nearest to 620, 560 to 550
    assert default_rgb_bands(None, 2) == (1, 1, 0)
    assert band_label(3, wl) == "band 3 (560 nm)" and band_label(3, None) == "band 3"


def test_plot_range_uses_prior_quantiles_where_unbounded():
    col = np.random.default_rng(1).normal(20.0, 5.0, 20000)
    lo, hi = plot_range((0.0, np.inf), col)
    assert lo == 0.0 and abs(hi - np.percentile(col, 99.5)) < 1e-9
    assert plot_range((np.nan, np.nan), np.full(5, np.nan)) == (0.0, 1.0)

"""The Qt-free application state: loading, band checks, stale answers, maps, regions, export."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import BANDS_NM, write_cube  # noqa: E402

from tissue_inn.errors import BandMismatchError, DataFileError, TissueInnError
from tissue_inn.io.maps import read_maps_hdf5, read_maps_tiff
from tissue_inn.progress import run_to_completion
from tissue_inn.workspace import (
    Workspace,
    check_bands,
    histogram,
    parameter_groups,
    push_recent,
    region_mask,
)

COLON = ("sao2", "vhb_1", "a_mie_1", "g_1", "d_1", "vhb_2", "a_mie_2", "g_2", "d_2", "vhb_3", "a_mie_3", "g_3", "d_3")


@pytest.fixture()
def cube_path(tmp_path):
    return write_cube(tmp_path / "cube.h5")


@pytest.fixture()
def ws(tiny_bundle, cube_path):
    w = Workspace(n_draws_pixel=256, n_draws_map=16, seed=3)
    w.load_model(tiny_bundle)
    w.load_image(cube_path)
    return w


# ------------------------------------------------------------------ pure helpers


def test_parameter_groups_by_layer():
    groups = parameter_groups(COLON)
    assert [g for g, _ in groups] == ["shared", "layer 1 (top)", "layer 2", "layer 3"]
    assert groups[0][1] == ["sao2"]
    assert groups[2][1] == ["vhb_2", "a_mie_2", "g_2", "d_2"]


def test_push_recent_dedupes_and_limits(tmp_path):
    paths = [str(tmp_path / f"f{i}.h5") for i in range(12)]
    recent: list[str] = []
    for p in paths:
        recent = push_recent(recent, p, max_items=5)
    recent = push_recent(recent, paths[9], max_items=5)
    assert recent[0].endswith("f9.h5")
    assert len(recent) == 5 and len(set(recent)) == 5


def test_region_masks_have_the_right_area():
    shape = (100, 120)
    rect = region_mask("rect", {"x": 10, "y": 20, "w": 30, "h": 15}, shape)
    assert rect.sum() == 30 * 15 and rect[20, 10] and not rect[19, 10] and not rect[20, 40]
    ell = region_mask("ellipse", {"x": 10, "y": 10, "w": 60, "h": 40}, shape)
    assert abs(ell.sum() - np.pi * 30 * 20) / (np.pi * 30 * 20) < 0.02
    tri = region_mask("polygon", {"points": [(0, 0), (80, 0), (0, 80)]}, shape)
    assert abs(tri.sum() - 80 * 80 / 2) / (80 * 80 / 2) < 0.03
    assert region_mask("rect", {"x": -5, "y": -5, "w": 10, "h": 10}, shape).sum() == 25  # clipped to the image
    with pytest.raises(ValueError):
        region_mask("star", {}, shape)


def test_histogram_density_integrates_to_inside_fraction():
    x = np.random.default_rng(0).uniform(0, 2, 10000)
    edges, dens = histogram(x, 0.0, 1.0, bins=20)
    assert np.isclose(np.sum(dens * np.diff(edges)), np.mean(x < 1.0), atol=1e-9)


def test_check_bands_reorders_and_names_the_difference():
    idx = check_bands([700, 660, 600, 580, 560, 511, 480, 470], BANDS_NM)
    assert list(idx) == [7, 6, 5, 4, 3, 2, 1, 0]
    with pytest.raises(BandMismatchError) as err:
        check_bands([b + 10 for b in BANDS_NM], BANDS_NM)
    msg = str(err.value)
    assert "470" in msg and "480" in msg and "model" in msg and "image" in msg


# ------------------------------------------------------------------ loading and band checks


def test_loading_sets_state_and_rejects_bad_inputs(tiny_bundle, cube_path, tmp_path):
    w = Workspace()
    assert not w.ready and w.model_name == "no model"
    w.load_image(cube_path)
    w.load_model(tiny_bundle)
    assert w.ready and w.shape == (12, 16) and w.parameter_names == list(COLON)
    assert w.units["a_mie_1"] == "1/cm"
    # a corrupt file: error, previous image kept
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(DataFileError):
        w.load_image(bad)
    assert w.image_path == cube_path
    # an image whose bands do not fit the model: refused, state unchanged
    shifted = write_cube(tmp_path / "shifted.h5", wavelengths=[b + 15 for b in BANDS_NM])
    with pytest.raises(BandMismatchError):
        w.load_image(shifted)
    assert w.image_path == cube_path and w.ready


def test_mismatched_model_is_refused(tiny_bundle, cube_path, tmp_path):
    other = tmp_path / "other_camera"
    shutil.copytree(tiny_bundle, other)
    card = json.loads((other / "model_card.json").read_text())
    card["band_centers_nm"] = [b + 20 for b in card["band_centers_nm"]]
    card["estimator"]["band_centers_nm"] = card["band_centers_nm"]
    (other / "model_card.json").write_text(json.dumps(card))
    w = Workspace()
    w.load_model(tiny_bundle)
    w.load_image(cube_path)
    with pytest.raises(BandMismatchError, match="490"):
        w.load_model(other)
    assert w.model_path == tiny_bundle and w.ready


# ------------------------------------------------------------------ pixels


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


# ------------------------------------------------------------------ maps, regions, export


def test_maps_regions_and_exports_round_trip(ws, tmp_path):
    roi = region_mask("rect", {"x": 2, "y": 1, "w": 5, "h": 4}, ws.shape)
    stale = ws.new_map_job(roi)
    job = ws.new_map_job(roi)
    result = run_to_completion(ws.run_map_job(job))
    assert not ws.accept_maps(stale, result)
    assert ws.accept_maps(job, result)
    med = ws.map_image("sao2/median")
    assert np.all(np.isfinite(med[roi])) and np.all(np.isnan(med[~roi]))
    assert ws.map_range("sao2/median", "prior") == (0.0, 1.0)
    lo, hi = ws.map_range("sao2/median", "auto")
    assert 0.0 <= lo < hi <= 1.0
    assert "sao2" in ws.map_parameters() and "median" in ws.map_statistics("sao2")

    written = ws.export_maps(tmp_path / "maps.h5")
    maps, attrs, mask = read_maps_hdf5(written[0])
    np.testing.assert_array_equal(maps["sao2/median"], med)
    np.testing.assert_array_equal(mask, result.mask)
    tif, infos = read_maps_tiff(ws.export_maps(tmp_path / "maps.tif")[0])
    np.testing.assert_array_equal(tif["a_mie_1/iqr"], ws.map_image("a_mie_1/iqr"))
    assert infos["a_mie_1/iqr"]["unit"] == "1/cm"
    (tmp_path / "pngs").mkdir()
    pngs = ws.export_maps(tmp_path / "pngs", fmt="png", keys=["sao2/median", "vhb_1/std"])
    assert [p.name for p in pngs] == ["sao2_median.png", "vhb_1_std.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    with pytest.raises(FileExistsError):
        ws.export_maps(tmp_path / "maps.h5")

    ws.add_region("rect", {"x": 0, "y": 0, "w": 4, "h": 3})
    ws.add_region("ellipse", {"x": 8, "y": 4, "w": 6, "h": 6})
    pooled, rows = run_to_completion(ws.compute_regions(n_draws_per_pixel=8))
    ws.accept_regions(pooled, rows)
    assert pooled["R1"].shape == (12 * 8, 13)
    assert len(rows) == 2 * 13 and {r["region"] for r in rows} == {"R1", "R2"}
    row = next(r for r in rows if r["region"] == "R1" and r["parameter"] == "sao2")
    assert row["pooled_median"] == pytest.approx(np.quantile(pooled["R1"][:, 0], 0.5), rel=1e-6)
    path = ws.export_region_stats_csv(tmp_path / "regions.csv")
    with open(path) as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == 26 and float(back[0]["pooled_median"]) == pytest.approx(rows[0]["pooled_median"])

    ws.accept_pixel(ws.compute_pixel(ws.request_pixel(3, 3)))
    hist_csv, summary_csv = ws.export_histograms_csv(tmp_path / "hist.csv", bins=20)
    with open(hist_csv) as fh:
        hrows = list(csv.DictReader(fh))
    assert len(hrows) == 13 * 20
    sao2 = [r for r in hrows if r["parameter"] == "sao2"]
    total = sum(float(r["posterior_density"]) * (float(r["bin_high"]) - float(r["bin_low"])) for r in sao2)
    assert total == pytest.approx(1.0)
    with open(summary_csv) as fh:
        srows = list(csv.DictReader(fh))
    assert float(srows[0]["median"]) == pytest.approx(ws.pixel_result.summaries["sao2"]["median"])


def test_errors_need_model_and_image(tiny_bundle):
    w = Workspace()
    with pytest.raises(TissueInnError):
        w.request_pixel(0, 0)
    with pytest.raises(TissueInnError):
        w.export_maps("x.h5")


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

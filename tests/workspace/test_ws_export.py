"""Maps, regions and every export, written and read back."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tissue_inn.errors import TissueInnError
from tissue_inn.io.maps import read_maps_hdf5, read_maps_tiff
from tissue_inn.progress import run_to_completion
from tissue_inn.workspace import Workspace, region_mask


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
    assert ws.has_unsaved_maps

    written = ws.export_maps(tmp_path / "maps.h5")
    assert not ws.has_unsaved_maps
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
    assert srows[0]["model"] == "tiny" and srows[0]["image"].endswith("cube.h5")


def test_errors_need_model_and_image(tiny_bundle):
    w = Workspace()
    with pytest.raises(TissueInnError):
        w.request_pixel(0, 0)
    with pytest.raises(TissueInnError):
        w.export_maps("x.h5")


def test_default_export_paths_sit_next_to_the_image(ws):
    folder = ws.image_path.parent
    assert ws.default_export_path("hdf5") == folder / "cube_maps.h5"
    assert ws.default_export_path("regions_csv") == folder / "cube_regions.csv"
    ws.accept_pixel(ws.compute_pixel(ws.request_pixel(5, 9)))
    assert ws.default_export_path("histograms_csv") == folder / "cube_r5_c9_histograms.csv"

"""Cameras: shipped definitions, measured filter curves from CSV, illumination and sensor response."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tissue_inn.config import Camera, load_camera, load_tissue
from tissue_inn.errors import ConfigError
from tissue_inn.optics.camera import band_integrator
from tissue_inn.optics.forward import ForwardModel

CENTERS = (500.0, 560.0, 600.0)
FWHM = (10.0, 20.0, 15.0)


def _gauss_table(grid: np.ndarray) -> np.ndarray:
    sig = np.asarray(FWHM) / (2 * math.sqrt(2 * math.log(2)))
    return np.exp(-0.5 * ((grid[None, :] - np.asarray(CENTERS)[:, None]) / sig[:, None]) ** 2)


def _write_table_csv(path, grid, table, sep=","):
    lines = [sep.join(["wavelength_nm"] + [f"band{i}" for i in range(len(table))])]
    lines += [sep.join([f"{w:g}"] + [f"{v:.10g}" for v in col]) for w, col in zip(grid, table.T)]
    path.write_text("\n".join(lines) + "\n")


def test_shipped_cameras():
    assert load_camera("spectrocam8").n_bands == 8
    vis = load_camera("generic_vis16")
    assert vis.n_bands == 16 and "GENERIC" in vis.description
    hs = load_camera("hyperspectral100")
    assert hs.n_bands == 100 and hs.band_centers_nm[0] == 500.0 and hs.band_centers_nm[-1] == 995.0
    # every integration wavelength inside the haemoglobin table (<= 1000 nm)
    assert band_integrator(hs, "gauss-hermite", 4).wavelengths_nm.max() <= 1000.0


def test_gaussian_curve_table_reproduces_the_fwhm_definition(tmp_path):
    """Measured curves that are Gaussians must give the same bands as centres + FWHM (on a real spectrum)."""
    grid = np.arange(440.0, 661.0, 1.0)
    _write_table_csv(tmp_path / "curves.csv", grid, _gauss_table(grid))
    (tmp_path / "table.toml").write_text("name='t'\nfilters_csv='curves.csv'\n")
    (tmp_path / "fwhm.toml").write_text(f"name='g'\nband_centers_nm={list(CENTERS)}\nfwhm_nm={list(FWHM)}\n")
    tab, gauss = load_camera(tmp_path / "table.toml"), load_camera(tmp_path / "fwhm.toml")
    assert np.allclose(tab.band_centers_nm, CENTERS, atol=1e-6)  # transmission-weighted mean
    tissue = load_tissue("colon")
    x = tissue.sample_prior(6, torch.Generator().manual_seed(5))
    y_tab = ForwardModel(tissue, tab).bands(x)
    fm = ForwardModel(tissue, gauss)
    dense = band_integrator(gauss, "dense")
    y_dense = dense.integrate(fm.spectrum(x, dense.wavelengths_nm))
    assert float(((y_tab - y_dense) / y_dense).abs().max()) < 2e-3
    y_gh = fm.bands(x)  # 4 Gauss-Hermite nodes per band
    assert float(((y_tab - y_gh) / y_gh).abs().max()) < 2e-2


def test_one_csv_per_band_equals_one_table(tmp_path):
    grid = np.arange(470.0, 631.0, 2.0)
    table = _gauss_table(grid)
    names = []
    for i, row in enumerate(table):
        names.append(f"b{i}.csv")
        _write_table_csv(tmp_path / names[-1], grid, row[None], sep=";")
    _write_table_csv(tmp_path / "all.csv", grid, table, sep="\t")
    (tmp_path / "a.toml").write_text(f"name='a'\nfilters_csv={names}\n")
    (tmp_path / "b.toml").write_text("name='b'\nfilters_csv='all.csv'\n")
    ia, ib = band_integrator(load_camera(tmp_path / "a.toml")), band_integrator(load_camera(tmp_path / "b.toml"))
    assert np.allclose(ia.weights, ib.weights) and np.array_equal(ia.wavelengths_nm, ib.wavelengths_nm)
    # a camera read from CSV keeps its curves inline: the card/dataset copy needs no files
    cam = load_camera(tmp_path / "a.toml")
    assert Camera.from_dict(cam.to_dict()).filter_transmission == cam.filter_transmission


def test_illumination_and_sensor_weight_the_band(tmp_path):
    # one box filter 540-580 nm; a spectrum R = lambda; illumination rising linearly shifts the band value up
    wl = list(range(540, 581, 1))
    rows = [[1.0] * len(wl)]
    (tmp_path / "light.csv").write_text("nm,E\n500,0\n600,1\n")
    (tmp_path / "c.toml").write_text(
        f"name='c'\nband_centers_nm=[560.0]\nfilter_wavelengths_nm={wl}\nfilter_transmission={rows}\n"
        "illumination_csv='light.csv'\nsensor_response={wavelengths_nm=[400.0, 700.0], values=[1.0, 1.0]}\n")
    bi = band_integrator(load_camera(tmp_path / "c.toml"))
    got = float(bi.integrate(bi.wavelengths_nm[None])[0, 0])
    lam = np.arange(540.0, 581.0)
    w = lam - 500.0  # E(lambda) on the trapezoid grid (the ends carry half weight)
    w[0] *= 0.5
    w[-1] *= 0.5
    assert got == pytest.approx(float((lam * w).sum() / w.sum()), rel=1e-12)
    assert got > 560.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name='c'\nband_centers_nm=[500, 600]\nfwhm_nm=[10]\n", "one positive number per band"),
        ("name='c'\nfilters_csv='missing.csv'\n", "not found"),
        ("name='c'\nband_centers_nm=[500]\nfwhm_nm=10\nillumination_csv='l.csv'\n"
         "illumination={wavelengths_nm=[1, 2], values=[1, 1]}\n", "not both"),
    ],
)
def test_bad_camera_files_are_refused(tmp_path, text, fragment):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_camera(tmp_path / "c.toml")


def test_illumination_not_covering_the_bands_is_refused(tmp_path):
    (tmp_path / "c.toml").write_text("name='c'\nband_centers_nm=[500, 650]\nfwhm_nm=10\n"
                                     "illumination={wavelengths_nm=[450.0, 600.0], values=[1.0, 1.0]}\n")
    with pytest.raises(ConfigError, match="illumination covers 450-600"):
        band_integrator(load_camera(tmp_path / "c.toml"))


def test_camera_from_cube_bands_round_trips_through_a_camera_file(tmp_path):
    from tissue_inn.camera_config import camera_from_bands, camera_toml

    cam = camera_from_bands([520.0, 500.0, 540.0, 560.0], name="cube")
    assert cam.band_centers_nm == (500.0, 520.0, 540.0, 560.0) and cam.fwhm_nm == 20.0
    (tmp_path / "cube.toml").write_text(camera_toml(cam))
    again = load_camera(tmp_path / "cube.toml")
    assert again.to_dict() == cam.to_dict()
    hs = load_camera("hyperspectral100")
    (tmp_path / "hs.toml").write_text(camera_toml(hs))
    assert load_camera(tmp_path / "hs.toml").to_dict() == hs.to_dict()


def test_skin_on_the_other_shipped_cameras():
    t = load_tissue("skin")
    x = t.sample_prior(2, torch.Generator().manual_seed(0))
    for name in ("generic_vis16", "hyperspectral100"):
        y = ForwardModel(t, load_camera(name)).bands(x)
        assert y.shape == (2, load_camera(name).n_bands) and bool(torch.all((y > 0) & (y < 1)))

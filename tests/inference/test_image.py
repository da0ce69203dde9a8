"""Streaming image inference, region pooling and the sample image generator."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tissue_inn.errors import BandMismatchError, Cancelled
from tissue_inn.inference.image import infer_image, pooled_region, region_statistics
from tissue_inn.inference.posterior import Posterior
from tissue_inn.io.cube import read_cube
from tissue_inn.io.pixels import valid_mask
from tissue_inn.progress import Progress, run_to_completion

BANDS = [470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0]
STATS = ("mean", "median", "std", "q05", "q95", "iqr", "map", "contraction", "multimodality")


@pytest.fixture(scope="module")
def post(tiny_bundle):
    return Posterior.from_bundle(tiny_bundle, device="cpu")


def _write_cube(path, h=5, w=9, seed=0, bands=BANDS, defects=True):
    rng = np.random.default_rng(seed)
    base = np.linspace(0.05, 0.5, len(bands))
    cube = base * rng.uniform(0.6, 1.4, size=(h, w, 1)) * rng.uniform(0.9, 1.1, size=(h, w, len(bands)))
    cube = cube.astype(np.float32)
    if defects:
        cube[0, 1, 2] = np.nan
        cube[2, 3, :] = 0.0
        cube[4, 8, :] = 1.3  # specular / saturated
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("reflectance", data=cube)
        ds.attrs["wavelengths_nm"] = np.asarray(bands)
    return path


def _run(post, cube, **kw):
    kw.setdefault("predictive", None)
    kw.setdefault("stats", STATS)
    return run_to_completion(infer_image(post, cube, **kw))


def test_masked_pixels_nan_and_counted(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5"))
    res = _run(post, cube, n_draws=32)
    assert res.mask_reasons["nan"] == 1 and res.mask_reasons["non_positive"] == 1
    assert res.mask_reasons["above_max"] == 1 and res.mask_reasons["outside_roi"] == 0
    assert res.mask.sum() == 5 * 9 - 3
    for bad in [(0, 1), (2, 3), (4, 8)]:
        assert not res.mask[bad]
        assert all(np.isnan(m[bad]) for m in res.maps.values())
    assert all(np.all(np.isfinite(m[res.mask])) for m in res.maps.values())
    assert res.attrs["pixels_estimated"] == 42 and res.attrs["mask_reasons"]["nan"] == 1
    assert res.attrs["seed"] == 0 and res.attrs["n_draws"] == 32 and res.attrs["source_sha256"]
    assert res.maps["sao2/median"].dtype == np.float32 and res.complete


def test_maps_agree_with_samples_and_prior_support(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5", defects=False))
    res = _run(post, cube, n_draws=64, seed=5)
    # width 9 < unit size → each row is one seed unit: recompute row 2's samples directly
    y = cube.tile(2, 3, 0, 9)[0].astype(np.float64)
    import torch

    s = post.sample_tensor(torch.as_tensor(y), 64, seed=5, row=2).numpy()
    np.testing.assert_allclose(res.maps["a_mie_1/median"][2], np.median(s[:, :, 2], axis=1), rtol=1e-5)
    np.testing.assert_allclose(res.maps["sao2/mean"][2], s[:, :, 0].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(
        res.maps["sao2/iqr"][2], np.subtract(*np.quantile(s[:, :, 0], [0.75, 0.25], axis=1)), rtol=1e-4, atol=1e-6
    )
    lo, hi = post.prior_bounds[:, 0], post.prior_bounds[:, 1]
    for d, name in enumerate(post.parameter_names):
        for stat in ("q05", "median", "map", "q95"):
            m = res.maps[f"{name}/{stat}"]
            assert np.all(m >= np.float32(lo[d]) - 1e-4 * abs(lo[d])) and np.all(m <= np.float32(hi[d]) * (1 + 1e-6))


def test_tiling_roi_and_determinism_invariance(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5", h=6, w=11))
    a = _run(post, cube, n_draws=32, seed=1, tile_pixels=10_000)
    b = _run(post, cube, n_draws=32, seed=1, tile_pixels=11)  # one row per strip
    c = _run(post, cube, n_draws=32, seed=1, tile_pixels=25)  # two rows per strip
    for k in a.maps:
        np.testing.assert_array_equal(a.maps[k], b.maps[k])
        np.testing.assert_array_equal(a.maps[k], c.maps[k])
    roi = np.zeros((6, 11), bool)
    roi[1:4, 2:7] = True
    r = _run(post, cube, n_draws=32, seed=1, roi_mask=roi)
    np.testing.assert_array_equal(r.maps["sao2/median"][roi & a.mask], a.maps["sao2/median"][roi & a.mask])
    assert np.all(np.isnan(r.maps["sao2/median"][~roi]))
    assert r.mask_reasons["outside_roi"] == (~roi).sum()
    assert r.mask_reasons["non_positive"] == 1 and r.mask_reasons["nan"] == 0  # only ROI pixels counted
    d = _run(post, cube, n_draws=32, seed=2)
    assert not np.allclose(d.maps["sao2/median"][a.mask], a.maps["sao2/median"][a.mask])


def test_progress_reports_and_eta(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5"))
    reports: list[Progress] = []
    run_to_completion(infer_image(post, cube, n_draws=16, predictive=None, tile_pixels=9), reports.append)
    assert reports[-1].done == reports[-1].total == 45
    assert all(p.stage == "infer" for p in reports) and "ETA" in reports[-1].message
    assert [p.done for p in reports] == sorted(p.done for p in reports)


def test_cancel_stops_between_rows(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5", defects=False))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled) as err:
        _run(post, cube, n_draws=16, tile_pixels=9, should_stop=stop)
    part = err.value.partial
    assert not part.complete and part.rows_done == 2
    assert part.mask[:2].all() and not part.mask[2:].any()
    assert np.all(np.isnan(part.maps["sao2/median"][2:]))


def test_band_matching(post, tmp_path):
    bad = read_cube(_write_cube(tmp_path / "bad.h5", bands=[400, 450, 500, 550, 600, 650, 700, 750]))
    with pytest.raises(BandMismatchError) as err:
        _run(post, bad, n_draws=8)
    assert "470" in str(err.value) and "450" in str(err.value)
    # extra bands in another order are dropped / reordered
    rng = np.random.default_rng(0)
    data = rng.uniform(0.05, 0.5, size=(3, 4, 8)).astype(np.float32)
    order = [7, 0, 3, 1, 6, 2, 5, 4]
    extra = np.concatenate([data[:, :, order], np.full((3, 4, 1), np.nan, np.float32)], axis=2)
    with h5py.File(tmp_path / "perm.h5", "w") as f:
        f.create_dataset("cube", data=extra).attrs["wavelengths_nm"] = np.asarray([BANDS[i] for i in order] + [900.0])
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("cube", data=data).attrs["wavelengths_nm"] = np.asarray(BANDS)
    a = _run(post, read_cube(tmp_path / "perm.h5"), n_draws=8)
    b = _run(post, read_cube(tmp_path / "plain.h5"), n_draws=8)
    np.testing.assert_array_equal(a.maps["sao2/median"], b.maps["sao2/median"])
    assert a.mask.all()


def test_predictive_residual_map(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5", h=2, w=3, defects=False))
    res = run_to_completion(infer_image(post, cube, n_draws=16, predictive="median", stats=("median",)))
    r = res.maps["predictive/residual"]
    assert r.shape == (2, 3) and np.all(np.isfinite(r)) and np.all(r >= 0)
    assert res.units["predictive/residual"].startswith("1")


def test_region_pooling(post, tmp_path):
    cube = read_cube(_write_cube(tmp_path / "c.h5"))
    m = np.zeros((5, 9), bool)
    m[0, :4] = True  # contains the NaN pixel (0, 1)
    pooled = pooled_region(post, cube, m, n_draws_per_pixel=10, seed=0)
    assert pooled.shape == (3 * 10, 13)
    res = _run(post, cube, n_draws=16)
    rows = region_statistics(post, cube, {"a": m, "all": np.ones((5, 9), bool)}, n_draws_per_pixel=10, result=res)
    assert len(rows) == 2 * 13
    first = rows[0]
    assert first["region"] == "a" and first["parameter"] == "sao2" and first["n_pixels"] == 4
    assert first["n_valid"] == 3
    assert first["pooled_q05"] <= first["pooled_median"] <= first["pooled_q95"]
    assert first["pooled_mean"] == pytest.approx(pooled[:, 0].mean())
    assert rows[13]["n_valid"] == 42


def test_sample_image_generator(tmp_path):
    from tissue_inn.simulation.sample_image import REGION_LABELS, make_sample_image, write_sample_image

    s = make_sample_image(size=16, seed=0, snr=30, grid_step=15, n_check=2)
    assert s.reflectance.shape == (16, 16, 8) and s.reflectance.dtype == np.float32
    assert len(s.ground_truth) == 13
    from tissue_inn.config import load_tissue

    bounds = load_tissue("colon").prior_bounds()
    for k, (name, arr) in enumerate(s.ground_truth.items()):
        assert np.all(arr >= bounds[k, 0] - 1e-6) and np.all(arr <= bounds[k, 1] + 1e-6), name
    mask, reasons = valid_mask(s.reflectance)
    assert reasons["nan"] == s.attrs["n_nan"] and reasons["non_positive"] == s.attrs["n_dead"]
    assert reasons["above_max"] >= s.attrs["n_saturated"] + 1  # saturated pixels plus the specular highlight
    assert (s.regions == REGION_LABELS["specular"]).any()
    # ischemic patch has lower sO2 than the background
    gt = s.ground_truth["sao2"]
    assert gt[s.regions == REGION_LABELS["ischemic"]].mean() < gt[s.regions == REGION_LABELS["background"]].mean() - 0.3
    path = write_sample_image(s, tmp_path / "s.h5")
    cube = read_cube(path)
    assert cube.shape == (16, 16, 8) and np.allclose(cube.wavelengths_nm, BANDS)
    assert set(cube.ground_truth) == set(s.ground_truth)
    with pytest.raises(FileExistsError):
        write_sample_image(s, path)

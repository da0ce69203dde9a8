"""Tests for tissue_inn.inference.noise: the SNR as an input (parsing, estimation, trained range)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from tissue_inn.errors import SnrError, TissueInnError
from tissue_inn.inference.noise import (
    SnrSpec,
    check_snr_range,
    estimate_measurement_snr,
    estimate_snr_from_frames,
    estimate_snr_from_image,
    find_repeated_frames,
    parse_snr,
    trained_snr_range,
)


def _smooth_field(h=160, w=160, b=8, seed=0):
    """Smooth reflectance in [0.05, 0.75]: a few low-frequency waves per band (no edges)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty((h, w, b))
    for j in range(b):
        f = sum(np.sin(2 * np.pi * (rng.uniform(0.3, 1.5) * xx + rng.uniform(0.3, 1.5) * yy) + rng.uniform(0, 6))
                for _ in range(3))
        out[..., j] = 0.4 + 0.1 * f + 0.05 * j / b
    return out


def _noisy(clean, snr, seed=1):
    """The camera noise model: y = R (1 + ε / SNR), clipped like NoiseModel.apply to [1e-5, 1]."""
    eps = np.random.default_rng(seed).standard_normal(clean.shape)
    return np.clip(clean * (1 + eps / np.asarray(snr)), 1e-5, 1.0)


# ------------------------------------------------------------------ estimation from one image


@pytest.mark.parametrize("snr", [12.0, 40.0])
def test_image_estimate_within_20_percent_on_a_smooth_field(snr):
    est = estimate_snr_from_image(_noisy(_smooth_field(), snr))
    assert abs(est.scalar() - snr) < 0.2 * snr
    assert abs(est.scalar() - snr) < 0.08 * snr  # in fact much closer on a smooth field
    assert est.kind == "per_band" and est.stderr is not None and 0 < est.stderr < 0.1 * snr
    assert est.flags == () and "estimated from the image" in est.describe()


@pytest.mark.parametrize("snr", [12.0, 40.0])
def test_image_estimate_on_the_sample_image_regenerated_at_known_snr(snr):
    from tissue_inn.simulation.sample_image import make_sample_image

    # 64 px with vessels, an ischemic patch, a highlight and dead/NaN/saturated pixels (skipped)
    sample = make_sample_image(size=64, seed=3, snr=snr, grid_step=32, n_check=0)
    est = estimate_snr_from_image(sample.reflectance)
    assert abs(est.scalar() - snr) < 0.2 * snr


def test_per_band_snr_is_recovered_band_by_band():
    truth = np.array([8.0, 12.0, 20.0, 30.0, 45.0, 20.0, 15.0, 25.0])
    est = estimate_snr_from_image(_noisy(_smooth_field(), truth))
    np.testing.assert_allclose(est.per_band(8), truth, rtol=0.2)
    # the effective SNR is the RMS relative noise over bands, dominated by the noisiest band
    assert est.scalar() < np.median(truth)


def test_image_estimate_reads_a_cube_tile_by_tile(tmp_path):
    from tissue_inn.io.cube import read_cube

    np.save(tmp_path / "c.npy", _noisy(_smooth_field(96, 96), 20.0).astype(np.float32))
    est = estimate_snr_from_image(read_cube(tmp_path / "c.npy"))
    assert abs(est.scalar() - 20.0) < 0.2 * 20.0


def test_textured_and_tiny_images_are_flagged():
    rng = np.random.default_rng(5)
    texture = rng.standard_normal((160, 160, 1))
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    k /= k.sum()
    for axis in (0, 1):  # blur: structure at the 2–4 pixel scale
        texture = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, texture)
    clean = _smooth_field(160, 160, 1) * np.exp(0.6 * texture / texture.std())
    est = estimate_snr_from_image(_noisy(clean, 40.0))
    assert "textured" in est.flags and "underestimated" in est.describe()
    tiny = estimate_snr_from_image(_noisy(_smooth_field(12, 12, 2), 20.0))
    assert "too_small" in tiny.flags
    with pytest.raises(SnrError, match="give --snr"):
        estimate_snr_from_image(np.full((4, 4, 2), np.nan))


# ------------------------------------------------------------------ repeated frames


def test_repeated_frames_estimate_even_on_a_textured_scene(tmp_path):
    rng = np.random.default_rng(2)
    scene = rng.uniform(0.05, 0.8, (48, 40, 4))  # every pixel different: hopeless for the image estimator
    frames = _noisy(np.broadcast_to(scene, (6, *scene.shape)), 25.0, seed=3)
    est = estimate_snr_from_frames(frames)
    assert abs(est.scalar() - 25.0) < 0.1 * 25.0 and "6 repeated frames" in est.source
    p = tmp_path / "m.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("reflectance", data=frames.mean(axis=0))
        f.create_dataset("raw/frames", data=frames, chunks=(6, 16, 16, 4))
    assert find_repeated_frames(p) == "raw/frames"
    from_file = estimate_measurement_snr(p, cube=frames.mean(axis=0))
    assert from_file.source == est.source and abs(from_file.scalar() - est.scalar()) < 1e-9
    with pytest.raises(SnrError, match="at least 2 frames"):
        estimate_snr_from_frames(frames[:1])


def test_without_frames_the_image_is_used(tmp_path):
    p = tmp_path / "m.h5"
    img = _noisy(_smooth_field(64, 64, 3), 30.0)
    with h5py.File(p, "w") as f:
        f.create_dataset("reflectance", data=img)
    assert find_repeated_frames(p) is None
    assert estimate_measurement_snr(p, cube=img).source == "estimated from the image"


# ------------------------------------------------------------------ parsing


def test_parse_number_list_and_arrays():
    s = parse_snr("20")
    assert s.kind == "scalar" and s.scalar() == 20.0 and s.per_pixel(2, 3).shape == (2, 3)
    b = parse_snr("10, 20,40")
    assert b.kind == "per_band" and b.per_band(3).tolist() == [10.0, 20.0, 40.0]
    assert b.scalar() == pytest.approx(1 / np.sqrt(np.mean([1 / 100, 1 / 400, 1 / 1600])))
    assert parse_snr(15).scalar() == 15.0 and parse_snr([5, 6]).kind == "per_band"
    with pytest.raises(SnrError, match="2 per-band SNR values, the image has 3 bands"):
        parse_snr("20,30").check_shape(4, 4, 3)


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".tif"])
def test_parse_map_files(tmp_path, suffix):
    snr_map = np.linspace(10, 30, 6 * 5).reshape(6, 5).astype(np.float32)
    p = tmp_path / f"snr{suffix}"
    if suffix == ".npy":
        np.save(p, snr_map)
    elif suffix == ".h5":
        with h5py.File(p, "w") as f:
            f.create_dataset("snr", data=snr_map)
            f.create_dataset("other", data=np.ones(3))
    else:
        tifffile.imwrite(p, snr_map)
    spec = parse_snr(str(p))
    assert spec.kind == "map" and spec.source == f"map snr{suffix}"
    np.testing.assert_allclose(spec.per_pixel(6, 5), snr_map)
    spec.check_shape(6, 5, 8)
    with pytest.raises(SnrError, match="SNR map is 6 × 5, the image needs 7 × 5"):
        spec.check_shape(7, 5, 8)
    assert spec.to_dict()["map_shape"] == [6, 5]


def test_map_per_band_and_nan_filling(tmp_path):
    m = np.full((4, 4, 2), 20.0)
    m[0, 0, 0] = np.nan
    np.save(tmp_path / "m.npy", m)
    spec = parse_snr(tmp_path / "m.npy")
    assert spec.flags == ("filled_nan",) and spec.per_band(2).tolist() == [20.0, 20.0]
    assert "1 NaN/inf" in spec.describe()


@pytest.mark.parametrize(
    "value, words",
    [
        ("abc", "neither a number"),
        ("0", "> 0"),
        ("-5", "> 0"),
        ("inf", "finite"),
        ("20,x", "comma-separated"),
        ("20,-1", "> 0"),
    ],
)
def test_parse_errors(value, words):
    with pytest.raises(SnrError) as err:
        parse_snr(value)
    assert words in str(err.value) and isinstance(err.value, TissueInnError)


def test_unreadable_or_wrong_map_files(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"garbage")
    with pytest.raises(SnrError, match="x.npy"):
        parse_snr(str(tmp_path / "x.npy"))
    np.save(tmp_path / "v.npy", np.ones((2, 2, 2, 2)))
    with pytest.raises(SnrError, match="H × W or H × W × bands"):
        parse_snr(str(tmp_path / "v.npy"))
    (tmp_path / "s.txt").write_text("20")
    with pytest.raises(SnrError, match=".npy, HDF5 or TIFF"):
        parse_snr(str(tmp_path / "s.txt"))


# ------------------------------------------------------------------ trained range


def test_trained_range_from_card_and_warning():
    card = {"estimator": {"snr_range": [10.0, 50.0]}}
    assert trained_snr_range(card) == (10.0, 50.0)
    assert trained_snr_range({"noise_model": {"snr_min": 5, "snr_max": 30}}) == (5.0, 30.0)
    assert trained_snr_range({}) is None
    assert check_snr_range(20.0, card, "colon_default") is None
    msg = check_snr_range(parse_snr("80"), card, "colon_default")
    assert "80" in msg and "colon_default" in msg and "10–50" in msg
    assert check_snr_range(8.0, None) is None
    m = SnrSpec("map", np.array([[5.0, 20.0], [20.0, 20.0]]), "map m.npy")
    assert "25 % of pixels" in check_snr_range(m, card)

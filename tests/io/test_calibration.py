"""Tests for tissue_inn.io.calibration: white/dark references, saturation on raw counts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tissue_inn.errors import DataFileError
from tissue_inn.io.calibration import to_reflectance
from tissue_inn.io.cube import read_cube


def test_to_reflectance_math_and_white_le_dark():
    raw = np.array([[[10.0, 50.0, 7.0]]])
    white = np.array([110.0, 90.0, 5.0])
    dark = np.array([[[10.0, 10.0, 5.0]]])
    refl, n_bad = to_reflectance(raw, white, dark)
    np.testing.assert_allclose(refl[0, 0, :2], [0.0, 0.5])
    assert np.isnan(refl[0, 0, 2]) and n_bad == 1


def test_read_cube_with_reference_files(tmp_path):
    rng = np.random.default_rng(1)
    refl = rng.uniform(0.1, 0.9, (6, 4, 3))
    dark = rng.uniform(90, 110, (6, 4, 3))
    white = rng.uniform(2000, 3000, 3)  # one white level per band
    raw = dark + refl * (white - dark)
    np.save(tmp_path / "raw.npy", raw.astype(np.float32))
    np.save(tmp_path / "white.npy", white)  # B-vector
    with h5py.File(tmp_path / "dark.h5", "w") as f:
        f.create_dataset("cube", data=dark)
    c = read_cube(tmp_path / "raw.npy", white=tmp_path / "white.npy", dark=tmp_path / "dark.h5")
    np.testing.assert_allclose(c.tile(1, 5, 0, 4), refl[1:5], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(c.data), refl, rtol=2e-4, atol=2e-5)
    with pytest.raises(DataFileError, match="white reference"):
        read_cube(tmp_path / "raw.npy", white=np.ones((2, 4, 3)))


def test_saturation_checked_on_raw_counts(tmp_path):
    raw = np.full((3, 3, 2), 1000.0, np.float32)
    raw[1, 1, 0] = 4095.0
    np.save(tmp_path / "raw.npy", raw)
    c = read_cube(tmp_path / "raw.npy", white=np.full(2, 5000.0), dark=np.zeros(2), saturation=4095)
    tile, mask, reasons = c.valid_tile(0, 3, 0, 3)
    assert reasons == {"nan": 0, "non_positive": 0, "saturated": 1, "above_max": 0}
    assert not mask[1, 1] and mask.sum() == 8
    np.testing.assert_allclose(tile[0, 0], [0.2, 0.2])

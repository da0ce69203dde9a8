"""Tests for tissue_inn.io.bands: matching a cube's bands to a model's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tissue_inn.errors import BandMismatchError
from tissue_inn.io.bands import match_bands
from tissue_inn.io.cube import Cube

WL = np.array([500.0, 540.0, 560.0, 580.0, 620.0])



def test_match_bands_exact_within_tolerance():
    idx = match_bands(WL + np.array([0.5, -1.0, 0, 1.9, 0]), WL)
    np.testing.assert_array_equal(idx, np.arange(WL.size))


def test_match_bands_subset_of_larger_cube():
    cube_wl = np.arange(450.0, 700.0, 10.0)
    idx = match_bands(cube_wl, [620.0, 500.0, 561.0])
    np.testing.assert_allclose(cube_wl[idx], [620.0, 500.0, 560.0])


def test_match_bands_mismatch_names_both_lists():
    with pytest.raises(BandMismatchError) as err:
        match_bands([500.0, 540.0, 600.0], [500.0, 545.0, 600.0, 650.0])
    msg = str(err.value)
    assert "[500, 540, 600] nm" in msg and "[500, 545, 600, 650] nm" in msg
    assert "missing [545, 650] nm" in msg


def test_match_bands_without_wavelengths():
    notes: list[str] = []
    with pytest.warns(UserWarning, match="no wavelengths"):
        idx = match_bands(None, WL, n_cube_bands=5, warnings_out=notes)
    np.testing.assert_array_equal(idx, np.arange(5))
    assert len(notes) == 1
    with pytest.raises(BandMismatchError, match="pass the cube's wavelengths"):
        match_bands(None, WL, n_cube_bands=4)
    cube = Cube(data=np.ones((2, 2, 4), np.float32))
    with pytest.raises(BandMismatchError, match="has 4 bands"):
        match_bands(cube, WL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        match_bands(Cube(data=np.ones((2, 2, 5), np.float32)), WL)

"""The example reader added with one module and one registry line: a CSV of spectra."""

from __future__ import annotations

import numpy as np
import pytest

from tissue_inn.errors import DataFileError
from tissue_inn.io.cube import read_cube
from tissue_inn.io.readers import file_dialog_filter, supported_formats_text


def test_csv_rows_become_pixels_with_header_wavelengths(tmp_path):
    p = tmp_path / "spectra.csv"
    p.write_text("470,480,511,560\n0.21,0.25,0.31,0.42\n0.19,0.22,0.30,0.40\n0.5,0.5,0.5,0.5\n")
    cube = read_cube(p)
    assert cube.shape == (3, 1, 4)
    np.testing.assert_allclose(cube.wavelengths_nm, [470, 480, 511, 560])
    np.testing.assert_allclose(cube.tile(1, 2, 0, 1)[0, 0], [0.19, 0.22, 0.30, 0.40], rtol=1e-6)
    assert "*.csv" in file_dialog_filter() and "CSV spectra (.csv)" in supported_formats_text()


def test_csv_with_ragged_rows_or_text_is_refused(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("470,480,511\n0.2,0.3\n")
    with pytest.raises(DataFileError, match="bad.csv"):
        read_cube(p)
    p.write_text("red,green\n0.2,0.3\n")
    with pytest.raises(DataFileError, match="header of wavelengths"):
        read_cube(p)

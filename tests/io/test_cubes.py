"""Tests for tissue_inn.io.cube and the readers: round trips per format, tiles, errors."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
import tifffile

from tissue_inn.errors import DataFileError
from tissue_inn.io.cube import read_cube

WL = np.array([500.0, 540.0, 560.0, 580.0, 620.0])


@pytest.fixture()
def cube_arr():
    rng = np.random.default_rng(42)
    return (0.05 + 0.9 * rng.random((23, 17, WL.size))).astype(np.float32)


def _same(cube, arr):
    np.testing.assert_array_equal(np.asarray(cube.data), arr)
    assert cube.shape == arr.shape


# ------------------------------------------------------------------ round trips


def test_hdf5_dataset_path_wavelengths_ground_truth(tmp_path, cube_arr):
    p = tmp_path / "m.h5"
    gt = np.linspace(0, 1, 23 * 17).reshape(23, 17)
    with h5py.File(p, "w") as f:
        g = f.create_group("scan/a")
        g.create_dataset("frame", data=cube_arr * 2)
        g.create_dataset("wavelengths_nm", data=WL)
        f.create_dataset("other", data=cube_arr)  # a second 3-D dataset: explicit choice needed
        f.create_group("ground_truth").create_dataset("sao2", data=gt)
    with pytest.raises(DataFileError, match="several 3-D datasets"):
        read_cube(p)
    c = read_cube(p, dataset="scan/a/frame")
    _same(c, cube_arr * 2)
    np.testing.assert_allclose(c.wavelengths_nm, WL)
    np.testing.assert_array_equal(c.ground_truth["sao2"], gt)
    assert c.metadata["dataset"] == "/scan/a/frame"
    with pytest.raises(DataFileError, match="no dataset 'nope'"):
        read_cube(p, dataset="nope")


def test_hdf5_default_reflectance_and_um_attribute(tmp_path, cube_arr):
    p = tmp_path / "m.hdf5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("reflectance", data=cube_arr)
        ds.attrs["wavelengths"] = WL / 1000.0
        ds.attrs["wavelength_units"] = "µm"
        f.create_dataset("dark_frame", data=cube_arr[..., 0])  # 2-D: not a candidate
    c = read_cube(p)
    _same(c, cube_arr)
    np.testing.assert_allclose(c.wavelengths_nm, WL)


def test_npy_sidecar_and_argument(tmp_path, cube_arr):
    p = tmp_path / "x.npy"
    np.save(p, cube_arr.astype(np.float64))
    c = read_cube(p)
    assert c.wavelengths_nm is None
    _same(c, cube_arr)  # float64 on disk → float32 out
    assert c.tile(0, 2, 0, 2).dtype == np.float32
    (tmp_path / "x.wavelengths.json").write_text(json.dumps({"wavelengths_nm": WL.tolist()}))
    np.testing.assert_allclose(read_cube(p).wavelengths_nm, WL)
    with pytest.raises(DataFileError, match="3 wavelengths given for a cube with 5 bands"):
        read_cube(p, wavelengths_nm=[1, 2, 3])
    with pytest.warns(UserWarning, match="differ from the file"):
        np.testing.assert_allclose(read_cube(p, wavelengths_nm=WL + 1).wavelengths_nm, WL + 1)


def test_npy_text_sidecar(tmp_path, cube_arr):
    p = tmp_path / "y.npy"
    np.save(p, cube_arr)
    (tmp_path / "y.wavelengths.txt").write_text("# band centres\n500, 540\n560 580 620\n")
    np.testing.assert_allclose(read_cube(p).wavelengths_nm, WL)


@pytest.mark.parametrize("layout", ["pages", "hwc"])
def test_tiff_round_trip(tmp_path, cube_arr, layout):
    p = tmp_path / f"t_{layout}.tif"
    if layout == "pages":
        with tifffile.TiffWriter(p) as tw:
            for b in range(WL.size):
                desc = json.dumps({"wavelengths_nm": WL.tolist()}) if b == 0 else None
                tw.write(cube_arr[..., b], photometric="minisblack", description=desc, metadata=None)
    else:
        tifffile.imwrite(
            p, cube_arr, photometric="minisblack", planarconfig="contig", metadata={"wavelengths_nm": WL.tolist()}
        )
    c = read_cube(p)
    _same(c, cube_arr)
    np.testing.assert_allclose(c.wavelengths_nm, WL)


def test_envi_round_trip_micrometres(tmp_path, cube_arr):
    from spectral.io import envi

    hdr = tmp_path / "e.hdr"
    meta = {"wavelength": [f"{w / 1000:.3f}" for w in WL], "wavelength units": "Micrometers"}
    envi.save_image(str(hdr), cube_arr, dtype=np.float32, interleave="bil", metadata=meta, ext=".raw")
    c = read_cube(hdr)
    _same(c, cube_arr)
    np.testing.assert_allclose(c.wavelengths_nm, WL)
    assert c.source_path.name == "e.raw"
    c2 = read_cube(tmp_path / "e.raw")  # opening the binary finds the header
    _same(c2, cube_arr)


def test_envi_integer_bsq_ignore_value(tmp_path):
    from spectral.io import envi

    counts = np.arange(4 * 3 * 2, dtype=np.uint16).reshape(4, 3, 2) + 10
    counts[2, 1, 0] = 0
    envi.save_image(str(tmp_path / "i.hdr"), counts, interleave="bsq", metadata={"data ignore value": 0}, ext=".img")
    c = read_cube(tmp_path / "i.hdr", check_values=False)  # raw counts, read as stored
    assert c.wavelengths_nm is None
    got = np.asarray(c.data)
    assert np.isnan(got[2, 1, 0]) and np.count_nonzero(np.isnan(got)) == 1
    np.testing.assert_array_equal(got[0], counts[0].astype(np.float32))


def test_tiles_equal_full_read(tmp_path, cube_arr):
    p = tmp_path / "t.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("cube", data=cube_arr, chunks=(4, 4, WL.size))
    c = read_cube(p)
    parts = [t for _, _, t in c.iter_tiles(5)]
    assert [t.shape[0] for t in parts] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate(parts, axis=0), cube_arr)
    np.testing.assert_array_equal(c.tile(3, 9, 2, 11), cube_arr[3:9, 2:11])
    np.testing.assert_array_equal(c.data[::3, 10:2:-2, 1], cube_arr[::3, 10:2:-2, 1])
    np.testing.assert_array_equal(c.data[-1, 4], cube_arr[-1, 4])
    with pytest.raises(IndexError):
        c.tile(0, 24, 0, 1)


def test_source_sha256_streams_file(tmp_path, cube_arr):
    p = tmp_path / "x.npy"
    np.save(p, cube_arr)
    assert read_cube(p).source_sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("name", ["x.h5", "x.tif", "x.npy"])
def test_corrupt_files_raise_data_file_error(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"this is not a data file at all\x00\x01" * 7)
    with pytest.raises(DataFileError, match=name.replace(".", r"\.")):
        read_cube(p)


def test_truncated_npy(tmp_path, cube_arr):
    p = tmp_path / "t.npy"
    np.save(p, cube_arr)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DataFileError, match="t.npy"):
        read_cube(p)


def test_wrong_dimensions_and_unsupported(tmp_path):
    np.save(tmp_path / "flat.npy", np.ones((4, 4)))
    with pytest.raises(DataFileError, match="2 dimensions, expected H × W × bands"):
        read_cube(tmp_path / "flat.npy")
    (tmp_path / "x.xyz").write_text("hello")
    with pytest.raises(DataFileError, match="unsupported"):
        read_cube(tmp_path / "x.xyz")
    with pytest.raises(DataFileError, match="not found"):
        read_cube(tmp_path / "missing.h5")

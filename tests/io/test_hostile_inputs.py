"""A corpus of hostile or careless inputs (issue 10): each is refused with a clear error naming the fix,
or handled correctly, and never hangs or allocates what the file cannot hold."""

from __future__ import annotations

import os
import sys

import h5py
import numpy as np
import pytest

from tissue_inn.errors import DataFileError, NoUsablePixelsError, TissueInnError
from tissue_inn.io import cube as cube_module
from tissue_inn.io.cube import read_cube
from tissue_inn.io.pixels import count_usable_pixels, require_usable_pixels

WL = np.array([470.0, 511.0, 560.0, 600.0, 660.0])


def _smooth_reflectance(h=12, w=10, b=WL.size, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.8, (h, w, b)).astype(np.float32)


# ------------------------------------------------------------------ a header that lies about its size


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_hdf5_claiming_a_huge_cube_in_a_few_kb_is_refused_before_allocation(tmp_path, compression):
    p = tmp_path / "huge.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("reflectance", shape=(100_000, 100_000, 8), dtype="f4", chunks=(64, 64, 8),
                         compression=compression)
        f["reflectance"][:2, :2, :] = 0.5  # one chunk written
    assert p.stat().st_size < 200_000
    with pytest.raises(DataFileError) as err:
        read_cube(p)
    msg = str(err.value)
    assert "huge.h5" in msg and "100000 × 100000 × 8" in msg and "stores only 1 of its" in msg


def test_an_unwritten_contiguous_dataset_is_refused(tmp_path):
    p = tmp_path / "empty.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("cube", shape=(3000, 3000, 8), dtype="f4")  # storage allocated on first write
    with pytest.raises(DataFileError, match="stores only 0 bytes of its data"):
        read_cube(p)


def test_a_fully_written_compressed_cube_still_opens_even_if_mostly_zero(tmp_path):
    p = tmp_path / "ok.h5"
    arr = _smooth_reflectance(64, 64)
    sparse = np.zeros((256, 256, WL.size), np.float32)  # compresses ~900:1 with gzip, all chunks written
    sparse[:8, :8] = 0.5
    with h5py.File(p, "w") as f:
        f.create_dataset("reflectance", data=arr, chunks=(16, 16, WL.size), compression="gzip")
        f.create_dataset("masked", data=sparse, chunks=(64, 64, WL.size), compression="gzip")
    np.testing.assert_array_equal(np.asarray(read_cube(p).data), arr)
    assert read_cube(p, dataset="masked").shape == sparse.shape


def test_more_pixels_than_the_limit_are_refused(tmp_path, monkeypatch):
    p = tmp_path / "big.npy"
    np.save(p, _smooth_reflectance(8, 8))
    monkeypatch.setattr(cube_module, "MAX_PIXELS", 63)
    with pytest.raises(DataFileError, match="8 × 8 pixels.*crop it into tiles"):
        read_cube(p)


# ------------------------------------------------------------------ values that are not reflectance


def test_percent_reflectance_is_refused_with_the_scale_fix(tmp_path):
    p = tmp_path / "pct.npy"
    refl = _smooth_reflectance()
    np.save(p, refl * 100.0)
    with pytest.raises(DataFileError, match=r"looks like percent.*pass --scale 0\.01"):
        read_cube(p)
    cube = read_cube(p, scale=0.01)
    np.testing.assert_allclose(np.asarray(cube.data), refl, rtol=1e-6)
    assert cube.metadata["scale"] == 0.01
    with pytest.raises(DataFileError, match="still above 1"):
        read_cube(p, scale=0.5)


def test_integer_raw_counts_without_references_are_refused(tmp_path):
    p = tmp_path / "counts.npy"
    refl = _smooth_reflectance()
    dark = np.full(WL.size, 60.0)
    white = np.full(WL.size, 3900.0)
    np.save(p, np.round(dark + refl * (white - dark)).astype(np.uint16))
    with pytest.raises(DataFileError, match=r"raw counts: give --white and --dark \(or --scale"):
        read_cube(p)
    cube = read_cube(p, white=white, dark=dark)
    np.testing.assert_allclose(np.asarray(cube.data), refl, atol=1e-3)
    with pytest.raises(DataFileError, match="either a white reference"):
        read_cube(p, white=white, scale=0.001)


def test_reflectance_in_0_1_with_a_few_highlights_is_accepted(tmp_path):
    p = tmp_path / "refl.npy"
    refl = _smooth_reflectance()
    refl[:2] = 1.3  # specular rows: masked later, not a reason to refuse the file
    np.save(p, refl)
    assert read_cube(p).shape == refl.shape


# ------------------------------------------------------------------ references in another band order


def _write_h5(path, arr, wl=None):
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("cube", data=arr)
        if wl is not None:
            ds.attrs["wavelengths_nm"] = wl


def test_white_reference_stored_in_another_band_order_is_matched_by_wavelength(tmp_path):
    refl = _smooth_reflectance()
    white = np.array([4000.0, 3000.0, 2000.0, 1500.0, 1000.0])  # very different per band
    raw = refl * white
    _write_h5(tmp_path / "raw.h5", raw, WL)
    order = np.array([3, 0, 4, 1, 2])
    _write_h5(tmp_path / "white.h5", np.broadcast_to(white[order], (1, 1, WL.size)).copy(), WL[order])
    cube = read_cube(tmp_path / "raw.h5", white=tmp_path / "white.h5")
    np.testing.assert_allclose(np.asarray(cube.data), refl, rtol=1e-5)
    assert "matched by wavelength" in cube.metadata["white_reference"]


def test_reference_with_more_bands_gives_the_cube_bands(tmp_path):
    refl = _smooth_reflectance()
    white_wl = np.array([450.0, 470.0, 500.0, 511.0, 560.0, 600.0, 660.0, 700.0])
    white = np.linspace(1000.0, 4000.0, white_wl.size)
    _write_h5(tmp_path / "raw.h5", refl * white[[1, 3, 4, 5, 6]], WL)
    _write_h5(tmp_path / "white.h5", white.reshape(1, 1, -1), white_wl)
    np.testing.assert_allclose(np.asarray(read_cube(tmp_path / "raw.h5", white=tmp_path / "white.h5").data), refl,
                               rtol=1e-5)


def test_reference_without_wavelengths_and_other_band_count_is_refused(tmp_path):
    _write_h5(tmp_path / "raw.h5", _smooth_reflectance() * 2000.0, WL)
    np.save(tmp_path / "white.npy", np.full(7, 3000.0))
    with pytest.raises(DataFileError, match=r"white reference .* has 7 bands and no wavelengths; the cube has 5 bands"):
        read_cube(tmp_path / "raw.h5", white=tmp_path / "white.npy")


def test_reference_whose_wavelengths_miss_cube_bands_is_refused(tmp_path):
    _write_h5(tmp_path / "raw.h5", _smooth_reflectance() * 2000.0, WL)
    _write_h5(tmp_path / "white.h5", np.full((1, 1, 5), 3000.0), WL + 25.0)
    with pytest.raises(DataFileError, match="white reference .* bands do not fit the cube's"):
        read_cube(tmp_path / "raw.h5", white=tmp_path / "white.h5")


# ------------------------------------------------------------------ not a regular file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "cube.h5"
    os.mkfifo(fifo)  # opening it for reading would block forever: the test would hang, not fail
    with pytest.raises(DataFileError, match="named pipe"):
        read_cube(fifo)
    np.save(tmp_path / "raw.npy", _smooth_reflectance() * 2000.0)
    with pytest.raises(DataFileError, match="named pipe"):
        read_cube(tmp_path / "raw.npy", white=fifo)


def test_folder_and_device_are_refused(tmp_path):
    (tmp_path / "folder.h5").mkdir()
    with pytest.raises(DataFileError, match="is a folder"):
        read_cube(tmp_path / "folder.h5")
    if sys.platform.startswith("linux"):
        with pytest.raises(DataFileError, match="device"):
            read_cube("/dev/null")


# ------------------------------------------------------------------ nothing usable


def test_image_with_no_usable_pixel_is_refused_naming_the_counts(tmp_path):
    arr = np.full((4, 5, WL.size), 0.4, np.float32)
    arr[0] = np.nan  # 5 NaN
    arr[1:3] = -0.1  # 10 ≤ 0
    arr[3, :, 2] = 4095.0  # 5 saturated (raw level)
    np.save(tmp_path / "dead.npy", arr)
    cube = read_cube(tmp_path / "dead.npy", saturation=4095.0)
    n_usable, counts = count_usable_pixels(cube)
    assert n_usable == 0 and counts == {"nan": 5, "non_positive": 10, "saturated": 5, "above_max": 0}
    with pytest.raises(NoUsablePixelsError) as err:
        require_usable_pixels(counts, n_usable, name="dead.npy")
    msg = str(err.value)
    assert isinstance(err.value, TissueInnError) and err.value.counts == counts
    assert "dead.npy" in msg and "5 NaN" in msg and "10 ≤ 0" in msg and "5 saturated" in msg


def test_one_usable_pixel_is_enough():
    require_usable_pixels({"nan": 19, "non_positive": 0, "saturated": 0, "above_max": 0}, 1)

"""Loading images and models into the workspace: band checks, refusals that keep the state, usable
pixels and the reason for each masked one."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import BANDS_NM, write_cube

from tissue_inn.errors import BandMismatchError, DataFileError
from tissue_inn.workspace import Workspace, check_bands
from tissue_inn.workspace.images import image_filter, image_suffixes, load_image

COLON = ("sao2", "vhb_1", "a_mie_1", "g_1", "d_1", "vhb_2", "a_mie_2", "g_2", "d_2", "vhb_3", "a_mie_3", "g_3", "d_3")


@pytest.fixture()
def cube_path(tmp_path):
    return write_cube(tmp_path / "cube.h5")


def test_check_bands_reorders_and_names_the_difference():
    idx = check_bands([700, 660, 600, 580, 560, 511, 480, 470], BANDS_NM)
    assert list(idx) == [7, 6, 5, 4, 3, 2, 1, 0]
    with pytest.raises(BandMismatchError) as err:
        check_bands([b + 10 for b in BANDS_NM], BANDS_NM)
    msg = str(err.value)
    assert "470" in msg and "480" in msg and "model" in msg and "image" in msg


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


def test_masked_pixels_carry_their_reason(tmp_path):
    path = write_cube(tmp_path / "masked.h5")
    with h5py.File(path, "r+") as f:
        f["reflectance"][1, 2, :] = np.nan
        f["reflectance"][3, 4, 5] = 0.0
        f["reflectance"][5, 6, 0] = 1.7
    img = load_image(path)
    assert img.valid.sum() == 12 * 16 - 3
    assert "NaN" in img.mask_reason(1, 2)
    assert "≤ 0" in img.mask_reason(3, 4)
    assert "above 1" in img.mask_reason(5, 6)
    assert img.mask_reason(0, 0) is None
    assert img.counts["nan"] == 1 and img.counts["non_positive"] == 1 and img.counts["above_max"] == 1
    assert img.ground_truth_at(2, 8)["sao2"] == pytest.approx(0.3 + 0.6 * 8 / 16)


def test_reader_list_drives_the_filter_and_suffixes():
    assert ".h5" in image_suffixes() and ".npy" in image_suffixes() and ".tif" in image_suffixes()
    assert image_filter().startswith("Multispectral images (") and "*.h5" in image_filter()


def test_regions_carry_over_to_an_image_of_the_same_size(tiny_bundle, cube_path, tmp_path):
    w = Workspace()
    w.load_model(tiny_bundle)
    w.load_image(cube_path)
    w.add_region("rect", {"x": 0, "y": 0, "w": 4, "h": 3})
    w.load_image(write_cube(tmp_path / "next.h5", seed=5))
    assert list(w.regions) == ["R1"] and w.regions["R1"].n_pixels == 12
    w.load_image(write_cube(tmp_path / "small.h5", h=8, w=8))
    assert w.regions == {}

"""Tests for tissue_inn.io.maps: HDF5/TIFF/PNG/CSV writers, atomicity, overwrite protection."""

from __future__ import annotations

import csv
import json
import os

import h5py
import numpy as np
import pytest
import tifffile
from matplotlib.image import imread

from tissue_inn.errors import OutputExistsError, TissueInnError
from tissue_inn.io.maps import (
    read_map_units,
    read_maps_hdf5,
    read_maps_tiff,
    write_csv,
    write_map_png,
    write_maps_hdf5,
    write_maps_tiff,
)


@pytest.fixture()
def maps():
    rng = np.random.default_rng(3)
    return {
        "sao2/median": rng.random((9, 13)).astype(np.float32),
        "sao2/iqr": rng.random((9, 13)),
        "vhb_1/median": rng.random((9, 13)).astype(np.float32),
    }


UNITS = {"sao2": "fraction", "vhb_1": "fraction"}


def _no_leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def test_hdf5_round_trip(tmp_path, maps):
    mask = np.ones((9, 13), bool)
    mask[0, :4] = False
    card = {"name": "m", "bands_nm": [500, 560], "training": {"seed": 7, "loss": None}}
    attrs = {"model_card": card, "source_file": "x.h5", "source_sha256": "ab" * 32, "draws": 200, "seed": 11}
    p = write_maps_hdf5(tmp_path / "out.h5", maps, attrs=attrs, mask=mask, units=UNITS)
    got, got_attrs, got_mask = read_maps_hdf5(p)
    assert set(got) == set(maps)
    for k in maps:
        np.testing.assert_allclose(got[k], maps[k], rtol=1e-7)
        assert got[k].dtype == np.float32
    assert got_attrs == attrs
    np.testing.assert_array_equal(got_mask, mask)
    with h5py.File(p, "r") as f:
        ds = f["maps/sao2/median"]
        assert (ds.attrs["parameter"], ds.attrs["statistic"], ds.attrs["unit"]) == ("sao2", "median", "fraction")
        assert ds.compression == "gzip"
        assert isinstance(f.attrs["model_card"], str) and json.loads(f.attrs["model_card"]) == card
    assert read_map_units(p)["vhb_1/median"] == "fraction"


def test_hdf5_plain_key_round_trips(tmp_path):
    p = write_maps_hdf5(tmp_path / "k.h5", {"sao2": np.eye(3)}, units={"sao2": "fraction"})
    got, attrs, mask = read_maps_hdf5(p)
    assert list(got) == ["sao2"] and mask is None and attrs == {}
    np.testing.assert_array_equal(got["sao2"], np.eye(3))
    with h5py.File(p, "r") as f:
        assert f["maps/sao2/value"].attrs["statistic"] == "value"


def test_hdf5_rejects_bad_maps(tmp_path, maps):
    with pytest.raises(ValueError, match="shape"):
        write_maps_hdf5(tmp_path / "a.h5", {**maps, "x/y": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="H × W"):
        write_maps_hdf5(tmp_path / "a.h5", {"x/y": np.zeros((2, 2, 2))})
    assert not (tmp_path / "a.h5").exists()


def test_tiff_pages_labelled(tmp_path, maps):
    mask = np.ones((9, 13), bool)
    p = write_maps_tiff(tmp_path / "out.tif", maps, UNITS, mask=mask)
    with tifffile.TiffFile(p) as tif:
        assert len(tif.pages) == 4
        page = tif.pages[1]
        info = json.loads(page.description)
        assert info["parameter"] == "sao2" and info["statistic"] == "iqr" and info["unit"] == "fraction"
        assert page.tags["PageName"].value == "sao2/iqr"
        assert page.dtype == np.float32
    got, infos = read_maps_tiff(p)
    for k in maps:
        np.testing.assert_allclose(got[k], maps[k].astype(np.float32))
    np.testing.assert_array_equal(got["mask"], 1.0)
    assert infos["vhb_1/median"]["unit"] == "fraction"


def test_png_masked_pixels_transparent(tmp_path):
    img = np.linspace(0, 1, 40 * 60).reshape(40, 60)
    mask = np.ones_like(img, bool)
    mask[:, :30] = False
    p1 = write_map_png(tmp_path / "full.png", img, title="SaO2", unit="fraction", vmin=0, vmax=1)
    p2 = write_map_png(tmp_path / "half.png", img, title="SaO2", unit="fraction", vmin=0, vmax=1, mask=mask)
    full, half = imread(p1), imread(p2)
    assert full.ndim == 3 and full.shape[2] == 4 and full.shape == half.shape
    n_clear_full = int(np.sum(full[..., 3] == 0))
    n_clear_half = int(np.sum(half[..., 3] == 0))
    # the image area occupies a sizeable part of the figure; hiding half of it must add many clear pixels
    assert n_clear_half - n_clear_full > 0.05 * full.shape[0] * full.shape[1]
    # opaque pixels differ in colour across the map (the colour map is applied)
    opaque = full[full[..., 3] == 1][:, :3]
    assert np.unique(np.round(opaque, 2), axis=0).shape[0] > 20


def test_png_uses_no_pyplot_state(tmp_path):
    import sys

    write_map_png(tmp_path / "a.png", np.ones((4, 4)), title="t", unit="u", vmin=None, vmax=None)
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if "matplotlib.pyplot" in sys.modules:  # imported by someone else; our figure must not be registered
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_csv_round_trip(tmp_path):
    rows = [{"region": "a", "sao2_mean": 0.71, "n": 10}, {"region": "b", "n": 3, "note": "x,y"}]
    p = write_csv(tmp_path / "s.csv", rows)
    with open(p, newline="") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0].keys()) == ["region", "sao2_mean", "n", "note"]
    assert float(got[0]["sao2_mean"]) == 0.71 and got[1]["sao2_mean"] == "" and got[1]["note"] == "x,y"


# ------------------------------------------------------------------ safety of writes


@pytest.mark.parametrize("kind", ["h5", "tif", "png", "csv"])
def test_existing_output_not_overwritten_without_force(tmp_path, maps, kind):
    p = tmp_path / f"out.{kind}"
    p.write_bytes(b"precious")

    def write(force):
        if kind == "h5":
            write_maps_hdf5(p, maps, force=force)
        elif kind == "tif":
            write_maps_tiff(p, maps, UNITS, force)
        elif kind == "png":
            write_map_png(p, maps["sao2/median"], title="t", unit="u", vmin=0, vmax=1, force=force)
        else:
            write_csv(p, [{"a": 1}], force)

    with pytest.raises(OutputExistsError, match="force"):
        write(False)
    assert p.read_bytes() == b"precious"
    write(True)
    assert p.read_bytes() != b"precious"
    assert _no_leftovers(tmp_path) == []


def test_unwritable_directory_clear_error(tmp_path, maps):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(TissueInnError, match="cannot create folder"):
        write_maps_hdf5(blocker / "sub" / "out.h5", maps)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_directory_clear_error(tmp_path, maps):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(TissueInnError, match="cannot write"):
            write_csv(ro / "x.csv", [{"a": 1}])
    finally:
        ro.chmod(0o700)


def test_interrupted_hdf5_write_leaves_nothing(tmp_path, maps, monkeypatch):
    calls = {"n": 0}
    original = h5py.Group.create_dataset

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C halfway through
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    with pytest.raises(KeyboardInterrupt):
        write_maps_hdf5(tmp_path / "out.h5", maps)
    assert calls["n"] == 2
    assert list(tmp_path.iterdir()) == []


def test_interrupted_tiff_write_keeps_old_file(tmp_path, maps, monkeypatch):
    p = tmp_path / "out.tif"
    p.write_bytes(b"old")
    original = tifffile.TiffWriter.write
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffWriter, "write", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        write_maps_tiff(p, maps, UNITS, force=True)
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["out.tif"]

import h5py
import numpy as np
import pytest
import torch

from tissue_inn.config import load_camera, load_tissue
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.errors import Cancelled, DataFileError, OutputExistsError
from tissue_inn.optics.forward import ForwardModel, SolverSettings
from tissue_inn.progress import run_to_completion
from tissue_inn.simulation.simulate import merge_shards, parse_shard, simulate_dataset

FAST = SolverSettings(n_quad=8, band_mode="center")
TISSUE = load_tissue("colon")
CAMERA = load_camera("spectrocam8")


def _sim(path, n=40, seed=0, **kw):
    kw.setdefault("settings", FAST)
    kw.setdefault("block_size", 8)
    return run_to_completion(simulate_dataset(TISSUE, CAMERA, n, seed, path, **kw))


def test_dataset_schema_and_content(tmp_path):
    out = tmp_path / "d.h5"
    res = _sim(out)
    assert res.n_samples == 40 and out.exists()
    with h5py.File(out) as f:
        x, y = f["x"][:], f["y"][:]
        assert x.shape == (40, 13) and y.shape == (40, 8)
        assert list(f.attrs["band_centers_nm"]) == list(CAMERA.band_centers_nm)
        assert int(f.attrs["seed"]) == 0
        assert f["x"].compression == "gzip"
    # y is the forward model of x (noise-free)
    y_direct = ForwardModel(TISSUE, CAMERA, FAST).bands(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, y_direct, rtol=1e-5)
    ds = SpectraDataset(out)
    assert len(ds) == 40 and ds[3][0].shape == (13,)


def test_shards_merge_to_the_unsharded_dataset(tmp_path):
    full = tmp_path / "full.h5"
    _sim(full)
    parts = []
    for k in range(3):
        p = tmp_path / f"s{k}.h5"
        _sim(p, shard=(k, 3))
        parts.append(p)
    merged = merge_shards(parts[::-1], tmp_path / "merged.h5")
    with h5py.File(full) as a, h5py.File(merged) as b:
        np.testing.assert_array_equal(a["x"][:], b["x"][:])
        np.testing.assert_array_equal(a["y"][:], b["y"][:])
    with pytest.raises(DataFileError, match="missing"):
        merge_shards(parts[:2], tmp_path / "m2.h5")


def test_interrupted_run_resumes_and_matches(tmp_path):
    full = tmp_path / "full.h5"
    _sim(full)
    out = tmp_path / "r.h5"
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled, match="resume"):
        _sim(out, should_stop=stop_after_two)
    assert not out.exists() and (tmp_path / "r.h5.partial").exists()
    res = _sim(out)
    assert res.resumed_from == 2
    with h5py.File(full) as a, h5py.File(out) as b:
        np.testing.assert_array_equal(a["x"][:], b["x"][:])
        np.testing.assert_array_equal(a["y"][:], b["y"][:])


def test_existing_output_is_kept_without_force(tmp_path):
    out = tmp_path / "d.h5"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--force"):
        _sim(out)
    assert out.read_bytes() == b"precious"


def test_different_seeds_differ(tmp_path):
    _sim(tmp_path / "a.h5", seed=1)
    _sim(tmp_path / "b.h5", seed=2)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert not np.array_equal(a["x"][:], b["x"][:])


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "a/b", "3"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)


def test_corrupt_dataset_is_refused(tmp_path):
    p = tmp_path / "bad.h5"
    p.write_bytes(b"\x89HDF garbage")
    with pytest.raises(DataFileError, match="bad.h5"):
        SpectraDataset(p)

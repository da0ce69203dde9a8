"""``tissue-inn infer``: outputs re-read correctly, no overwrite without --force, no partial output on Ctrl-C."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from tissue_inn.cli import main
from tissue_inn.io.maps import read_maps_hdf5, read_maps_tiff

BANDS = [470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0]


@pytest.fixture()
def cube_path(tmp_path):
    rng = np.random.default_rng(0)
    data = (np.linspace(0.05, 0.5, 8) * rng.uniform(0.7, 1.3, size=(4, 6, 1))).astype(np.float32)
    data[1, 2, 0] = np.nan
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("reflectance", data=data).attrs["wavelengths_nm"] = np.asarray(BANDS)
    return path


def _args(cube_path, tiny_bundle, out_dir, *extra):
    return [
        "-q",
        "infer",
        str(cube_path),
        "--model",
        str(tiny_bundle),
        "--draws",
        "16",
        "--seed",
        "7",
        "--predictive",
        "none",
        "-o",
        str(out_dir / "maps.h5"),
        *extra,
    ]


def test_infer_writes_all_outputs(cube_path, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        _args(
            cube_path,
            tiny_bundle,
            out,
            "--tiff",
            str(out / "maps.tif"),
            "--png",
            str(out / "png"),
            "--png-stats",
            "median",
            "--csv",
            str(out / "stats.csv"),
        )
    )
    assert rc == 0
    maps, attrs, mask = read_maps_hdf5(out / "maps.h5")
    assert maps["sao2/median"].shape == (4, 6) and mask.sum() == 23 and not mask[1, 2]
    assert np.isnan(maps["sao2/median"][1, 2]) and np.isfinite(maps["sao2/median"][mask]).all()
    assert attrs["seed"] == 7 and attrs["n_draws"] == 16 and len(attrs["model_sha256"]) == 64
    assert attrs["source_path"].endswith("img.h5") and len(attrs["source_sha256"]) == 64
    assert attrs["mask_reasons"]["nan"] == 1 and attrs["model_card"]["name"] == "tiny"
    tmaps, infos = read_maps_tiff(out / "maps.tif")
    np.testing.assert_array_equal(tmaps["d_1/median"], maps["d_1/median"])
    assert tmaps["d_1/median"].dtype == np.float32 and infos["d_1/median"]["unit"]
    pngs = sorted(p.name for p in (out / "png").iterdir())
    assert len(pngs) == 13 and "sao2_median.png" in pngs
    rows = list(csv.DictReader(open(out / "stats.csv")))
    assert len(rows) == 13 and rows[0]["parameter"] == "sao2" and rows[0]["n_valid"] == "23"
    assert "maps.h5" in capsys.readouterr().out


def test_refuses_overwrite_without_force(cube_path, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(cube_path, tiny_bundle, out)) == 0
    before = (out / "maps.h5").read_bytes()
    assert main(_args(cube_path, tiny_bundle, out, "--seed", "8")) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "maps.h5").read_bytes() == before
    assert main(_args(cube_path, tiny_bundle, out, "--seed", "8", "--force")) == 0
    assert read_maps_hdf5(out / "maps.h5")[1]["seed"] == 8


@pytest.mark.filterwarnings("ignore:.*given wavelengths differ")
def test_roi_and_band_mismatch(cube_path, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(cube_path, tiny_bundle, out, "--roi", "1,0,3,2")) == 0
    maps, attrs, mask = read_maps_hdf5(out / "maps.h5")
    assert mask.sum() == 3 and mask[0, 1:3].all() and mask[1, 1] and not mask[1, 2]  # (1, 2) is NaN
    assert attrs["mask_reasons"]["outside_roi"] == 20 and attrs["mask_reasons"]["nan"] == 1
    rc = main(_args(cube_path, tiny_bundle, tmp_path / "o2", "--wavelengths", "400,450,500,550,600,650,700,750"))
    err = capsys.readouterr().err
    assert rc == 2 and "470" in err and "450" in err
    assert not (tmp_path / "o2" / "maps.h5").exists()


def test_interrupt_leaves_no_output(cube_path, tiny_bundle, tmp_path, monkeypatch):
    import tissue_inn.inference.image as image

    real = image.infer_image

    def interrupted(*args, **kwargs):
        gen = real(*args, **kwargs)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(image, "infer_image", interrupted)
    out = tmp_path / "out"
    rc = main(_args(cube_path, tiny_bundle, out, "--tiff", str(out / "maps.tif")))
    assert rc == 130
    assert not any(p.is_file() for p in out.rglob("*")) if out.exists() else True


def test_kind_amortised(cube_path, tiny_bundle, tmp_path, capsys):
    """--kind amortised: the bundle's quantile network (the shipped default has one; the tiny test bundle not)."""
    out = tmp_path / "a.h5"
    assert main(["-q", "infer", str(cube_path), "--model", str(tiny_bundle), "--kind", "amortised", "-o",
                 str(out)]) == 2
    assert "no amortised summary network" in capsys.readouterr().err and not out.exists()
    assert main(["-q", "infer", str(cube_path), "--kind", "amortised", "--stats", "mean", "-o", str(out)]) == 2
    assert "need --kind exact" in capsys.readouterr().err
    from tissue_inn.inference.posterior import Posterior

    if not Posterior.from_bundle(None).has_amortised:
        pytest.skip("the shipped default model has no amortised network")
    assert main(["-q", "infer", "sample", "--kind", "amortised", "--roi", "0,0,8,8", "--snr", "30", "-o",
                 str(out)]) == 0
    maps, attrs, mask = read_maps_hdf5(out)
    assert attrs["map_kind"] == "amortised" and mask.sum() == 64 and "predictive/residual" not in maps
    assert np.isfinite(maps["sao2/median"][mask]).all() and "sao2/q95" in maps

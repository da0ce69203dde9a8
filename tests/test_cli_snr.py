"""``--snr`` on infer and evaluate (issue 11 item 1): given, per band, as a map, or estimated (and said so);
out-of-range warnings; the SNR in the output's provenance."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tissue_inn.cli import main
from tissue_inn.io.maps import read_maps_hdf5

BANDS = [470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def noisy_cube(tmp_path):
    """A smooth 48 × 48 image with multiplicative noise at SNR 25."""
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    clean = np.linspace(0.1, 0.5, 8)[None, None, :] * (0.8 + 0.3 * xx * yy)[:, :, None]
    rng = np.random.default_rng(0)
    data = (clean * (1 + rng.standard_normal(clean.shape) / 25.0)).astype(np.float32)
    path = tmp_path / "noisy.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("reflectance", data=data).attrs["wavelengths_nm"] = np.asarray(BANDS)
    return path


def _infer(cube, bundle, out, *extra):
    return ["-q", "infer", str(cube), "--model", str(bundle), "--draws", "4", "--predictive", "none", "--stats",
            "median", "--roi", "0,0,8,4", "-o", str(out), *extra]


def test_estimated_when_not_given_and_said_so(noisy_cube, tiny_bundle, tmp_path, capsys):
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "m.h5")) == 0
    captured = capsys.readouterr()
    assert "no --snr given" in captured.err and "±" in captured.err and "estimated" in captured.err
    snr = read_maps_hdf5(tmp_path / "m.h5")[1]["noise_level"]
    assert "estimated" in snr["source"] and snr["stderr"] > 0
    assert 20 <= snr["effective_snr"] <= 30  # the truth is 25
    assert json.loads(captured.out)["snr"]["effective_snr"] == snr["effective_snr"]


def test_given_number_is_recorded_and_not_estimated(noisy_cube, tiny_bundle, tmp_path, capsys):
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "m.h5", "--snr", "20")) == 0
    assert "no --snr given" not in capsys.readouterr().err
    attrs = read_maps_hdf5(tmp_path / "m.h5")[1]
    assert attrs["noise_level"]["kind"] == "scalar" and attrs["noise_level"]["effective_snr"] == 20.0
    assert attrs["infer_settings"]["snr"] == "20"


def test_per_band_and_map(noisy_cube, tiny_bundle, tmp_path, capsys):
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "a.h5", "--snr", "20,20,20,20,30,30,30,30")) == 0
    assert read_maps_hdf5(tmp_path / "a.h5")[1]["noise_level"]["kind"] == "per_band"
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "b.h5", "--snr", "20,30")) == 2
    assert "2 per-band SNR values" in capsys.readouterr().err
    good, bad = tmp_path / "snr.npy", tmp_path / "snr_bad.npy"
    np.save(good, np.full((48, 48), 22.0))
    np.save(bad, np.full((10, 10), 22.0))
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "c.h5", "--snr", str(good))) == 0
    snr = read_maps_hdf5(tmp_path / "c.h5")[1]["noise_level"]
    assert snr["kind"] == "map" and snr["effective_snr"] == 22.0
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "d.h5", "--snr", str(bad))) == 2
    assert "10 × 10" in capsys.readouterr().err and not (tmp_path / "d.h5").exists()
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "e.h5", "--snr", "loud")) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "e.h5", "--snr", str(good), "-o", str(good),
                       "--force")) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_outside_the_trained_range_warns_with_the_range(noisy_cube, tiny_bundle, tmp_path, capsys):
    from tissue_inn.inference.noise import trained_snr_range
    from tissue_inn.io.bundle import read_card

    lo, hi = trained_snr_range(read_card(tiny_bundle))
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "m.h5", "--snr", str(hi * 4))) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and f"{lo:g}–{hi:g}" in err
    assert main(_infer(noisy_cube, tiny_bundle, tmp_path / "n.h5", "--snr", str((lo * hi) ** 0.5))) == 0
    assert "warning" not in capsys.readouterr().err


def test_evaluate_snr_checks(tiny_bundle, fake_dataset, tmp_path, capsys):
    base = ["-q", "evaluate", str(tiny_bundle), "--test", str(fake_dataset), "--n-test", "10", "--draws", "8",
            "--ppc-cases", "0", "-o", str(tmp_path / "r")]
    assert main(base + ["--snr", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(base + ["--snr", "1000"]) == 0
    assert "outside the range" in capsys.readouterr().err


def test_tiny_image_falls_back_to_the_nominal_snr_and_says_so(tiny_bundle, tmp_path, capsys):
    data = np.full((2, 3, 8), 0.3, dtype=np.float32)
    cube = tmp_path / "tiny.h5"
    with h5py.File(cube, "w") as f:
        f.create_dataset("reflectance", data=data).attrs["wavelengths_nm"] = np.asarray(BANDS)
    assert main(["-q", "infer", str(cube), "--model", str(tiny_bundle), "--draws", "4", "--predictive", "none",
                 "--stats", "median", "-o", str(tmp_path / "m.h5")]) == 0
    err = capsys.readouterr().err
    assert "cannot be estimated" in err and "--snr" in err
    assert "nominal" in read_maps_hdf5(tmp_path / "m.h5")[1]["noise_level"]["source"]


def test_the_misfit_verdict_line_is_printed_with_the_snr(tmp_path, capsys):
    """The shipped model carries a calibrated gate: infer says how many pixels it does not explain."""
    from tissue_inn.io.bundle import read_card, resolve_model

    if "misfit_gate" not in read_card(resolve_model(None)):
        pytest.skip("the shipped default model carries no misfit gate")
    assert main(["-q", "infer", "sample", "--draws", "16", "--roi", "0,0,4,4", "--snr", "30", "-o",
                 str(tmp_path / "m.h5")]) == 0
    captured = capsys.readouterr()
    assert "of 16) are not explained by colon_default at SNR 30 (1 % false-alarm level)" in captured.err
    assert json.loads(captured.out)["pixels_not_explained"] is not None

"""evaluate / write_report on the tiny bundle, and the `evaluate` / `baseline` commands."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tissue_inn.cli import main
from tissue_inn.config import NoiseModel, TissueModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.errors import OutputExistsError
from tissue_inn.inference.evaluate import evaluate
from tissue_inn.inference.report import format_table, write_report
from tissue_inn.io.bundle import load_bundle, read_card

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_evaluate_and_write_report(tiny_bundle, fake_dataset, tmp_path):
    est, _ = load_bundle(tiny_bundle)
    data = SpectraDataset(fake_dataset, limit=60)
    tissue = TissueModel.from_dict(data.info.tissue)
    prior_var = [p.prior.variance() for p in tissue.parameters]
    y = NoiseModel(20, 20).apply(data.y, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    names = list(data.info.parameter_names)

    def prior_sampler(yb):  # a perfectly calibrated (uninformative) posterior: the prior itself
        return tissue.sample_prior(yb.shape[0] * 200, gen).reshape(yb.shape[0], 200, -1)

    methods = {
        "tiny": lambda yb: est.sample(yb, 128, generator=gen),
        "prior": prior_sampler,
        "oracle_point": lambda yb: data.x[: yb.shape[0]][:, None, :] * 0 + 0.5,
    }
    shown = ["sao2", "vhb_1", "g_1"]
    report = evaluate(methods, data.x, y, names, prior_var, chunk_size=25, sbc_bins=8, report_parameters=shown)
    assert report["parameter_names"] == shown
    assert set(report["methods"]) == set(methods)
    prior_m = report["methods"]["prior"]["metrics"]
    assert abs(prior_m["sao2"]["contraction"]) < 0.2  # the prior contracts nothing
    assert report["methods"]["oracle_point"]["point_only"]
    assert report["methods"]["oracle_point"]["metrics"]["sao2"]["cal_median_abs"] is None
    mae_expected = float(np.abs(0.5 - data.x[:, 0].numpy()).mean())
    assert report["methods"]["oracle_point"]["metrics"]["sao2"]["mae_median"] == pytest.approx(mae_expected)
    table = format_table(report)
    assert table.count("\n") == 2 + len(shown) * len(methods) - 1

    written = write_report(report, tmp_path / "rep")
    names_written = {p.name for p in written}
    assert {
        "report.md",
        "report.json",
        "figures.json",
        "calibration.png",
        "coverage.png",
        "sbc_tiny.png",
        "sbc_prior.png",
    } <= names_written
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| sao2 | tiny |" in md and "MAE (median)" in md
    figs = json.loads((tmp_path / "rep" / "figures.json").read_text())
    assert len(figs["calibration.png"]["series"]["tiny"]["sao2"]) == 100
    assert sum(figs["sbc_prior.png"]["counts"]["sao2"]) == 60
    assert not list((tmp_path / "rep").glob("*.part"))
    before = (tmp_path / "rep" / "report.md").read_bytes()
    with pytest.raises(OutputExistsError):
        write_report(report, tmp_path / "rep")
    assert (tmp_path / "rep" / "report.md").read_bytes() == before
    write_report(report, tmp_path / "rep", force=True)


def _regression_baseline(fake_dataset, folder):
    assert (
        main(
            [
                "-q",
                "baseline",
                "regression",
                "--data",
                str(fake_dataset),
                "-o",
                str(folder),
                "--epochs",
                "2",
                "--hidden",
                "32",
                "--batch-size",
                "256",
            ]
        )
        == 0
    )
    assert (folder / "model.safetensors").is_file() and (folder / "baseline.json").is_file()
    return folder


def test_cli_baseline_and_evaluate(tiny_bundle, fake_dataset, tmp_path, capsys):
    reg = _regression_baseline(fake_dataset, tmp_path / "reg")
    model = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, model)
    out = tmp_path / "report"
    argv = [
        "-q",
        "evaluate",
        str(model),
        "--test",
        str(fake_dataset),
        "--n-test",
        "30",
        "--draws",
        "64",
        "--snr",
        "20",
        "--abc-bank",
        str(fake_dataset),
        "--abc-k",
        "8",
        "--regression",
        str(reg),
        "--mc-draws",
        "32",
        "--ppc-cases",
        "2",
        "--ppc-draws",
        "2",
        "--parameters",
        "sao2,vhb_1",
        "-o",
        str(out),
        "--update-card",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    for method in ("tiny", "abc_k8", "regression", "mc_dropout"):
        assert f"| sao2 | {method} |" in stdout
    assert "| g_1 |" not in stdout
    assert (out / "report.md").is_file() and (out / "ppc.png").read_bytes()[:8] == PNG
    rep = json.loads((out / "report.json").read_text())
    assert rep["methods"]["abc_k8"]["n_draws"] == 8 and rep["methods"]["mc_dropout"]["n_draws"] == 32
    assert rep["methods"]["tiny"]["ppc"]["n_cases"] == 2
    card = read_card(model)
    assert "sao2_mae" in card["evaluation"]["summary"]["snr20"]
    load_bundle(model)  # card update keeps the bundle loadable
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_evaluate_two_conditions_all_parameters(tiny_bundle, fake_dataset, tmp_path, capsys):
    reg = tmp_path / "reg"
    _regression_baseline(fake_dataset, reg)
    model = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, model)
    out = tmp_path / "report"
    argv = [
        "-q",
        "evaluate",
        str(model),
        "--test",
        str(fake_dataset),
        "--n-test",
        "30",
        "--draws",
        "64",
        "--snr",
        "20",
        "--snr",
        "10",
        "--abc-bank",
        str(fake_dataset),
        "--abc-k",
        "8",
        "--regression",
        str(reg),
        "--mc-draws",
        "32",
        "--ppc-cases",
        "2",
        "--ppc-draws",
        "2",
        "-o",
        str(out),
        "--update-card",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    for method in ("tiny", "abc_k8", "regression", "mc_dropout"):
        assert f"| sao2 | {method} |" in stdout
    for cond in ("snr20", "snr10"):
        assert (out / cond / "report.md").is_file()
        assert (out / cond / "calibration.png").read_bytes()[:8] == PNG
        rep = json.loads((out / cond / "report.json").read_text())
        assert rep["methods"]["tiny"]["ppc"]["n_cases"] == 2
    card = read_card(model)
    assert set(card["evaluation"]["summary"]) == {"snr20", "snr10"}
    assert "sao2_mae" in card["evaluation"]["summary"]["snr20"]
    load_bundle(model)  # card update keeps the bundle loadable
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


def test_cli_evaluate_rejects_mismatched_test_set(tiny_bundle, fake_dataset, tmp_path, capsys):
    import h5py

    bad = tmp_path / "bad.h5"
    shutil.copy(fake_dataset, bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["band_centers_nm"] = np.asarray(f.attrs["band_centers_nm"]) + 5.0
    assert main(["-q", "evaluate", str(tiny_bundle), "--test", str(bad), "-o", str(tmp_path / "r")]) == 2
    assert "bands" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()

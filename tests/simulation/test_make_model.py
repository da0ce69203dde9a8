"""make-model end to end at a tiny size: cost estimate, stages, card, evaluation, resume, CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tissue_inn.errors import Cancelled, ConfigError, OutputExistsError, TissueInnError
from tissue_inn.progress import run_to_completion
from tissue_inn.training.make_model import MakeModelRequest, estimate_cost, make_model, work_dir

CAMERA = "name = 'three'\nband_centers_nm = [540.0, 580.0, 650.0]\nfwhm_nm = 20.0\n"


@pytest.fixture
def files(tmp_path, slab_tissue):
    (tmp_path / "three.toml").write_text(CAMERA)
    return tmp_path


def _request(files, **kw):
    base = dict(tissue=str(files / "slab.toml"), camera=str(files / "three.toml"), output=str(files / "m"),
                size=240, test_size=40, epochs=1, processes=1, eval_snrs=(20.0,), eval_draws=32, ppc_cases=4,
                gate=False, threads=1)
    base.update(kw)
    return MakeModelRequest(**base)


def test_tiny_model_end_to_end_with_cost_estimate_and_card(files, one_thread):
    req = _request(files)
    cost = estimate_cost(req)
    assert cost.simulate_s > 0 and cost.train_s > 0 and "estimated time" in cost.text
    stages = []
    run_to_completion(make_model(req), lambda p: stages.append(p.stage))
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        "simulate", "test-set", "train", "evaluate", "bundle"]
    card = json.loads((files / "m" / "model_card.json").read_text())
    assert [p["name"] for p in card["parameters"]] == ["sao2", "vhb_1"]
    assert card["parameters"][0]["label"] == "oxygen saturation StO2" and card["parameters"][0]["display_scale"] == 100
    assert card["tissue"]["name"] == "slab" and card["camera"]["name"] == "three"
    ev = card["evaluation"]["summary"]["snr20"]
    assert ev["n_test"] == 40 and 0.0 <= ev["sao2_median_abs_ecal"] <= 0.5
    assert (files / "m" / "evaluation" / "snr20" / "report.md").is_file()
    assert card["make_model"]["request"]["size"] == 240 and card["dataset"]["n_samples"] == 240
    work = work_dir(files / "m")
    assert (work / "train.h5").is_file() and (work / "test.h5").is_file() and not (work / "checkpoint").exists()
    with pytest.raises(OutputExistsError, match="--force"):
        run_to_completion(make_model(req))


def test_stopped_simulation_resumes_to_the_same_data(files, one_thread):
    req = _request(files, size=2100, epochs=1)  # three simulation blocks of 1024
    calls = {"n": 0}

    def stop_after_first_block():
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Cancelled):
        run_to_completion(make_model(req, should_stop=stop_after_first_block))
    partial = work_dir(req.output) / "train.h5.partial"
    with h5py.File(partial, "r") as f:
        assert int(np.sum(f["blocks_done"])) == 1
        x_first = np.asarray(f["x"][:1024])
    # a different request may not reuse this work folder
    with pytest.raises(TissueInnError, match="different request"):
        run_to_completion(make_model(_request(files, size=3000)))
    from tissue_inn.config import load_tissue
    from tissue_inn.simulation.simulate import block_generator

    expected = load_tissue(files / "slab.toml").sample_prior(1024, block_generator(0, 0)).numpy()
    assert np.array_equal(x_first, expected)


def test_bad_requests_are_refused(files):
    with pytest.raises(ConfigError, match="--size"):
        _request(files, size=10)
    with pytest.raises(ConfigError, match="unknown tissue"):
        estimate_cost(_request(files, tissue="kidney"))


def test_cli_estimate_only(files, capsys, one_thread):
    from tissue_inn.cli import main

    rc = main(["make-model", "--tissue", str(files / "slab.toml"), "--camera", str(files / "three.toml"),
               "-o", str(files / "m"), "--size", "1000", "--estimate-only"])
    out = capsys.readouterr()
    assert rc == 0 and "estimated time" in out.err
    assert json.loads(out.out)["estimated_seconds"] > 0


@pytest.mark.slow
def test_sharded_simulation_equals_one_process(files):
    """Two simulation processes produce exactly the dataset of one (blocks are seeded by index)."""
    from tissue_inn.config import load_camera, load_tissue
    from tissue_inn.simulation.simulate import simulate_dataset
    from tissue_inn.training.make_model import _simulate_sharded

    t, c = load_tissue(files / "slab.toml"), load_camera(files / "three.toml")
    run_to_completion(_simulate_sharded(t, c, 2100, 5, files / "two.h5", 2, None))
    run_to_completion(simulate_dataset(t, c, 2100, 5, files / "one.h5"))
    with h5py.File(files / "two.h5", "r") as a, h5py.File(files / "one.h5", "r") as b:
        assert np.array_equal(a["x"][:], b["x"][:]) and np.array_equal(a["y"][:], b["y"][:])


@pytest.mark.gpu
def test_tiny_model_on_the_gpu(files):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    req = _request(files, device="cuda", output=str(files / "g"))
    assert estimate_cost(req).device == "cuda"
    made = run_to_completion(make_model(req))
    assert made.card["training"]["settings"]["device"] == "cuda"
    assert made.card["evaluation"]["summary"]["snr20"]["n_test"] == 40


def test_cost_estimate_counts_only_what_is_left_to_simulate(files, one_thread):
    req = _request(files, size=300, test_size=50)
    full = estimate_cost(req)
    work = work_dir(req.output)
    work.mkdir()
    (work / "train.h5").write_bytes(b"")  # a finished training set (only its presence counts here)
    part = estimate_cost(req)
    assert "the rest is in" in part.text and "simulate 50 spectra" in part.text
    assert "simulate 350 spectra" in full.text

"""workspace.new_model: the dialog's request, resume detection, cube camera files and the progress tracker."""

from __future__ import annotations

import json

import pytest

from tissue_inn.config import load_camera
from tissue_inn.errors import ConfigError
from tissue_inn.progress import Progress
from tissue_inn.workspace import new_model as nm


def test_shipped_definitions_and_the_request_of_the_fields(tmp_path):
    assert {"colon", "skin", "generic"} <= set(nm.shipped("tissue"))
    assert "spectrocam8" in nm.shipped("camera")
    req = nm.new_model_request("skin", "spectrocam8", tmp_path / "m", size=1000, epochs=3, device="cpu", gate=False)
    assert (req.size, req.test_size, req.epochs, req.device, req.gate) == (1000, 200, 3, "cpu", False)
    assert nm.new_model_request("skin", "spectrocam8", tmp_path / "m", size=100_000).test_size == 2000
    assert nm.new_model_request("skin", "spectrocam8", tmp_path / "m", size=100).test_size == 40
    with pytest.raises(ConfigError, match="tissue and a camera"):
        nm.new_model_request("", "spectrocam8", tmp_path / "m")
    with pytest.raises(ConfigError, match="output folder"):
        nm.new_model_request("skin", "spectrocam8", " ")
    with pytest.raises(ConfigError, match="--size"):
        nm.new_model_request("skin", "spectrocam8", tmp_path / "m", size=50)


def test_resume_info_names_what_a_stopped_run_left(tmp_path):
    out = tmp_path / "m"
    req = nm.new_model_request("skin", "spectrocam8", out, size=1000)
    assert nm.resume_info(out, req) is None
    work = nm.work_dir(out)
    work.mkdir()
    (work / "request.json").write_text(json.dumps({"request": {"tissue": "skin", "camera": "spectrocam8",
                                                                "size": 1000, "test_size": 200, "seed": 0}}))
    (work / "train.s0.h5").write_bytes(b"")
    (work / "train.s1.h5").write_bytes(b"")
    info = nm.resume_info(out, req)
    assert info.same_request and info.done == ("2 simulation shards",) and "Resume" in info.text
    (work / "train.h5").write_bytes(b"")
    (work / "test.h5").write_bytes(b"")
    (work / "checkpoint").mkdir()
    (work / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 7}))
    info = nm.resume_info(out, req)
    assert info.done == ("training spectra simulated", "test spectra simulated", "trained to epoch 7")
    other = nm.new_model_request("skin", "spectrocam8", out, size=2000)
    assert not nm.resume_info(out, other).same_request
    assert "different request" in nm.resume_info(out, other).text
    assert not nm.resume_info(out, nm.new_model_request("colon", "spectrocam8", out, size=1000)).same_request


def test_cube_camera_file_has_the_cube_band_centres(tmp_path):
    path = nm.cube_camera_file([600.0, 500.0, 550.0], tmp_path / "cams")
    assert path.name == "cube_3bands_500-600nm.toml" and path.parent == tmp_path / "cams"
    cam = load_camera(path)
    assert cam.band_centers_nm == (500.0, 550.0, 600.0) and cam.fwhm_nm == 50.0
    assert nm.cube_camera_file([500.0, 510.0], tmp_path / "cams", name="mine").name == "mine.toml"
    with pytest.raises(ConfigError, match="band wavelengths"):
        nm.cube_camera_file([], tmp_path)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_tracker_loss_curve_fraction_and_eta():
    clock = Clock()
    t = nm.MakeModelTracker(stage_estimates={"simulate": 20.0, "train": 60.0, "evaluate": 20.0}, clock=clock)
    assert t.eta_s() is None and t.status_text() == "starting …"
    t.update(Progress("simulate", 0, 100))
    assert t.overall_fraction() == 0.0 and t.eta_s() == 100.0  # before 2 %: the estimate
    clock.t += 10
    t.update(Progress("simulate", 50, 100))
    assert t.overall_fraction() == pytest.approx(0.10)
    assert t.eta_s() == pytest.approx(90.0)  # 10 s for 10 %: 90 s for the rest
    t.update(Progress("test-set", 10, 10))
    rep = {"epoch": 1, "losses": {"total": 2.5, "nll": 2.0}, "val_loss": 2.7, "lr": 1e-3, "samples_per_s": 1,
           "seconds": 1}
    t.update(Progress("train", 1, 4, "val=2.7", {"report": rep, "log_line": "epoch 1"}))
    t.update(Progress("train", 1, 4, "val=2.7", {"report": rep}))  # a repeated report adds no point
    t.update(Progress("train", 2, 4, "val=2.1", {"report": {**rep, "epoch": 2, "losses": {"total": 2.0},
                                                             "val_loss": 2.1}}))
    assert t.epochs == [1, 2] and t.train_loss == [2.5, 2.0] and t.val_loss == [2.7, 2.1]
    assert t.log == ["epoch 1"]
    assert t.overall_fraction() == pytest.approx((20 + 30) / 100)
    assert "train 50 %" in t.status_text() and "left" in t.status_text()


def test_tracker_of_a_resumed_run_counts_skipped_stages_as_done():
    t = nm.MakeModelTracker(stage_estimates={"simulate": 20.0, "train": 60.0, "evaluate": 20.0}, clock=Clock())
    t.update(Progress("evaluate", 1, 2))  # simulation and training were finished before
    assert t.overall_fraction() == pytest.approx((20 + 60 + 10) / 100)

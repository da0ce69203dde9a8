"""Model ▸ New model…: a tiny model made in the background and loaded; Cancel keeps the work for a
resume; the band-mismatch dialog offers a model for the cube's camera."""

from __future__ import annotations

import json

import pytest
from conftest import write_cube
from gui_fixtures import WAIT_MS, dialogs_fixture, make_window_fixture  # noqa: F401
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from tissue_inn.workspace import new_model as nm
from tissue_inn.workspace.new_model import work_dir

# bands the test cube has (conftest.BANDS_NM), so the new model loads on it
CAMERA = "name = 'three'\nband_centers_nm = [560.0, 600.0, 660.0]\nfwhm_nm = 20.0\n"
TINY = dict(test_size=40, processes=1, eval_snrs=(20.0,), eval_draws=32, ppc_cases=4, threads=1)


@pytest.fixture
def defs(tmp_path, monkeypatch, slab_tissue):
    monkeypatch.setenv("TISSUE_INN_MODELS", str(tmp_path / "models"))
    (tmp_path / "three.toml").write_text(CAMERA)
    return tmp_path


def _fill(dlg, defs, size=240, output="made"):
    dlg.advanced = dict(TINY)
    dlg.tissue.setCurrentText(str(defs / "slab.toml"))
    dlg.camera.setCurrentText(str(defs / "three.toml"))
    dlg.output.setText(str(defs / output))
    dlg.size.setValue(size)
    dlg.epochs.setValue(1)
    dlg.gate.setChecked(False)


def test_tiny_model_is_made_with_a_loss_curve_and_loaded(qtbot, make_window, defs):
    win = make_window()
    menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "M&odel")
    next(a for a in menu.actions() if a.text().startswith("&New model")).trigger()  # Model ▸ New model…
    dlg = win.new_model
    assert dlg.isVisible() and dlg.tissue.currentText() == "colon"  # the tiny test model names no shipped tissue
    _fill(dlg, defs)
    assert dlg.btn_start.text() == "Start" and not dlg.btn_load.isEnabled()
    with qtbot.waitSignal(dlg.jobEnded, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(dlg.btn_start, Qt.MouseButton.LeftButton)
    assert ended.args == ["done"], dlg.status.text()
    assert "estimated time" in dlg.cost.text()  # the estimate was shown before the work
    assert dlg.tracker.epochs == [1]
    xs, ys = dlg.train_curve.getData()
    assert list(xs) == [1] and len(ys) == 1 and ys[0] == pytest.approx(dlg.tracker.train_loss[0])
    assert dlg.progress.value() == 1000 and "wrote" in dlg.status.text()
    assert dlg.summary.isVisible() and "calibrat" in dlg.summary.toPlainText().lower()
    assert dlg.shown_figures and all(p.is_file() and p.suffix == ".png" for p in dlg.shown_figures)
    card = json.loads((defs / "made" / "model_card.json").read_text())
    assert card["camera"]["name"] == "three" and card["make_model"]["request"]["size"] == 240
    assert dlg.btn_load.isEnabled()
    # the finished model is not a run to resume: its work folder only keeps the data for a retrain
    assert dlg.btn_start.text() == "Start" and "retrains without simulating" in dlg.resume.text()
    qtbot.mouseClick(dlg.btn_load, Qt.MouseButton.LeftButton)
    assert win.ws.model_path == defs / "made" and win.ws.ready
    assert list(win.ws.band_centers_nm) == [560.0, 600.0, 660.0]
    dlg.close()


def test_cancel_stops_promptly_keeps_the_work_and_offers_resume(qtbot, make_window, defs, monkeypatch):
    win = make_window()
    dlg = win.new_model_dialog()
    _fill(dlg, defs, size=2100, output="stopped")  # three simulation blocks of 1024: Cancel lands mid-way
    real_run = nm.run

    def run_stopping_after_one_block(req, should_stop=None):
        # the worker itself raises the stop flag after the first block (the GUI's Cancel may arrive later
        # on a loaded machine), so the job stops in the simulation with exactly one block done
        inner = real_run(req, should_stop=should_stop)
        while True:
            try:
                p = next(inner)
            except StopIteration as stop:
                return stop.value
            if p.stage == "simulate" and p.done > 0:
                should_stop.set()
            yield p

    monkeypatch.setattr(nm, "run", run_stopping_after_one_block)

    def cancel_on_simulation(p):
        if p.stage == "simulate" and p.done > 0:
            qtbot.mouseClick(dlg.btn_cancel, Qt.MouseButton.LeftButton)

    dlg.progressed.connect(cancel_on_simulation)
    with qtbot.waitSignal(dlg.jobEnded, timeout=WAIT_MS) as ended:
        assert dlg.start() and dlg.running and not dlg.btn_start.isEnabled()
    assert ended.args == ["cancelled"]
    assert dlg.tracker.stage == "simulate" and dlg.tracker.stage_fraction < 1  # stopped in the simulation
    monkeypatch.setattr(nm, "run", real_run)
    qtbot.waitUntil(lambda: not dlg.running, timeout=WAIT_MS)
    assert not (defs / "stopped").exists()
    assert work_dir(defs / "stopped").is_dir() and (work_dir(defs / "stopped") / "request.json").is_file()
    assert "Resume" in dlg.status.text() and dlg.btn_start.text() == "Resume"
    assert "earlier run stopped here" in dlg.resume.text()
    # a new dialog (as after restarting the application) offers the same resume
    again = win.new_model_dialog()
    _fill(again, defs, size=2100, output="stopped")
    assert again.btn_start.text() == "Resume"
    # another size is another request: no resume, and Start explains why it cannot use the folder
    again.size.setValue(3000)
    assert again.btn_start.text() == "Start" and "different request" in again.resume.text()
    # back to the stopped request: Resume continues the simulation where it stopped, to the end
    again.size.setValue(2100)
    reports = []
    again.progressed.connect(reports.append)
    with qtbot.waitSignal(again.jobEnded, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(again.btn_start, Qt.MouseButton.LeftButton)
    assert ended.args == ["done"], again.status.text()
    first_sim = next(p for p in reports if p.stage == "simulate")
    assert first_sim.done == 1024  # the finished block was not simulated again
    assert (defs / "stopped" / "model_card.json").is_file()
    again.close()
    dlg.close()


def test_band_mismatch_offers_a_model_for_the_cubes_camera(qtbot, make_window, dialogs, defs, monkeypatch):
    win = make_window()
    other = write_cube(defs / "other.h5", wavelengths=(505.0, 545.0, 585.0, 625.0, 665.0))
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert not win.open_image(other)
    dlg = win.new_model
    assert dlg.isVisible()
    cam_path = dlg.camera.currentText()
    assert cam_path.endswith(".toml") and str(defs / "models" / "cameras") in cam_path
    from tissue_inn.config import load_camera

    cam = load_camera(cam_path)
    assert cam.band_centers_nm == (505.0, 545.0, 585.0, 625.0, 665.0) and cam.fwhm_nm == 40.0
    dlg.close()

"""Issue 14, offscreen: clicking through a folder (settings carried over), references per folder,
pinned pixels, a second model, renamable regions, export feedback, questions before discarding,
and the launch that paints first and loads behind a busy indicator."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from conftest import write_cube  # noqa: E402
from gui_fixtures import WAIT_MS, dialogs_fixture, make_window_fixture  # noqa: E402, F401
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from tissue_inn.gui.main_window import MainWindow  # noqa: E402
from tissue_inn.progress import run_to_completion  # noqa: E402
from tissue_inn.workspace import Workspace  # noqa: E402
from tissue_inn.workspace.browse import References  # noqa: E402


def test_folder_browsing_over_three_images_carries_model_display_and_regions(qtbot, make_window, tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    paths = [write_cube(study / f"img{i}.h5", seed=i) for i in (1, 2, 3)]
    win = make_window(image=paths[0])
    model = win.ws.model
    assert not win.btn_prev.isEnabled() and win.btn_next.isEnabled()
    win.mode.setCurrentIndex(1)
    win.band_single.setCurrentIndex(6)
    win.add_region("rect", {"x": 1, "y": 1, "w": 4, "h": 3})
    win.btn_next.click()
    assert win.ws.image_path == paths[1] and win.ws.model is model
    assert win.mode.currentData() == "band" and win.band_single.currentIndex() == 6
    np.testing.assert_array_equal(win.image_view.base.image, win.ws.band(6))
    assert "R1" in win.ws.regions and "R1" in win._rois and win._roi_labels["R1"].toPlainText() == "R1"
    assert win.next_image() and win.ws.image_path == paths[2]
    assert not win.btn_next.isEnabled() and not win.next_image()
    assert win.previous_image() and win.ws.image_path == paths[1]
    assert str(study.resolve()) == win.recent_folders()[0]
    assert "img2.h5" in win.image_name.text()


def test_references_turn_raw_counts_into_reflectance_and_are_remembered(qtbot, make_window, tmp_path):
    study = tmp_path / "raw"
    study.mkdir()
    for name in ("a.h5", "b.h5"):
        write_cube(study / name)
        with h5py.File(study / name, "r+") as f:
            f["reflectance"][...] = f["reflectance"][...] * 990.0 + 10.0  # raw counts
    np.save(study / "white.npy", np.full(8, 1000.0, np.float32))
    np.save(study / "dark.npy", np.full(8, 10.0, np.float32))
    reflectance = np.asarray(h5py.File(write_cube(tmp_path / "truth.h5"), "r")["reflectance"])
    win = make_window()
    refs = References(study / "white.npy", study / "dark.npy")
    assert win.open_image(study / "a.h5", refs)
    np.testing.assert_allclose(win.ws.image, reflectance, rtol=1e-4)
    assert win.remembered_references(study / "b.h5") == refs
    assert win.next_image() and win.ws.loaded_image.white == study / "white.npy"  # same folder: same references
    np.testing.assert_allclose(win.ws.image, reflectance, rtol=1e-4)


def test_pins_and_a_second_model_overlay_their_posteriors(qtbot, make_window, tiny_bundle, tmp_path):
    win = make_window()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(2, 2)
    win.posterior_panel.btn_pin.click()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(8, 12)
    series = win.posterior_panel.plots["sao2"].data["series"]
    assert list(series) == ["posterior", "pixel (2, 2)"]
    assert len(win.image_view.pins.data) == 1
    for rc in ((3, 3), (4, 4), (5, 5)):
        with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
            win.select_pixel(*rc)
        win.pin_pixel()
    assert len(win.ws.pins) == 4 and len({p.color for p in win.ws.pins.items}) == 4
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(6, 6)
    win.pin_pixel()  # a fifth is refused with a message
    assert len(win.ws.pins) == 4 and "at most 4" in win.statusBar().currentMessage()
    win.clear_pins()
    other = tmp_path / "paper_inn"
    shutil.copytree(tiny_bundle, other)
    with qtbot.waitSignal(win.compareShown, timeout=WAIT_MS):
        assert win.compare_with_model(other)
    qtbot.waitUntil(lambda: win.workers.n_running == 0, timeout=WAIT_MS)
    series = win.posterior_panel.plots["sao2"].data["series"]
    assert list(series) == ["posterior", "tiny"]
    np.testing.assert_allclose(series["tiny"], series["posterior"])  # same weights, same seed: same answer


def test_regions_renamed_in_the_compact_table(qtbot, make_window):
    win = make_window()
    win.add_region("rect", {"x": 1, "y": 1, "w": 4, "h": 3})
    win.add_region("rect", {"x": 8, "y": 3, "w": 5, "h": 5})
    win.regions_panel.draws.setValue(8)
    with qtbot.waitSignal(win.regionsShown, timeout=WAIT_MS):
        win.regions_panel.btn_compute.click()
    summary = win.regions_panel.summary
    assert summary.rowCount() == 2 and summary.item(0, 0).text() == "R1"
    assert not win.regions_panel.progress.isVisible()
    summary.item(0, 0).setText("ischemic")  # what a double-click edit does
    assert "ischemic" in win.ws.regions and win._roi_labels["ischemic"].toPlainText() == "ischemic"
    assert {r["region"] for r in win.ws.region_stats} == {"ischemic", "R2"}
    n_informed = summary.columnCount()
    win.regions_panel.show_all.setChecked(True)
    assert win.regions_panel.summary.columnCount() == 2 + 13 >= n_informed
    assert win.regions_panel.summary.item(0, 0).text() == "ischemic"


def test_export_confirmation_default_names_and_question_before_discarding(qtbot, make_window, dialogs, tmp_path):
    win = make_window()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(5, 9)
    target = win.ws.default_export_path("histograms_csv")
    assert target.parent == win.ws.image_path.parent and target.name == "cube0_r5_c9_histograms.csv"
    out = win.export_histograms_csv(target)
    assert out[0] == target and win.notice.isVisible()
    assert target.name in win.notice.text() and "open folder" in win.notice.text()
    job = win.ws.new_map_job(n_draws=4, predictive=False)
    win.ws.accept_maps(job, run_to_completion(win.ws.run_map_job(job)))
    dialogs.answer = QMessageBox.StandardButton.No
    second = write_cube(tmp_path / "second.h5")
    assert not win.open_image(second)
    assert dialogs.calls[-1][0] == "question" and "not exported" in dialogs.calls[-1][2]
    assert win.ws.image_path.name == "cube0.h5"
    dialogs.answer = QMessageBox.StandardButton.Yes
    assert win.open_image(second) and win.ws.maps is None


def test_launch_paints_first_then_loads_in_the_background(qtbot, tmp_path, tiny_bundle, dialogs):
    win = MainWindow(Workspace(n_draws_pixel=64), settings=QSettings(str(tmp_path / "l.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    image = write_cube(tmp_path / "launch.h5")
    with qtbot.waitSignal(win.loadingEnded, timeout=WAIT_MS) as blocker:
        win.load_in_background(tiny_bundle, image)
        assert win.busy.isVisible() and not win.ws.has_model  # nothing blocks the first paint
    assert blocker.args == [True] and win.ws.ready and not win.busy.isVisible()
    assert "Click a pixel" in win.posterior_panel.header.text()
    qtbot.waitUntil(lambda: win.workers.n_running == 0, timeout=WAIT_MS)
    win.close()
    assert not dialogs.calls


def test_open_dialog_offers_the_folders_references_and_a_real_drop_opens_a_file(qtbot, make_window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    from tissue_inn.gui.open_dialog import OpenImageDialog

    folder = tmp_path / "refs"
    folder.mkdir()
    img = write_cube(folder / "x.h5")
    np.save(folder / "white.npy", np.ones(8, np.float32))
    win = make_window()
    win._remember(img, References(folder / "white.npy", None))
    dlg = OpenImageDialog("*.h5", win.remembered_references, str(img), win)
    qtbot.addWidget(dlg)
    path, refs = dlg.choice()
    assert path == img and refs == References(folder / "white.npy", None)
    dropped = write_cube(tmp_path / "dropped.h5", h=6, w=7)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    win.dropEvent(event)
    assert win.ws.image_path == dropped and win.ws.shape == (6, 7)

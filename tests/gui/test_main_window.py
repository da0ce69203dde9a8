"""The real main window, driven offscreen with pytest-qt on a real (tiny) bundle and a small cube."""

from __future__ import annotations

import csv
import json
import shutil
import time

import h5py
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from conftest import write_cube  # noqa: E402
from gui_fixtures import WAIT_MS, click_pixel, dialogs_fixture, make_window_fixture, send_mouse  # noqa: E402, F401
from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from tissue_inn.gui.main_window import MainWindow  # noqa: E402
from tissue_inn.io.maps import read_maps_hdf5, read_maps_tiff  # noqa: E402
from tissue_inn.workspace import histogram  # noqa: E402


def test_click_shows_the_posterior_of_that_pixel(qtbot, make_window, dialogs):
    from tissue_inn.inference.posterior import Posterior

    win = make_window()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        click_pixel(qtbot, win, 5, 9)
    res = win.ws.pixel_result
    assert (res.request.row, res.request.col) == (5, 9)
    ref = Posterior.from_bundle(win.ws.model_path).pixel(win.ws.image[5, 9], n_draws=256, seed=1, predictive_draws=0)
    for j, name in enumerate(win.ws.parameter_names):
        data = win.posterior_panel.plots[name].data
        _, expect = histogram(ref.samples[:, j], *win.ws.plot_range(name), bins=len(data["edges"]) - 1)
        np.testing.assert_allclose(data["series"]["posterior"], expect, rtol=1e-9, atol=1e-12)
    plot = win.posterior_panel.plots["sao2"]
    assert plot.truth.isVisible() and plot.truth.value() == pytest.approx(0.3 + 0.6 * 9 / 16)
    assert plot.median.value() == pytest.approx(ref.summaries["sao2"]["median"])
    assert plot.interval.getRegion() == pytest.approx((ref.summaries["sao2"]["q16"], ref.summaries["sao2"]["q84"]))
    informed = plot.data["contraction"] >= 0.1
    assert ("≈ prior" in plot.plot.titleLabel.text) != informed
    # clinical names and units on the axes (issue 14), the code name and card unit in the tooltip
    a_mie = win.posterior_panel.plots["a_mie_1"].plot
    assert "μs′500 L1 [cm⁻¹]" in a_mie.getAxis("bottom").labelText and "a_mie_1" in a_mie.toolTip()
    d_1 = win.posterior_panel.plots["d_1"].plot
    assert "thickness L1 [µm]" in d_1.getAxis("bottom").labelText and "d_1" in d_1.toolTip()
    np.testing.assert_allclose(win.spectrum.clicked.yData, win.ws.model_spectrum(5, 9))
    with qtbot.waitSignal(win.predictiveShown, timeout=WAIT_MS):
        pass
    assert win.spectrum.predicted.yData is not None and len(win.spectrum.predicted.yData) == 8
    with qtbot.waitSignal(win.latentShown, timeout=WAIT_MS) if win.latent.grid is None else _null():
        pass
    assert win.latent.grid.values.shape[2] == 13
    assert "tiny" in win.status_model.text() and "cpu" in win.status_device.text()
    assert not dialogs.calls


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_fast_clicks_show_only_the_last_pixel(qtbot, make_window):
    win = make_window()
    shown: list[int] = []
    win.pixelShown.connect(shown.append)
    win.select_pixel(1, 1)
    win.select_pixel(2, 2)
    win.select_pixel(3, 4)
    qtbot.waitUntil(lambda: win.ws.pixel_result is not None and win.ws.pixel_result.request.row == 3, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.workers.n_running == 0, timeout=WAIT_MS)
    assert len(shown) == 1 and shown[0] == win.ws.generation  # the older answers were dropped, not drawn


def test_regions_compare_and_export(qtbot, make_window, tmp_path):
    win = make_window()
    win.add_region("rect", {"x": 1, "y": 1, "w": 4, "h": 3})
    win.add_region("ellipse", {"x": 8, "y": 3, "w": 6, "h": 6})
    win.add_region("polygon", {"points": [(2, 6), (7, 6), (5, 11)]})
    assert set(win.ws.regions) == {"R1", "R2", "R3"} and len(win._rois) == 3
    win.regions_panel.draws.setValue(8)
    with qtbot.waitSignal(win.regionsShown, timeout=WAIT_MS):
        win.regions_panel.btn_compute.click()
    assert win.regions_panel.table.rowCount() == 3 * 13
    # the statistics table in clinical names and display units (StO2 in %, code name in the tooltip)
    sao2_row = next(i for i, r in enumerate(win.ws.region_stats) if r["parameter"] == "sao2")
    table = win.regions_panel.table
    assert table.item(sao2_row, 1).text() == "StO2" and table.item(sao2_row, 2).text() == "%"
    assert "sao2" in table.item(sao2_row, 1).toolTip()
    assert float(table.item(sao2_row, 4).text()) == pytest.approx(100 * win.ws.region_stats[sao2_row]["pooled_median"],
                                                                  rel=1e-3)
    series = win.regions_panel.histograms.plots["sao2"].data["series"]
    assert set(series) == {"R1", "R2", "R3"}
    # moving an ROI updates its mask
    roi = win._rois["R1"]
    roi.setPos((3, 2))
    qtbot.waitUntil(lambda: win.ws.regions["R1"].mask[2, 3], timeout=5000)
    out = win.export_region_stats(tmp_path / "regions.csv")
    with open(out[0]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 39 and {r["region"] for r in rows} == {"R1", "R2", "R3"}
    win.remove_region("R2")
    assert "R2" not in win._rois and "R2" not in win.ws.regions


def test_maps_compute_display_export_without_blocking_the_gui(qtbot, make_window, tmp_path):
    win = make_window(image=write_cube(tmp_path / "big.h5", h=24, w=32), n_draws_map=64)
    qtbot.wait(300)  # let the first paints settle; we measure the GUI while the maps compute
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    progress: list = []
    win.maps_panel.progress.valueChanged.connect(progress.append)
    t0 = time.perf_counter()
    with qtbot.waitSignal(win.mapsShown, timeout=WAIT_MS):
        win.maps_panel.btn_image.click()
    elapsed = time.perf_counter() - t0
    timer.stop()
    max_gap_ms = 1000 * max(gaps[1:] or [0.0])
    print(f"\nmap of 24x32 px in {elapsed:.2f} s; GUI max gap {max_gap_ms:.0f} ms over {len(gaps)} ticks")
    # target < 100 ms; the bound is generous because the test machine's 2 cores are shared
    assert max_gap_ms < 250, f"GUI thread blocked for {max_gap_ms:.0f} ms"
    assert progress and "ETA" in win.maps_panel.eta.text() or win.maps_panel.progress.value() > 0
    key = win.maps_panel.current_key()
    assert key == "sao2/median"
    np.testing.assert_array_equal(win.image_view.overlay.image, win.ws.map_image(key))
    assert win.image_view.colorbar.isVisible()
    assert win.image_view.colorbar.levels() == pytest.approx(win.ws.map_range(key, "prior"))
    win.maps_panel.select("a_mie_1", "iqr")
    np.testing.assert_array_equal(win.image_view.overlay.image, win.ws.map_image("a_mie_1/iqr"))
    assert "cm⁻¹" in win.image_view.colorbar.getAxis("right").labelText  # clinical unit (was the card's 1/cm)
    win.maps_panel.range_mode.setCurrentIndex(1)
    assert win.image_view.colorbar.levels() == pytest.approx(win.ws.map_range("a_mie_1/iqr", "auto"))
    win.maps_panel.opacity.setValue(30)
    assert win.image_view.overlay.opacity() == pytest.approx(0.3)

    h5 = win.export_maps(tmp_path / "maps.h5", "hdf5")
    maps, _, _ = read_maps_hdf5(h5[0])
    np.testing.assert_array_equal(maps["a_mie_1/iqr"], win.ws.map_image("a_mie_1/iqr"))
    tif, _ = read_maps_tiff(win.export_maps(tmp_path / "maps.tif", "tiff")[0])
    np.testing.assert_array_equal(tif["sao2/median"], win.ws.map_image("sao2/median"))
    png = win.export_maps(tmp_path / "shown.png", "png")
    assert len(png) == 1 and not QImage(str(png[0])).isNull()


def test_cancel_a_running_map(qtbot, make_window, tmp_path):
    win = make_window(image=write_cube(tmp_path / "big.h5", h=64, w=48), n_draws_map=2000)
    win.maps_panel.draws.setValue(2000)
    ended: list[str] = []
    win.mapJobEnded.connect(ended.append)
    win.maps_panel.btn_image.click()
    qtbot.waitUntil(lambda: win.workers.n_running > 0 and win.maps_panel.btn_cancel.isEnabled(), timeout=WAIT_MS)
    win.maps_panel.btn_cancel.click()
    qtbot.waitUntil(lambda: "cancelled" in ended, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.workers.n_running == 0, timeout=WAIT_MS)
    # cancel keeps the rows computed so far, marked incomplete (issue 13), or nothing if none was done
    assert win.ws.maps is None or not win.ws.maps.complete
    assert win.maps_panel.btn_image.isEnabled()


def test_histogram_exports(qtbot, make_window, tmp_path):
    win = make_window()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(4, 4)
    png = win.export_histograms_png(tmp_path / "hist.png")
    img = QImage(str(png[0]))
    assert not img.isNull() and img.width() >= 800
    csv_files = win.export_histograms_csv(tmp_path / "hist.csv")
    with open(csv_files[0]) as fh:
        rows = list(csv.DictReader(fh))
    d = {r["parameter"] for r in rows}
    assert len(d) == 13 and len(rows) % 13 == 0


def test_mismatched_model_and_corrupt_file_give_dialogs(qtbot, make_window, dialogs, tiny_bundle, tmp_path):
    win = make_window()
    other = tmp_path / "other_camera"
    shutil.copytree(tiny_bundle, other)
    card = json.loads((other / "model_card.json").read_text())
    card["band_centers_nm"] = [b + 25 for b in card["band_centers_nm"]]
    card["estimator"]["band_centers_nm"] = card["band_centers_nm"]
    (other / "model_card.json").write_text(json.dumps(card))
    assert not win.load_model(other)
    assert dialogs.calls and dialogs.calls[-1][0] == "critical"
    assert "495" in dialogs.calls[-1][2] and "470" in dialogs.calls[-1][2]
    assert win.ws.model_path == tiny_bundle  # the old model stays

    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 100)
    n = len(dialogs.calls)
    assert not win.open_image(bad)
    assert len(dialogs.calls) == n + 1 and "corrupt.h5" in dialogs.calls[-1][2]
    assert win.ws.image_path.name == "cube0.h5"


def test_worker_exception_becomes_a_dialog(qtbot, make_window, dialogs, monkeypatch):
    win = make_window()

    def boom(request):
        raise RuntimeError("network exploded")

    monkeypatch.setattr(win.ws, "compute_pixel", boom)
    win.select_pixel(2, 2)
    qtbot.waitUntil(lambda: any("network exploded" in c[2] for c in dialogs.calls), timeout=WAIT_MS)


def test_close_while_mapping_asks_and_stops(qtbot, make_window, dialogs, tmp_path):
    win = make_window(image=write_cube(tmp_path / "big.h5", h=64, w=48), n_draws_map=2000)
    win.maps_panel.draws.setValue(2000)
    win.maps_panel.btn_image.click()
    qtbot.waitUntil(lambda: win.workers.n_running > 0, timeout=WAIT_MS)
    dialogs.answer = QMessageBox.StandardButton.No
    win.close()
    assert win.isVisible() and dialogs.calls[-1][0] == "question"
    dialogs.answer = QMessageBox.StandardButton.Yes
    win.close()
    assert not win.isVisible() and win.workers.n_running == 0


def test_recent_files_model_card_and_drop(qtbot, make_window, tmp_path, tiny_bundle):
    win = make_window()
    second = write_cube(tmp_path / "second.h5", h=8, w=8)
    win.open_dropped(str(second))
    assert win.ws.image_path == second and win.ws.shape == (8, 8)
    recent = win.recent_files()
    assert recent[0].endswith("second.h5") and recent[1].endswith("cube0.h5")
    assert [a.text() for a in win.recent_menu.actions()][:2] == recent[:2]
    win.open_dropped(str(tiny_bundle))  # a bundle folder loads the model
    assert win.ws.model_path == tiny_bundle
    dlg = win.show_model_card()
    assert dlg is not None and dlg.tabs.count() == 5
    dlg.close()
    # display modes
    win.mode.setCurrentIndex(1)
    win.band_single.setCurrentIndex(6)
    np.testing.assert_array_equal(win.image_view.base.image, win.ws.band(6))
    win.mode.setCurrentIndex(0)
    assert win.image_view.base.image.shape == (8, 8, 3)


def test_hover_and_freehand_region_with_the_mouse(qtbot, make_window):
    win = make_window()
    viewport = win.image_view.graphics.viewport()
    left = Qt.MouseButton.LeftButton
    send_mouse(viewport, "MouseMove", win.image_view.pixel_to_widget(3, 4))
    qtbot.waitUntil(lambda: "row 3, col 4" in win.status_pixel.text(), timeout=5000)
    np.testing.assert_allclose(win.spectrum.hover.yData, win.ws.spectrum(3, 4))
    # free-hand: press the tool button, then drag a triangle on the image
    win.regions_panel.btn_poly.click()
    assert win.image_view.view.draw_mode
    send_mouse(viewport, "MouseButtonPress", win.image_view.pixel_to_widget(1, 1), left, left)
    for r, c in [(1, 3), (1, 6), (1, 9), (1, 12), (4, 8), (6, 5), (9, 1), (5, 1), (2, 1)]:
        send_mouse(viewport, "MouseMove", win.image_view.pixel_to_widget(r, c), Qt.MouseButton.NoButton, left)
        qtbot.wait(5)
    send_mouse(viewport, "MouseButtonRelease", win.image_view.pixel_to_widget(1, 1), left, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: "R1" in win.ws.regions, timeout=5000)
    region = win.ws.regions["R1"]
    assert region.kind == "polygon" and not win.image_view.view.draw_mode
    assert region.mask[2, 2] and region.mask[2, 6] and not region.mask[10, 12]
    assert 15 <= region.n_pixels <= 70  # a triangle of legs ≈ 8 × 11 px


def test_launcher_opens_image_and_model(qtbot, monkeypatch, tmp_path, tiny_bundle, dialogs):
    from PySide6.QtWidgets import QApplication

    from tissue_inn.launcher import main as launcher_main

    monkeypatch.setenv("TISSUE_INN_SETTINGS", str(tmp_path / "app.ini"))
    image = write_cube(tmp_path / "launch.h5")
    seen = {}

    def fake_exec(self):
        win = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        # the window is painted first; model and image load behind a busy indicator
        qtbot.waitUntil(lambda: win.ws.image_path is not None and not win.busy.isVisible(), timeout=WAIT_MS)
        seen.update(model=win.ws.model_path, image=win.ws.image_path, recent=win.recent_files())
        win.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert launcher_main(["gui", str(image), "--model", str(tiny_bundle)]) == 0
    assert seen["model"] == tiny_bundle and seen["image"] == image
    assert seen["recent"][0].endswith("launch.h5") and not dialogs.calls


def test_dead_pixel_click_is_explained_not_crashing(qtbot, make_window, dialogs, tmp_path):
    path = write_cube(tmp_path / "dead.h5")
    with h5py.File(path, "r+") as f:
        f["reflectance"][2, 3, :] = np.nan
    win = make_window(image=path)
    win.select_pixel(2, 3)
    qtbot.waitUntil(lambda: "NaN" in win.posterior_panel.header.text(), timeout=WAIT_MS)
    assert not dialogs.calls and win.ws.pixel_result is None

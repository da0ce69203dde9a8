"""Issue 14, offscreen: numbers and words a clinician reads, masked and empty states, trust in view,
layout at 1024 × 700 and the keyboard."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from conftest import write_cube  # noqa: E402
from gui_fixtures import WAIT_MS, dialogs_fixture, make_window_fixture  # noqa: E402, F401
from PySide6.QtCore import QSettings, Qt  # noqa: E402

from tissue_inn.gui.main_window import MainWindow  # noqa: E402
from tissue_inn.workspace import Workspace  # noqa: E402

OVERCONFIDENT = {"summary": {"snr20": {"sao2_median_abs_ecal": 0.356, "sao2_ecal68": -0.466,
                                       "worst_median_abs_ecal": 0.456, "worst_parameter": "vhb_3"}}}


def test_values_as_text_in_clinical_units(qtbot, make_window):
    win = make_window()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(4, 6)
    s = win.ws.pixel_result.summaries["sao2"]
    expect = f"StO2 {100 * s['median']:.0f} % [{100 * s['q16']:.0f}–{100 * s['q84']:.0f} %]"
    plot = win.posterior_panel.plots["sao2"]
    assert plot.value_text == expect
    assert f"{100 * s['median']:.0f} % [" in plot.plot.titleLabel.text and "StO2" in plot.plot.titleLabel.text
    assert plot.plot.getAxis("bottom").scale == 100.0  # ticks in %, data in the card's fraction
    assert "sao2" in plot.plot.toolTip() and expect in plot.plot.toolTip()
    bvf = win.posterior_panel.plots["vhb_2"]
    assert "blood volume fraction" in bvf.label.long and "2" in bvf.label.long
    assert "[%]" in bvf.plot.getAxis("bottom").labelText


def test_map_colour_bar_and_hover_readout_in_clinical_units(qtbot, make_window):
    win = make_window()
    win.maps_panel.predictive.setChecked(False)
    with qtbot.waitSignal(win.mapsShown, timeout=WAIT_MS):
        win.maps_panel.btn_image.click()
    axis = win.image_view.colorbar.getAxis("right")
    assert "StO2" in axis.labelText and "[%]" in axis.labelText and axis.scale == 100.0
    assert "exact map" in win.maps_panel.kind.text()
    win._on_hover(3, 5)
    maps = win.ws.maps.maps
    med, q25, q75 = (100 * float(maps[f"sao2/{k}"][3, 5]) for k in ("median", "q25", "q75"))
    assert f"StO2 {med:.0f} % [{q25:.0f}–{q75:.0f} %]" in win.status_pixel.text()
    win.statusBar().showMessage("a status message")
    assert win.statusBar().currentMessage() == "a status message" and win.status_pixel.isVisible()


def test_priors_and_hint_before_the_first_click_and_an_empty_window(qtbot, make_window, tmp_path):
    win = make_window()
    plot = win.posterior_panel.plots["sao2"]
    assert plot.data["series"] == {} and plot.data["prior"].sum() > 0
    assert "Click a pixel" in win.posterior_panel.header.text()
    empty = MainWindow(Workspace(), settings=QSettings(str(tmp_path / "e.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(empty)
    empty.show()
    assert empty.image_view.placeholder.isVisible() and "Open image" in empty.image_view.placeholder.text()
    assert "no image" in empty.image_name.text() and not empty.btn_next.isEnabled()
    empty.close()


def test_masked_pixel_clears_the_histograms_and_names_the_reason(qtbot, make_window, dialogs, tmp_path):
    path = write_cube(tmp_path / "masked.h5")
    with h5py.File(path, "r+") as f:
        f["reflectance"][2, 3, :] = np.nan
        f["reflectance"][6, 7, 4] = 1.5
    win = make_window(image=path)
    assert win.image_view.mask_legend.isVisible() and "masked pixels (2)" in win.image_view.mask_legend.text()
    assert win.image_view.masked.image is not None and win.image_view.masked.image[2, 3, 3] > 0
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(5, 5)
    with qtbot.waitSignal(win.pixelMasked, timeout=5000):
        win.select_pixel(6, 7)
    assert win.ws.pixel_result is None and win.posterior_panel.plots["sao2"].data == {}
    assert "row 6, col 7" in win.posterior_panel.banner.text() and "above 1" in win.posterior_panel.banner.text()
    assert not dialogs.calls


def test_calibration_badge_warning_and_model_card(qtbot, make_window, tiny_bundle, tmp_path):
    win = make_window()
    assert "calibration unknown" in win.status_badge.text()
    bad = tmp_path / "overconfident"
    shutil.copytree(tiny_bundle, bad)
    card = json.loads((bad / "model_card.json").read_text())
    card["evaluation"] = OVERCONFIDENT
    (bad / "model_card.json").write_text(json.dumps(card))
    assert win.load_model(bad)
    assert "over-confident" in win.status_badge.text() and "36 %" in win.status_badge.text()
    banner = win.posterior_panel.banner
    assert banner.isVisible() and "over-confident" in banner.text() and "21 %" in banner.text()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(2, 2)
    assert banner.isVisible()  # the warning stays while its numbers are shown
    dlg = win.show_model_card()
    assert dlg.tabs.count() == 5 and dlg.tabs.tabText(0) == "About this model"
    about = dlg.about.toPlainText()
    assert "Intended use" in about and "What it cannot tell" in about and "over-confident" in about
    from PySide6.QtWidgets import QTableWidget

    table = dlg.tabs.widget(1).findChild(QTableWidget)
    assert table.rowCount() == 13 and table.item(0, 0).text() == "sao2" and "oxygen" in table.item(0, 1).text()
    dlg.close()


def test_layout_at_1024_by_700_informed_toggle_and_keyboard(qtbot, make_window, tmp_path):
    win = make_window()
    win.resize(1024, 700)
    qtbot.wait(100)
    assert win.width() <= 1024 and win.height() <= 700
    assert win.image_view.width() > 300 and win.image_view.height() > 200
    assert win.posterior_panel.scroll.viewport().width() > 350 and win.spectrum.height() >= 150
    for w in (win.mode, win.band_r, win.maps_panel.draws, win.btn_next, win.posterior_panel.informed_only):
        assert w.toolTip(), f"{w} has no tooltip"
    win.grab().save(str(tmp_path / "small.png"))
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(5, 5)
    informed = {n for n, p in win.posterior_panel.plots.items() if p.data.get("informed")}
    win.posterior_panel.informed_only.setChecked(True)
    assert set(win.posterior_panel.visible_parameters()) == informed
    win.posterior_panel.informed_only.setChecked(False)
    assert len(win.posterior_panel.visible_parameters()) == 13
    win.image_view.graphics.setFocus()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        qtbot.keyClick(win.image_view.graphics, Qt.Key.Key_Right)
    assert (win.ws.pixel_result.request.row, win.ws.pixel_result.request.col) == (5, 6)
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        qtbot.keyClick(win.image_view.graphics, Qt.Key.Key_Up)
    assert (win.ws.pixel_result.request.row, win.ws.pixel_result.request.col) == (4, 6)
    assert win.quit_action.shortcut().toString() == "Ctrl+Q"
    qtbot.waitUntil(lambda: win.workers.n_running == 0, timeout=WAIT_MS)
    win.quit_action.trigger()
    assert not win.isVisible()

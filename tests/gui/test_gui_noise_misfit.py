"""Issues 11 and 13 in the GUI: the SNR as an editable input shown in the pixel header, the misfit
gate's banner and greyed pixels, and which kind of map is shown."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from types import SimpleNamespace  # noqa: E402

from gui_fixtures import WAIT_MS, dialogs_fixture, make_window_fixture  # noqa: E402, F401


def test_snr_field_drives_clicks_header_and_exports(qtbot, make_window, tmp_path):
    win = make_window()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(3, 3)
    assert "the model's nominal" in win.posterior_panel.header.text()
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.posterior_panel.snr.setValue(30.0)  # re-runs the shown pixel at the new SNR
    assert win.ws.snr == 30.0 and win.ws.pixel_result.request.snr == 30.0
    assert "SNR 30 (set)" in win.posterior_panel.header.text()
    csv_files = win.export_histograms_csv(tmp_path / "h.csv")
    assert "snr" in csv_files[1].read_text().splitlines()[0].split(",")
    rng = win.ws.model.snr_range
    if rng is not None:
        with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
            win.posterior_panel.snr.setValue(rng[0] / 2)
        assert "outside" in win.statusBar().currentMessage()
    win.next_image()  # no other image here; the SNR stays for the next one anyway
    assert win.ws.snr is not None


def test_not_explained_pixel_gets_a_banner_and_faded_histograms(qtbot, make_window, monkeypatch):
    win = make_window()
    real = win.ws.compute_pixel

    def flagged(request):
        result = real(request)
        result.pixel.verdict = SimpleNamespace(
            explained=False, score=3.2, message="residual 0.21, expected 0.03–0.07 at SNR 20 (1 % false-alarm level)."
        )
        return result

    monkeypatch.setattr(win.ws, "compute_pixel", flagged)
    with qtbot.waitSignal(win.pixelShown, timeout=WAIT_MS):
        win.select_pixel(4, 4)
    banner = win.posterior_panel.banner
    assert banner.isVisible() and "Not explained by tiny" in banner.text() and "0.21" in banner.text()
    assert win.posterior_panel.plots["sao2"].plot.opacity() < 1.0
    assert win.posterior_panel.plots["sao2"].data["series"]  # the histograms are kept


def test_unexplained_pixels_are_greyed_with_a_counted_legend(qtbot, make_window, monkeypatch):
    win = make_window()
    win.maps_panel.predictive.setChecked(False)
    with qtbot.waitSignal(win.mapsShown, timeout=WAIT_MS):
        win.maps_panel.btn_image.click()
    flagged = np.zeros(win.ws.shape, bool)
    flagged[2:4, 5:9] = True
    monkeypatch.setattr(win.ws, "unexplained", lambda: (flagged, "8 pixels (4 %) not explained by tiny"))
    win._show_map()
    assert win.image_view.misfit_legend.isVisible() and "8 pixels" in win.image_view.misfit_legend.text()
    img = win.image_view.unexplained.image
    assert img[2, 5, 3] > 0 and img[0, 0, 3] == 0
    assert "exact map" in win.maps_panel.kind.text()
    assert not win.maps_panel.kind_choice.model().item(1).isEnabled()  # the tiny bundle has no amortised net



def test_maps_are_drawn_while_they_are_computed(qtbot, make_window, tmp_path):
    from conftest import write_cube

    win = make_window(image=write_cube(tmp_path / "wide.h5", h=24, w=32), n_draws_map=32)
    win.maps_panel.predictive.setChecked(False)
    win.maps_panel.preview.setChecked(True)
    drawn: list[tuple[int, int]] = []
    real = win._show_map

    def spy():
        real()
        if win.ws.maps is not None and win.image_view.overlay.image is not None:
            drawn.append((int(win.ws.maps.mask.sum()), int(win.ws.maps.mask.size)))

    win._show_map = spy
    win.maps_panel.displayChanged.disconnect()
    win.maps_panel.displayChanged.connect(spy)
    with qtbot.waitSignal(win.mapsShown, timeout=WAIT_MS):
        win.maps_panel.btn_image.click()
    assert drawn and any(done < total for done, total in drawn), drawn  # an overlay before the last row
    assert drawn[-1][0] == drawn[-1][1]

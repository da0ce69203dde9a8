"""The main window: image + spectrum on the left; pixel posterior, regions, maps, latent explorer on the
right. All state and logic live in :class:`tissue_inn.workspace.Workspace`; slow work runs in workers.

Files, folders and models are handled in :mod:`~tissue_inn.gui.window_files`, the pixel side (clicks,
pins, a second model, the SNR, the latent explorer) in :mod:`~tissue_inn.gui.window_pixels`, the
results side (maps, regions, exports) in :mod:`~tissue_inn.gui.window_results`; this module holds the
layout, the menus, the status line and the image display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.errors import TissueInnError
from tissue_inn.gui.image_view import ImageView
from tissue_inn.gui.latent_explorer import LatentExplorer
from tissue_inn.gui.maps_panel import MapsPanel
from tissue_inn.gui.model_dialog import badge_style
from tissue_inn.gui.posterior_panel import PosteriorPanel
from tissue_inn.gui.regions import RegionsPanel
from tissue_inn.gui.spectrum_plot import SpectrumPlot
from tissue_inn.gui.window_files import FilesMixin
from tissue_inn.gui.window_pixels import CLICK_HINT, PixelsMixin
from tissue_inn.gui.window_results import ResultsMixin
from tissue_inn.gui.workers import StopFlag, WorkerRegistry
from tissue_inn.workspace import Workspace, step_image
from tissue_inn.workspace.images import image_suffixes, reason_names
from tissue_inn.workspace.trust import calibration_badge

__all__ = ["MainWindow"]


def _message(exc: BaseException) -> str:
    if isinstance(exc, TissueInnError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class MainWindow(FilesMixin, PixelsMixin, ResultsMixin, QMainWindow):
    """The tissue_inn desktop application.

    Args:
        workspace: The application state (a fresh one by default).
        settings: Where recent files, folders and references are remembered (tests pass an INI file).

    Signals (for tests and scripting):
        pixelShown(int): a pixel posterior was displayed (its generation).
        pixelMasked(int, int): a masked pixel was clicked (row, col).
        predictiveShown(int): its posterior predictive band was displayed.
        compareShown(int): the second model's posterior of the click was displayed.
        mapsShown(): a map result was accepted and displayed.
        mapJobEnded(str): ``"done"``, ``"cancelled"`` or ``"failed"``.
        regionsShown(): region statistics were displayed.
        latentShown(): a latent grid was displayed.
        loadingEnded(bool): a background load (model and image at launch) ended (True: all loaded).
    """

    pixelShown = Signal(int)
    pixelMasked = Signal(int, int)
    predictiveShown = Signal(int)
    compareShown = Signal(int)
    mapsShown = Signal()
    mapJobEnded = Signal(str)
    regionsShown = Signal()
    latentShown = Signal()
    loadingEnded = Signal(bool)

    def __init__(self, workspace: Workspace | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.ws = workspace or Workspace()
        self.settings = settings if settings is not None else QSettings("tissue_inn", "tissue_inn")
        self.workers = WorkerRegistry(self)
        self.setWindowTitle("tissue_inn — posterior tissue parameters")
        self.setAcceptDrops(True)
        self.setMinimumSize(900, 600)
        self.resize(1500, 900)
        self._pending_pixel: tuple[int, int] | None = None
        self._pixel_busy = False
        self._probe: tuple[int, int] | None = None
        self._map_stop: StopFlag | None = None
        self._map_job = None
        self._map_t0 = 0.0
        self._rois: dict[str, Any] = {}
        self._roi_labels: dict[str, Any] = {}
        self._model_warning: str | None = None
        self._snr_warning: str | None = None
        self._build()
        self._build_menus()
        self._refresh_status()

    # ================================================================== layout
    def _build(self) -> None:
        self.image_view = ImageView()
        self.spectrum = SpectrumPlot()
        self.mode = QComboBox()
        self.mode.addItem("pseudo-RGB", "rgb")
        self.mode.addItem("single band", "band")
        self.mode.setToolTip("Show three bands as red/green/blue, or one band with adjustable levels")
        self.mode.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.band_r, self.band_g, self.band_b, self.band_single = QComboBox(), QComboBox(), QComboBox(), QComboBox()
        for combo, what in ((self.band_r, "red"), (self.band_g, "green"), (self.band_b, "blue"), (self.band_single, "shown")):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumContentsLength(6)
            combo.setToolTip(f"The band shown as {what}")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("show"))
        bar.addWidget(self.mode)
        self._band_labels = {}
        for label, combo in (("R", self.band_r), ("G", self.band_g), ("B", self.band_b), ("band", self.band_single)):
            self._band_labels[label] = QLabel(label)
            bar.addWidget(self._band_labels[label])
            bar.addWidget(combo)
        bar.addStretch(1)
        self.btn_prev, self.btn_next = QToolButton(), QToolButton()
        self.btn_prev.setText("◀")
        self.btn_next.setText("▶")
        self.btn_prev.setToolTip("Previous image in this folder (Page Up)")
        self.btn_next.setToolTip("Next image in this folder (Page Down)")
        self.image_name = QLabel("no image")
        self.image_name.setToolTip("The open image and its place in its folder")
        browse = QHBoxLayout()
        browse.addWidget(self.btn_prev)
        browse.addWidget(self.image_name, 1)
        browse.addWidget(self.btn_next)
        self.status_pixel = QLabel("—")
        self.status_pixel.setWordWrap(True)
        self.status_pixel.setToolTip("The pixel under the cursor: reflectances and the shown map's value")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(2, 2, 2, 2)
        ll.addLayout(browse)
        ll.addLayout(bar)
        split_left = QSplitter(Qt.Orientation.Vertical)
        split_left.addWidget(self.image_view)
        split_left.addWidget(self.spectrum)
        split_left.setSizes([620, 240])
        self.spectrum.setMinimumHeight(170)
        ll.addWidget(split_left, 1)
        ll.addWidget(self.status_pixel)

        self.posterior_panel = PosteriorPanel(title="Open an image and a model, then click a pixel.", pinning=True)
        self.regions_panel = RegionsPanel()
        self.maps_panel = MapsPanel()
        self.maps_panel.draws.setValue(self.ws.n_draws_map)
        self.latent = LatentExplorer()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.posterior_panel, "Pixel posterior")
        self.tabs.addTab(self.regions_panel, "Regions")
        self.tabs.addTab(self.maps_panel, "Maps")
        self.tabs.addTab(self.latent, "Latent explorer")

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.tabs)
        split.setSizes([620, 880])
        split.setChildrenCollapsible(False)
        left.setMinimumWidth(360)
        self.tabs.setMinimumWidth(420)
        self.notice = QLabel("")
        self.notice.setVisible(False)
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("background:#d1e7dd; color:#0f5132; padding:4px")
        self.notice.setTextFormat(Qt.TextFormat.RichText)
        self.notice.linkActivated.connect(lambda url: QDesktopServices.openUrl(QUrl(url)))
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.notice)
        cl.addWidget(split, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(140)
        self.busy.setVisible(False)
        self.status_badge = QLabel("")
        self.status_badge.setToolTip("How far the model's intervals can be trusted (from its card)")
        self.status_model = QLabel("")
        self.status_device = QLabel("")
        for w in (self.busy, self.status_badge, self.status_model, self.status_device):
            sb.addPermanentWidget(w)

        self.image_view.pixelClicked.connect(self.select_pixel)
        self.image_view.pixelHovered.connect(self._on_hover)
        self.image_view.arrowPressed.connect(self.move_probe)
        self.image_view.freehandDrawn.connect(lambda pts: self.add_region("polygon", {"points": pts}))
        self.mode.currentIndexChanged.connect(lambda *_: self._show_image())
        for combo in (self.band_r, self.band_g, self.band_b, self.band_single):
            combo.currentIndexChanged.connect(lambda *_: self._show_image())
        self.btn_prev.clicked.connect(self.previous_image)
        self.btn_next.clicked.connect(self.next_image)
        self.posterior_panel.pinRequested.connect(self.pin_pixel)
        self.posterior_panel.clearPinsRequested.connect(self.clear_pins)
        self.posterior_panel.snrChanged.connect(self.set_snr)
        self.posterior_panel.snrEstimateRequested.connect(self.estimate_snr)
        self.maps_panel.computeRequested.connect(self.compute_maps)
        self.maps_panel.cancelRequested.connect(self.cancel_maps)
        self.maps_panel.displayChanged.connect(self._show_map)
        self.maps_panel.opacityChanged.connect(self.image_view.set_overlay_opacity)
        self.regions_panel.addRequested.connect(self._on_add_region)
        self.regions_panel.removeRequested.connect(self.remove_region)
        self.regions_panel.computeRequested.connect(self.compute_regions)
        self.regions_panel.renameRequested.connect(self.rename_region)
        self.regions_panel.showAllChanged.connect(lambda *_: self._show_regions())
        self.latent.settingsChanged.connect(self._compute_latent)

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open image…", self.open_image_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = m.addMenu("Open &recent")
        self.folders_menu = m.addMenu("Recent &folders")
        self._action(m, "&Next image in folder", self.next_image, "PgDown")
        self._action(m, "&Previous image in folder", self.previous_image, "PgUp")
        self._rebuild_recent()
        m.addSeparator()
        self._action(m, "Load &model bundle…", self.load_model_dialog, "Ctrl+M")
        self._action(m, "&Compare with a second model…", self.compare_model_dialog)
        self._action(m, "Stop comparing models", lambda: self.compare_with_model(None))
        self._action(m, "Model &card…", self.show_model_card)
        m.addSeparator()
        exp = m.addMenu("&Export")
        self._action(exp, "Maps as HDF5…", lambda: self.export_maps_dialog("hdf5"))
        self._action(exp, "Maps as TIFF…", lambda: self.export_maps_dialog("tiff"))
        self._action(exp, "Shown map as PNG (with colour bar)…", lambda: self.export_maps_dialog("png"))
        self._action(exp, "Histograms as PNG…", self.export_histograms_png_dialog)
        self._action(exp, "Histograms as CSV…", self.export_histograms_csv_dialog)
        self._action(exp, "Region statistics as CSV…", self.export_regions_dialog)
        m.addSeparator()
        self.quit_action = self._action(m, "&Quit", self.close, "Ctrl+Q")
        mm = self.menuBar().addMenu("M&odel")
        self._action(mm, "&New model… (simulate, train, evaluate)", self.new_model_dialog, "Ctrl+Shift+N")
        v = self.menuBar().addMenu("&View")
        self._action(v, "Reset zoom", self.image_view.reset_zoom, "Ctrl+0")
        self._action(v, "Pin the shown pixel", self.pin_pixel, "Ctrl+P")
        informed = self._action(v, "Informed parameters only", lambda: None)
        informed.setCheckable(True)
        informed.toggled.connect(self.posterior_panel.informed_only.setChecked)
        self.posterior_panel.informed_only.toggled.connect(informed.setChecked)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda *_: slot())
        menu.addAction(act)
        return act

    # ================================================================== errors, status, notices
    def show_error(self, title: str, exc: BaseException | str) -> None:
        """A dialog naming the problem (never a crash)."""
        text = exc if isinstance(exc, str) else _message(exc)
        self.statusBar().showMessage(f"{title}: {text}", 8000)
        QMessageBox.critical(self, title, text)

    def show_notice(self, html: str) -> None:
        """A line above the window's content that stays until the next notice (export confirmations)."""
        self.notice.setText(html)
        self.notice.setVisible(True)

    def confirm_export(self, what: str, paths: list[Path]) -> None:
        """Say where an export went, with a link that opens its folder."""
        if not paths:
            return
        folder = paths[0].parent
        names = ", ".join(p.name for p in paths)
        self.show_notice(
            f"✔ Exported {what}: {names} in {folder} &nbsp; <a href='{QUrl.fromLocalFile(str(folder)).toString()}'>"
            "open folder</a>"
        )
        self.statusBar().showMessage(f"wrote {', '.join(str(p) for p in paths)}", 8000)

    def _refresh_status(self) -> None:
        self.status_model.setText(f"model: {self.ws.model_name}")
        self.status_device.setText(f"device: {self.ws.device}")
        if self.ws.has_model:
            badge = calibration_badge(self.ws.card)
            self.status_badge.setText(badge.text)
            self.status_badge.setStyleSheet(badge_style(badge))
            self.status_badge.setToolTip(badge.detail)
        name = self.ws.image_path.name if self.ws.image_path else "no image"
        self.setWindowTitle(f"tissue_inn — {name} — {self.ws.model_name}")
        self._refresh_browse()

    def _refresh_browse(self) -> None:
        path = self.ws.image_path
        if path is None:
            self.image_name.setText("no image — File ▸ Open image… or drop a file")
            self.btn_prev.setEnabled(False)
            self.btn_next.setEnabled(False)
            return
        suffixes = image_suffixes()
        self.btn_prev.setEnabled(step_image(path, -1, suffixes) is not None)
        self.btn_next.setEnabled(step_image(path, 1, suffixes) is not None)
        self.image_name.setText(f"<b>{path.name}</b> &nbsp; <span style='color:#707070'>{path.parent}</span>")

    # ================================================================== image display
    def _after_image_change(self) -> None:
        self._remove_rois()
        for region in self.ws.regions.values():  # regions carried over from the previous image
            self._add_roi(region)
        combos = (self.band_r, self.band_g, self.band_b, self.band_single)
        n_bands = self.ws.image.shape[2]
        keep = self.band_r.count() == n_bands  # same camera: keep the display settings
        previous = [c.currentIndex() for c in combos]
        for combo in combos:
            combo.blockSignals(True)
            combo.clear()
            for k in range(n_bands):
                combo.addItem(self.ws.band_short_label(k), k)
                combo.setItemData(k, self.ws.band_label(k), Qt.ItemDataRole.ToolTipRole)
        r, g, b = self.ws.default_rgb_bands()
        for combo, idx in zip(combos, previous if keep else (r, g, b, g)):
            combo.setCurrentIndex(idx)
            combo.blockSignals(False)
        self._probe = None
        self._clear_results()
        self._show_image()
        if not keep:
            self.image_view.reset_zoom()
        loaded = self.ws.loaded_image
        names = reason_names()
        legend = ", ".join(f"{n} {names[i + 1]}" for i, n in enumerate(loaded.counts.values()) if n) if loaded else ""
        self.image_view.set_mask(loaded.reasons if loaded is not None else None, legend)
        self._refresh_status()
        self._show_regions()

    def _show_image(self) -> None:
        if not self.ws.has_image:
            return
        rgb_mode = self.mode.currentData() == "rgb"
        for key, combo in (("R", self.band_r), ("G", self.band_g), ("B", self.band_b)):
            combo.setVisible(rgb_mode)
            self._band_labels[key].setVisible(rgb_mode)
        self.band_single.setVisible(not rgb_mode)
        self._band_labels["band"].setVisible(not rgb_mode)
        if rgb_mode:
            bands = (self.band_r.currentIndex(), self.band_g.currentIndex(), self.band_b.currentIndex())
            self.image_view.set_rgb(self.ws.rgb(tuple(max(0, b) for b in bands)))
        else:
            k = max(0, self.band_single.currentIndex())
            self.image_view.set_band(self.ws.band(k), f"reflectance, {self.ws.band_label(k)}")

    def _clear_results(self) -> None:
        self.posterior_panel.clear()
        self.posterior_panel.set_banner(self._model_warning)
        if self.ws.has_model:
            lo_hi = self.ws.model.snr_range
            self.posterior_panel.snr.setToolTip(
                self.posterior_panel.snr.toolTip().split("\n")[0]
                + (f"\n{self.ws.model_name} was trained for SNR {lo_hi[0]:g}–{lo_hi[1]:g}." if lo_hi else "")
            )
        if self.ws.has_model and self.ws.has_image:
            self.posterior_panel.show_priors(self.ws, CLICK_HINT)
        elif self.ws.has_model:
            self.posterior_panel.header.setText("Open an image (File ▸ Open image…, or drop a file on the window).")
        self.regions_panel.histograms.clear()
        self.regions_panel.set_rows([], {})
        self.spectrum.clear()
        self.status_pixel.setText("—")
        self.image_view.mark_pixel(None, None)
        self.image_view.mark_pins([])
        self.image_view.set_overlay(None)
        self.image_view.set_unexplained(None)
        self.maps_panel.set_available([], {})
        self.maps_panel.set_kind("")
        self.latent.grid = None
        self.latent.image.clear()

    # ================================================================== closing
    def closeEvent(self, event) -> None:  # noqa: N802
        """Ask before closing while a job runs; stop it cleanly."""
        running = [n for n in self.workers.names() if n in ("maps", "regions", "make model")]
        if running:
            answer = QMessageBox.question(
                self,
                "Stop running work?",
                f"{', '.join(sorted(set(running)))} still running. Stop and close?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.workers.stop_and_wait(15000)
        event.accept()

"""The main window: image + spectrum on the left; pixel posterior, regions, maps, latent explorer on the
right. All state and logic live in :class:`tissue_inn.workspace.Workspace`; slow work runs in workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.errors import Cancelled, TissueInnError
from tissue_inn.gui.image_view import ImageView
from tissue_inn.gui.latent_explorer import LatentExplorer
from tissue_inn.gui.maps_panel import MapsPanel, format_eta
from tissue_inn.gui.model_dialog import ModelCardDialog
from tissue_inn.gui.posterior_panel import PosteriorPanel, SpectrumPlot
from tissue_inn.gui.regions import RegionsPanel, make_roi, roi_geometry
from tissue_inn.gui.workers import StopFlag, WorkerRegistry
from tissue_inn.progress import Progress
from tissue_inn.workspace import Workspace, push_recent
from tissue_inn.workspace.images import image_filter
from tissue_inn.workspace.models import bundle_folder_of

__all__ = ["MainWindow"]

def _message(exc: BaseException) -> str:
    if isinstance(exc, TissueInnError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class MainWindow(QMainWindow):
    """The tissue_inn desktop application.

    Args:
        workspace: The application state (a fresh one by default).
        settings: Where recent files are remembered (tests pass a temporary INI file).

    Signals (for tests and scripting):
        pixelShown(int): a pixel posterior was displayed (its generation).
        predictiveShown(int): its posterior predictive band was displayed.
        mapsShown(): a map result was accepted and displayed.
        mapJobEnded(str): ``"done"``, ``"cancelled"`` or ``"failed"``.
        regionsShown(): region statistics were displayed.
        latentShown(): a latent grid was displayed.
    """

    pixelShown = Signal(int)
    predictiveShown = Signal(int)
    mapsShown = Signal()
    mapJobEnded = Signal(str)
    regionsShown = Signal()
    latentShown = Signal()

    def __init__(self, workspace: Workspace | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.ws = workspace or Workspace()
        self.settings = settings if settings is not None else QSettings("tissue_inn", "tissue_inn")
        self.workers = WorkerRegistry(self)
        self.setWindowTitle("tissue_inn — posterior tissue parameters")
        self.setAcceptDrops(True)
        self.resize(1500, 900)
        self._pending_pixel: tuple[int, int] | None = None
        self._pixel_busy = False
        self._map_stop: StopFlag | None = None
        self._map_t0 = 0.0
        self._rois: dict[str, Any] = {}
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
        self.band_r, self.band_g, self.band_b, self.band_single = QComboBox(), QComboBox(), QComboBox(), QComboBox()
        for combo in (self.band_r, self.band_g, self.band_b, self.band_single):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("show"))
        bar.addWidget(self.mode)
        for label, combo in (("R", self.band_r), ("G", self.band_g), ("B", self.band_b), ("band", self.band_single)):
            bar.addWidget(QLabel(label))
            bar.addWidget(combo)
        bar.addStretch(1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(2, 2, 2, 2)
        ll.addLayout(bar)
        split_left = QSplitter(Qt.Orientation.Vertical)
        split_left.addWidget(self.image_view)
        split_left.addWidget(self.spectrum)
        split_left.setSizes([620, 260])
        ll.addWidget(split_left, 1)

        self.posterior_panel = PosteriorPanel(title="Click a pixel to see its posterior.")
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
        self.setCentralWidget(split)

        sb = self.statusBar()
        self.status_pixel = QLabel("—")
        self.status_model = QLabel("")
        self.status_device = QLabel("")
        sb.addPermanentWidget(self.status_pixel, 1)
        sb.addPermanentWidget(self.status_model)
        sb.addPermanentWidget(self.status_device)

        self.image_view.pixelClicked.connect(self.select_pixel)
        self.image_view.pixelHovered.connect(self._on_hover)
        self.image_view.freehandDrawn.connect(lambda pts: self.add_region("polygon", {"points": pts}))
        self.mode.currentIndexChanged.connect(lambda *_: self._show_image())
        for combo in (self.band_r, self.band_g, self.band_b, self.band_single):
            combo.currentIndexChanged.connect(lambda *_: self._show_image())
        self.maps_panel.computeRequested.connect(self.compute_maps)
        self.maps_panel.cancelRequested.connect(self.cancel_maps)
        self.maps_panel.displayChanged.connect(self._show_map)
        self.maps_panel.opacityChanged.connect(self.image_view.set_overlay_opacity)
        self.regions_panel.addRequested.connect(self._on_add_region)
        self.regions_panel.removeRequested.connect(self.remove_region)
        self.regions_panel.computeRequested.connect(self.compute_regions)
        self.latent.settingsChanged.connect(self._compute_latent)

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open image…", self.open_image_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = m.addMenu("Open &recent")
        self._rebuild_recent()
        m.addSeparator()
        self._action(m, "Load &model bundle…", self.load_model_dialog, "Ctrl+M")
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
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        v = self.menuBar().addMenu("&View")
        self._action(v, "Reset zoom", self.image_view.reset_zoom, "Ctrl+0")

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda *_: slot())
        menu.addAction(act)
        return act

    # ================================================================== errors & status
    def show_error(self, title: str, exc: BaseException | str) -> None:
        """A dialog naming the problem (never a crash)."""
        text = exc if isinstance(exc, str) else _message(exc)
        self.statusBar().showMessage(f"{title}: {text}", 8000)
        QMessageBox.critical(self, title, text)

    def _refresh_status(self) -> None:
        self.status_model.setText(f"model: {self.ws.model_name}")
        self.status_device.setText(f"device: {self.ws.device}")
        name = self.ws.image_path.name if self.ws.image_path else "no image"
        self.setWindowTitle(f"tissue_inn — {name} — {self.ws.model_name}")

    # ================================================================== files
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str | Path) -> None:
        self.settings.setValue("recent_files", push_recent(self.recent_files(), path))
        self.settings.sync()
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for f in files:
            act = QAction(f, self)
            act.triggered.connect(lambda *_, f=f: self.open_image(f))
            self.recent_menu.addAction(act)
        self.recent_menu.setEnabled(bool(files))

    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open multispectral image", "", image_filter())
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        """Load an image; errors (corrupt file, bands that do not fit the model) become a dialog."""
        try:
            self.ws.load_image(path)
        except Exception as exc:  # noqa: BLE001 — every failure is reported, none crashes the app
            self.show_error("Cannot open image", exc)
            return False
        self._remember(path)
        self._after_image_change()
        self.statusBar().showMessage(f"opened {path}", 4000)
        return True

    def load_model_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Load model bundle (folder with model_card.json)")
        if folder:
            self.load_model(folder)

    def load_model(self, name_or_path: str | Path | None = None, device: str | None = None) -> bool:
        """Load a model bundle; a model whose bands do not match the image is refused with a dialog."""
        if self.workers.n_running:
            self.workers.stop_and_wait(5000)
        try:
            self.ws.load_model(name_or_path, device=device)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot load model", exc)
            return False
        self.posterior_panel.configure(self.ws)
        self.regions_panel.histograms.configure(self.ws)
        self._configure_latent()
        self._clear_results()
        self._refresh_status()
        return True

    def show_model_card(self) -> ModelCardDialog | None:
        if not self.ws.has_model:
            self.show_error("No model", "load a model bundle first")
            return None
        dlg = ModelCardDialog(self.ws.card, self.ws.model_path, self)
        dlg.show()
        return dlg

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            self.open_dropped(url.toLocalFile())
        event.acceptProposedAction()

    def open_dropped(self, path: str) -> None:
        bundle = bundle_folder_of(path)
        if bundle is not None:
            self.load_model(bundle)
        else:
            self.open_image(Path(path))

    # ================================================================== image display
    def _after_image_change(self) -> None:
        for name, roi in list(self._rois.items()):
            self.image_view.view.removeItem(roi)
            self._rois.pop(name)
        combos = (self.band_r, self.band_g, self.band_b, self.band_single)
        for combo in combos:
            combo.blockSignals(True)
            combo.clear()
            for k in range(self.ws.image.shape[2]):
                combo.addItem(self.ws.band_label(k), k)
        r, g, b = self.ws.default_rgb_bands()
        self.band_r.setCurrentIndex(r)
        self.band_g.setCurrentIndex(g)
        self.band_b.setCurrentIndex(b)
        self.band_single.setCurrentIndex(g)
        for combo in combos:
            combo.blockSignals(False)
        self._clear_results()
        self._show_image()
        self.image_view.reset_zoom()
        self._refresh_status()

    def _show_image(self) -> None:
        if not self.ws.has_image:
            return
        rgb_mode = self.mode.currentData() == "rgb"
        for combo in (self.band_r, self.band_g, self.band_b):
            combo.setEnabled(rgb_mode)
        self.band_single.setEnabled(not rgb_mode)
        if rgb_mode:
            bands = (self.band_r.currentIndex(), self.band_g.currentIndex(), self.band_b.currentIndex())
            self.image_view.set_rgb(self.ws.rgb(tuple(max(0, b) for b in bands)))
        else:
            k = max(0, self.band_single.currentIndex())
            self.image_view.set_band(self.ws.band(k), f"reflectance, {self.ws.band_label(k)}")

    def _clear_results(self) -> None:
        self.posterior_panel.clear()
        self.regions_panel.histograms.clear()
        self.regions_panel.set_rows([], {})
        self.spectrum.clear()
        self.image_view.mark_pixel(None, None)
        self.image_view.set_overlay(None)
        self.maps_panel.set_available([], {})
        self.latent.grid = None
        self.latent.image.clear()

    def _on_hover(self, row: int, col: int) -> None:
        if not self.ws.has_image or not self.ws.inside(row, col):
            return
        s = self.ws.spectrum(row, col)
        wl = self.ws.wavelengths_nm if self.ws.wavelengths_nm is not None else np.arange(s.size)
        self.spectrum.set_hover(wl, s)
        text = f"pixel (row {row}, col {col}) · R = " + " ".join(f"{v:.3f}" for v in s)
        if self.ws.maps is not None and self.maps_panel.current_key():
            key = self.maps_panel.current_key()
            try:
                v = float(self.ws.map_image(key)[row, col])
                text += f" · {key} = {v:.4g} {self.ws.map_unit(key)}"
            except KeyError:
                pass
        self.status_pixel.setText(text)

    # ================================================================== pixel posterior
    def select_pixel(self, row: int, col: int) -> None:
        """Compute the posterior of one pixel off the GUI thread (older requests are dropped)."""
        if not self.ws.ready:
            self.show_error("Not ready", "load a model and an image whose bands match first")
            return
        if not self.ws.inside(row, col):
            return
        self.image_view.mark_pixel(row, col)
        if self._pixel_busy:
            self._pending_pixel = (row, col)  # coalesce: only the latest click is computed next
            self.ws.request_pixel(row, col)  # bumps the generation: the running answer is now stale
            return
        self._start_pixel(row, col)

    def _start_pixel(self, row: int, col: int) -> None:
        try:
            request = self.ws.request_pixel(row, col)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot compute this pixel", exc)
            return
        self._pixel_busy = True
        self.posterior_panel.header.setText(f"computing pixel (row {row}, col {col}) …")
        self.workers.start(
            self.ws.compute_pixel,
            request,
            name="pixel",
            on_returned=self._on_pixel,
            on_errored=self._on_pixel_error,
            on_finished=self._on_pixel_finished,
        )

    def _on_pixel(self, result) -> None:
        if not self.ws.accept_pixel(result):
            return
        self.posterior_panel.show_pixel(self.ws)
        req = result.request
        self.spectrum.set_pixel(self.ws.band_centers_nm, req.spectrum, None)
        self._compute_latent()
        self.pixelShown.emit(req.generation)
        if self.ws.posterior is not None and getattr(self.ws.posterior, "has_forward_model", False):
            self.workers.start(
                self.ws.compute_predictive,
                result,
                name="predictive",
                on_returned=lambda check: self._on_predictive(result, check),
                on_errored=lambda exc: self.statusBar().showMessage(f"predictive check failed: {exc}", 8000),
            )

    def _on_predictive(self, result, check) -> None:
        if check is None or not self.ws.accept_predictive(result, check):
            return
        req = result.request
        self.spectrum.set_pixel(self.ws.band_centers_nm, req.spectrum, self.ws.predictive_quantiles(result))
        res = getattr(check, "relative_residual", float("nan"))
        self.spectrum.plot.setTitle(
            f"pixel (row {req.row}, col {req.col}) · predictive residual {100 * res:.1f} %", size="9pt"
        )
        self.predictiveShown.emit(req.generation)

    def _on_pixel_error(self, exc: BaseException) -> None:
        if self._pending_pixel is not None:
            return  # the user has clicked on; this answer is stale anyway
        if isinstance(exc, TissueInnError):  # e.g. a dead or saturated pixel: say so, no dialog
            self.posterior_panel.header.setText(f"<span style='color:#b00000'>{exc}</span>")
            self.statusBar().showMessage(str(exc), 8000)
            return
        self.show_error("Pixel posterior failed", exc)

    def _on_pixel_finished(self) -> None:
        self._pixel_busy = False
        if self._pending_pixel is not None:
            row, col = self._pending_pixel
            self._pending_pixel = None
            self._start_pixel(row, col)

    # ================================================================== latent explorer
    def _configure_latent(self) -> None:
        try:
            n = self.ws.n_latent()
        except TissueInnError:
            n = 0
        self.latent.configure(
            self.ws.parameter_names,
            self.ws.units,
            {name: self.ws.plot_range(name) for name in self.ws.parameter_names},
            max(n, 1),
        )

    def _compute_latent(self) -> None:
        result = self.ws.pixel_result
        if result is None or not self.ws.has_model:
            return
        a, b = self.latent.dims()
        if b == a:
            return
        req = result.request
        gen = req.generation
        self.workers.start(
            self.ws.latent_grid,
            req.spectrum,
            a,
            b,
            self.latent.extent.value(),
            name="latent",
            on_returned=lambda grid: self._on_latent(gen, grid, (req.row, req.col)),
            on_errored=lambda exc: self.show_error("Latent explorer failed", exc),
        )

    def _on_latent(self, generation: int, grid, pixel) -> None:
        if generation != self.ws.generation:
            return
        self.latent.set_grid(grid, pixel)
        self.latentShown.emit()

    # ================================================================== maps
    def selected_region_mask(self) -> np.ndarray | None:
        name = self.regions_panel.selected_region or (list(self.ws.regions)[-1] if self.ws.regions else None)
        return self.ws.regions[name].mask if name in self.ws.regions else None

    def compute_maps(self, scope: str = "image") -> None:
        """Compute maps of the whole image or the selected region in the background."""
        if any(n == "maps" for n in self.workers.names()):
            return
        roi = None
        if scope == "region":
            roi = self.selected_region_mask()
            if roi is None:
                self.show_error("No region", "draw a region first (Regions tab), or compute the whole image")
                return
        try:
            job = self.ws.new_map_job(
                roi, n_draws=self.maps_panel.draws.value(), predictive=self.maps_panel.predictive.isChecked()
            )
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot compute maps", exc)
            return
        self._map_stop = StopFlag()
        self._map_t0 = time.monotonic()
        self.maps_panel.set_running(True)
        self.statusBar().showMessage("computing maps …")
        self.workers.start(
            self.ws.run_map_job,
            job,
            self._map_stop,
            name="maps",
            stop_flag=self._map_stop,
            on_yielded=self._on_map_progress,
            on_returned=lambda res: self._on_maps(job, res),
            on_errored=self._on_map_error,
            on_finished=self._on_map_finished,
        )

    def _on_map_progress(self, p: Progress) -> None:
        frac = p.fraction
        eta = p.extra.get("eta_s") if isinstance(p.extra, dict) else None
        if eta is None:
            dt = time.monotonic() - self._map_t0
            eta = dt * (1 - frac) / frac if frac > 0 else float("inf")
        self.maps_panel.set_progress(frac, f"{p.done} / {p.total} · {format_eta(float(eta))} · {p.message}")

    def _on_maps(self, job, result) -> None:
        if not self.ws.accept_maps(job, result):
            return
        params = self.ws.map_parameters()
        self.maps_panel.set_available(params, {p: self.ws.map_statistics(p) for p in params})
        self._show_map()
        self.mapJobEnded.emit("done")
        self.mapsShown.emit()
        self.statusBar().showMessage(f"maps done in {time.monotonic() - self._map_t0:.1f} s", 5000)

    def _on_map_error(self, exc: BaseException) -> None:
        if isinstance(exc, (Cancelled, GeneratorExit)) or (self._map_stop is not None and self._map_stop()):
            return  # reported once by _on_map_finished
        self.mapJobEnded.emit("failed")
        self.show_error("Map computation failed", exc)

    def _on_map_finished(self) -> None:
        self.maps_panel.set_running(False)
        if self._map_stop is not None and self._map_stop():
            self.maps_panel.set_progress(0, "cancelled")
            self.statusBar().showMessage("map computation cancelled", 5000)
            self.mapJobEnded.emit("cancelled")
        self._map_stop = None

    def cancel_maps(self) -> None:
        self.workers.stop("maps")

    def _show_map(self) -> None:
        key = self.maps_panel.current_key()
        if self.ws.maps is None or not key or self.maps_panel.btn_hide.isChecked():
            self.image_view.set_overlay(None)
            return
        try:
            img = self.ws.map_image(key)
        except KeyError:
            return
        lo, hi = self.ws.map_range(key, self.maps_panel.range_mode.currentData())
        unit = self.ws.map_unit(key)
        label = f"{key}" + (f" [{unit}]" if unit else "")
        self.image_view.set_overlay(
            img, (lo, hi), self.maps_panel.cmap.currentText(), self.maps_panel.opacity.value() / 100.0, label
        )

    # ================================================================== regions
    def _on_add_region(self, kind: str) -> None:
        if not self.ws.has_image:
            self.show_error("No image", "open an image first")
            return
        if kind == "polygon":
            self.image_view.view.draw_mode = True
            self.statusBar().showMessage("drag on the image to trace the region's outline", 5000)
            return
        h, w = self.ws.shape
        (x0, x1), (y0, y1) = self.image_view.view.viewRange()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        size = max(2.0, min(w, h, x1 - x0, y1 - y0) / 4)
        self.add_region(kind, {"x": cx - size / 2, "y": cy - size / 2, "w": size, "h": size})

    def add_region(self, kind: str, geometry: dict[str, Any]) -> str | None:
        """Add a region with its ROI on the image; returns its name."""
        try:
            region = self.ws.add_region(kind, geometry)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot add region", exc)
            return None
        roi = make_roi(kind, region.geometry, region.color)
        self.image_view.view.addItem(roi)
        self._rois[region.name] = roi
        roi.sigRegionChangeFinished.connect(lambda *_, n=region.name, k=kind: self._on_roi_moved(n, k))
        roi.sigClicked.connect(lambda *_, n=region.name: self._select_region(n))
        roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.regions_panel.selected_region = region.name
        return region.name

    def _select_region(self, name: str) -> None:
        self.regions_panel.selected_region = name

    def _on_roi_moved(self, name: str, kind: str) -> None:
        if name in self._rois and name in self.ws.regions:
            self.ws.update_region(name, roi_geometry(kind, self._rois[name]))

    def remove_region(self, name: str) -> None:
        roi = self._rois.pop(name, None)
        if roi is not None:
            self.image_view.view.removeItem(roi)
        self.ws.remove_region(name)
        if self.regions_panel.selected_region == name:
            self.regions_panel.selected_region = None
        self._show_regions()

    def compute_regions(self) -> None:
        if not self.ws.regions:
            self.show_error("No regions", "draw one or more regions first")
            return
        if not self.ws.ready:
            self.show_error("Not ready", "load a model and an image whose bands match first")
            return
        gen = self.ws.compute_regions(n_draws_per_pixel=self.regions_panel.draws.value())
        self.regions_panel.btn_compute.setEnabled(False)

        def drive(g):
            return (yield from g)

        self.workers.start(
            drive,
            gen,
            name="regions",
            on_returned=self._on_regions,
            on_errored=lambda exc: self.show_error("Region statistics failed", exc),
            on_finished=lambda: self.regions_panel.btn_compute.setEnabled(True),
        )

    def _on_regions(self, answer) -> None:
        pooled, rows = answer
        self.ws.accept_regions(pooled, rows)
        self._show_regions()
        self.regionsShown.emit()

    def _show_regions(self) -> None:
        colors = {n: r.color for n, r in self.ws.regions.items()}
        series = [(n, s, colors[n]) for n, s in self.ws.region_samples.items() if n in colors]
        if series:
            self.regions_panel.histograms.show_pooled(self.ws, series)
        else:
            self.regions_panel.histograms.clear()
        self.regions_panel.set_rows(self.ws.region_stats, colors)

    # ================================================================== export
    def _save_path(self, title: str, filt: str, default: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filt)
        return path or None

    def _export(self, what: str, func, *args, **kwargs) -> list[Path]:
        try:
            out = func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"Cannot export {what}", exc)
            return []
        out = out if isinstance(out, list) else [out]
        self.statusBar().showMessage(f"wrote {', '.join(str(p) for p in out)}", 6000)
        return [Path(p) for p in out]

    def export_maps_dialog(self, fmt: str) -> None:
        ext = {"hdf5": "h5", "tiff": "tif", "png": "png"}[fmt]
        path = self._save_path(f"Export maps ({fmt})", f"*.{ext}", f"maps.{ext}")
        if path:
            self.export_maps(path, fmt)

    def export_maps(self, path: str | Path, fmt: str, force: bool = True) -> list[Path]:
        """HDF5/TIFF: all maps; PNG: the shown map with its colour bar."""
        keys = None
        if fmt == "png":
            key = self.maps_panel.current_key()
            keys = [key] if key else None
        return self._export(
            "maps",
            self.ws.export_maps,
            path,
            fmt,
            keys=keys,
            force=force,
            range_mode=self.maps_panel.range_mode.currentData(),
        )

    def export_histograms_png_dialog(self) -> None:
        path = self._save_path("Export histograms (PNG)", "*.png", "histograms.png")
        if path:
            self.export_histograms_png(path)

    def export_histograms_png(self, path: str | Path, force: bool = True) -> list[Path]:
        def write(p: Path) -> Path:
            from pyqtgraph.exporters import ImageExporter

            from tissue_inn.atomic import atomic_path

            if self.ws.pixel_result is None:
                raise TissueInnError("no pixel posterior yet; click a pixel first")
            panel = self.posterior_panel
            exporter = ImageExporter(panel.graphics.scene())
            exporter.parameters()["width"] = max(1200, panel.graphics.width() * 2)
            image = exporter.export(toBytes=True)
            with atomic_path(p, force=force) as tmp:
                if not image.save(str(tmp), "PNG"):
                    raise TissueInnError(f"cannot write {p}")
            return Path(p)

        return self._export("histograms", write, Path(path))

    def export_histograms_csv_dialog(self) -> None:
        path = self._save_path("Export histograms (CSV)", "*.csv", "histograms.csv")
        if path:
            self.export_histograms_csv(path)

    def export_histograms_csv(self, path: str | Path, force: bool = True) -> list[Path]:
        return self._export("histograms", self.ws.export_histograms_csv, path, force=force)

    def export_regions_dialog(self) -> None:
        path = self._save_path("Export region statistics (CSV)", "*.csv", "regions.csv")
        if path:
            self.export_region_stats(path)

    def export_region_stats(self, path: str | Path, force: bool = True) -> list[Path]:
        return self._export("region statistics", self.ws.export_region_stats_csv, path, force=force)

    # ================================================================== closing
    def closeEvent(self, event) -> None:  # noqa: N802
        """Ask before closing while a job runs; stop it cleanly."""
        running = [n for n in self.workers.names() if n in ("maps", "regions")]
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

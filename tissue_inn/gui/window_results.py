"""The main window's results side: maps (computed in the background, drawn with clinical colour
bars), regions (labelled, renamable, compared) and every export (confirmed with the path).
Mixed into :class:`~tissue_inn.gui.main_window.MainWindow`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tissue_inn.errors import Cancelled, TissueInnError
from tissue_inn.gui.maps_panel import format_eta
from tissue_inn.gui.regions import make_roi, roi_geometry
from tissue_inn.gui.workers import StopFlag
from tissue_inn.progress import Progress
from tissue_inn.workspace import Workspace
from tissue_inn.workspace.regions import display_rows

if TYPE_CHECKING:
    from tissue_inn.gui.main_window import MainWindow

__all__ = ["ResultsMixin"]


class ResultsMixin:
    """Maps, regions and exports of the main window."""

    ws: Workspace

    # ================================================================== maps
    def selected_region_mask(self: MainWindow) -> np.ndarray | None:
        name = self.regions_panel.selected_region or (list(self.ws.regions)[-1] if self.ws.regions else None)
        return self.ws.regions[name].mask if name in self.ws.regions else None

    def compute_maps(self: MainWindow, scope: str = "image") -> None:
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
                roi, n_draws=self.maps_panel.draws.value(), predictive=self.maps_panel.predictive.isChecked(),
                kind=self.maps_panel.kind_choice.currentData(), preview=self.maps_panel.preview.isChecked(),
            )
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot compute maps", exc)
            return
        self._map_stop = StopFlag()
        self._map_job = job
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

    def _on_map_progress(self: MainWindow, p: Progress) -> None:
        frac = p.fraction
        eta = p.extra.get("eta_s") if isinstance(p.extra, dict) else None
        if eta is None:
            dt = time.monotonic() - self._map_t0
            eta = dt * (1 - frac) / frac if frac > 0 else float("inf")
        self.maps_panel.set_progress(frac, f"{p.done} / {p.total} · {format_eta(float(eta))} · {p.message}")
        live = p.extra.get("result") if isinstance(p.extra, dict) else None
        if live is not None and self._map_job is not None and self.ws.accept_maps(self._map_job, live):
            if self.maps_panel.parameter.count() == 0:
                self._show_maps()  # progressive: the first rows (or the coarse preview) appear at once
            else:
                self._show_map()  # the same maps, filled in further

    def _show_maps(self: MainWindow) -> None:
        params = self.ws.map_parameters()
        self.maps_panel.set_available(params, {p: self.ws.map_statistics(p) for p in params})
        self._show_map()

    def _on_maps(self: MainWindow, job, result) -> None:
        if not self.ws.accept_maps(job, result):
            return
        self._show_maps()
        self.mapJobEnded.emit("done")
        self.mapsShown.emit()
        self.statusBar().showMessage(f"maps done in {time.monotonic() - self._map_t0:.1f} s", 5000)

    def _on_map_error(self: MainWindow, exc: BaseException) -> None:
        partial = getattr(exc, "partial", None) if isinstance(exc, Cancelled) else None
        if partial is not None and self._map_job is not None and partial.rows_done > 0:
            if self.ws.accept_maps(self._map_job, partial):  # keep what was computed, marked incomplete
                self._show_maps()
        if isinstance(exc, (Cancelled, GeneratorExit)) or (self._map_stop is not None and self._map_stop()):
            return  # reported once by _on_map_finished
        self.mapJobEnded.emit("failed")
        self.show_error("Map computation failed", exc)

    def _on_map_finished(self: MainWindow) -> None:
        self.maps_panel.set_running(False)
        if self._map_stop is not None and self._map_stop():
            kept = self.ws.maps is not None and not self.ws.maps.complete
            text = f"cancelled — {self.ws.map_kind()} kept" if kept else "cancelled"
            self.maps_panel.set_progress(0, text)
            self.statusBar().showMessage(f"map computation {text}", 8000)
            self.mapJobEnded.emit("cancelled")
        self._map_stop = None
        self._map_job = None

    def cancel_maps(self: MainWindow) -> None:
        self.workers.stop("maps")

    def _show_map(self: MainWindow) -> None:
        key = self.maps_panel.current_key()
        if self.ws.maps is None or not key or self.maps_panel.btn_hide.isChecked():
            self.image_view.set_overlay(None)
            return
        try:
            img = self.ws.map_image(key)
        except KeyError:
            return
        lo, hi = self.ws.map_range(key, self.maps_panel.range_mode.currentData())
        label, scale = self.ws.map_axis(key)
        self.image_view.set_overlay(
            img, (lo, hi), self.maps_panel.cmap.currentText(), self.maps_panel.opacity.value() / 100.0, label, scale
        )
        self.maps_panel.set_kind(self.ws.map_kind())
        flagged, legend = self.ws.unexplained()
        self.image_view.set_unexplained(flagged, legend)

    # ================================================================== regions
    def _on_add_region(self: MainWindow, kind: str) -> None:
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

    def add_region(self: MainWindow, kind: str, geometry: dict[str, Any]) -> str | None:
        """Add a region with its ROI on the image; returns its name."""
        try:
            region = self.ws.add_region(kind, geometry)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot add region", exc)
            return None
        self._add_roi(region)
        self.regions_panel.selected_region = region.name
        self._show_regions()
        return region.name

    def _add_roi(self: MainWindow, region) -> None:
        """The ROI of a region on the image, with its name written beside it."""
        roi = make_roi(region.kind, region.geometry, region.color)
        self.image_view.view.addItem(roi)
        # a dark backing keeps the name readable over any map colour
        label = pg.TextItem(region.name, color=region.color, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 170))
        label.setZValue(31)
        self.image_view.view.addItem(label)
        self._rois[region.name] = roi
        self._roi_labels[region.name] = label
        self._place_label(region.name)
        roi.sigRegionChangeFinished.connect(lambda *_, r=region: self._on_roi_moved(r.name, r.kind))
        roi.sigClicked.connect(lambda *_, r=region: self._select_region(r.name))
        roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)

    def _place_label(self: MainWindow, name: str) -> None:
        region = self.ws.regions.get(name)
        if region is None or name not in self._roi_labels:
            return
        rows, cols = np.nonzero(region.mask)
        x, y = (float(cols.min()), float(rows.min())) if rows.size else (0.0, 0.0)
        self._roi_labels[name].setText(name)
        self._roi_labels[name].setPos(x, y)

    def _remove_rois(self: MainWindow) -> None:
        for name in list(self._rois):
            self.image_view.view.removeItem(self._rois.pop(name))
            self.image_view.view.removeItem(self._roi_labels.pop(name))

    def rename_region(self: MainWindow, old: str, new: str) -> bool:
        """Rename a region (its label on the image and its rows in the tables follow)."""
        try:
            self.ws.rename_region(old, new)
        except Exception as exc:  # noqa: BLE001
            self.show_error("Cannot rename the region", exc)
            self._show_regions()
            return False
        new = new.strip()
        self._rois[new] = self._rois.pop(old)
        self._roi_labels[new] = self._roi_labels.pop(old)
        if self.regions_panel.selected_region == old:
            self.regions_panel.selected_region = new
        self._place_label(new)
        self._show_regions()
        return True

    def _select_region(self: MainWindow, name: str) -> None:
        self.regions_panel.selected_region = name

    def _on_roi_moved(self: MainWindow, name: str, kind: str) -> None:
        if name in self._rois and name in self.ws.regions:
            self.ws.update_region(name, roi_geometry(kind, self._rois[name]))
            self._place_label(name)

    def remove_region(self: MainWindow, name: str) -> None:
        roi = self._rois.pop(name, None)
        if roi is not None:
            self.image_view.view.removeItem(roi)
            self.image_view.view.removeItem(self._roi_labels.pop(name))
        self.ws.remove_region(name)
        if self.regions_panel.selected_region == name:
            self.regions_panel.selected_region = None
        self._show_regions()

    def compute_regions(self: MainWindow) -> None:
        if not self.ws.regions:
            self.show_error("No regions", "draw one or more regions first")
            return
        if not self.ws.ready:
            self.show_error("Not ready", "load a model and an image whose bands match first")
            return
        gen = self.ws.compute_regions(n_draws_per_pixel=self.regions_panel.draws.value())
        self.regions_panel.btn_compute.setEnabled(False)
        self.regions_panel.set_progress(0.0)

        def drive(g):
            return (yield from g)

        self.workers.start(
            drive,
            gen,
            name="regions",
            on_yielded=lambda p: self.regions_panel.set_progress(p.fraction),
            on_returned=self._on_regions,
            on_errored=lambda exc: self.show_error("Region statistics failed", exc),
            on_finished=self._on_regions_finished,
        )

    def _on_regions_finished(self: MainWindow) -> None:
        self.regions_panel.btn_compute.setEnabled(True)
        self.regions_panel.set_progress(None)

    def _on_regions(self: MainWindow, answer) -> None:
        pooled, rows = answer
        self.ws.accept_regions(pooled, rows)
        self._show_regions()
        self.regionsShown.emit()

    def _show_regions(self: MainWindow) -> None:
        colors = {n: r.color for n, r in self.ws.regions.items()}
        series = [(n, s, colors[n]) for n, s in self.ws.region_samples.items() if n in colors]
        if series:
            self.regions_panel.histograms.show_pooled(self.ws, series)
        else:
            self.regions_panel.histograms.clear()
        self.regions_panel.set_rows(display_rows(self.ws.region_stats, self.ws.labels), colors)
        headers, rows = self.ws.region_comparison(self.regions_panel.show_all.isChecked())
        self.regions_panel.set_summary(headers, rows, colors)

    # ================================================================== export
    def _save_path(self: MainWindow, title: str, filt: str, kind: str) -> str | None:
        """Ask where to save; the default sits next to the image and is named after it."""
        path, _ = QFileDialog.getSaveFileName(self, title, str(self.ws.default_export_path(kind)), filt)
        return path or None

    def _export(self: MainWindow, what: str, func, *args, **kwargs) -> list[Path]:
        try:
            out = func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"Cannot export {what}", exc)
            return []
        out = [Path(p) for p in (out if isinstance(out, list) else [out])]
        self.confirm_export(what, out)
        return out

    def export_maps_dialog(self: MainWindow, fmt: str) -> None:
        ext = {"hdf5": "h5", "tiff": "tif", "png": "png"}[fmt]
        path = self._save_path(f"Export maps ({fmt})", f"*.{ext}", fmt)
        if path:
            self.export_maps(path, fmt)

    def export_maps(self: MainWindow, path: str | Path, fmt: str, force: bool = True) -> list[Path]:
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

    def export_histograms_png_dialog(self: MainWindow) -> None:
        path = self._save_path("Export histograms (PNG)", "*.png", "histograms_png")
        if path:
            self.export_histograms_png(path)

    def export_histograms_png(self: MainWindow, path: str | Path, force: bool = True) -> list[Path]:
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

    def export_histograms_csv_dialog(self: MainWindow) -> None:
        path = self._save_path("Export histograms (CSV)", "*.csv", "histograms_csv")
        if path:
            self.export_histograms_csv(path)

    def export_histograms_csv(self: MainWindow, path: str | Path, force: bool = True) -> list[Path]:
        return self._export("histograms", self.ws.export_histograms_csv, path, force=force)

    def export_regions_dialog(self: MainWindow) -> None:
        path = self._save_path("Export region statistics (CSV)", "*.csv", "regions_csv")
        if path:
            self.export_region_stats(path)

    def export_region_stats(self: MainWindow, path: str | Path, force: bool = True) -> list[Path]:
        return self._export("region statistics", self.ws.export_region_stats_csv, path, force=force)

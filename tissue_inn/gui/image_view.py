"""The image: pseudo-RGB or one band with levels, a map overlay with its colour bar, regions, clicks.

Image coordinates: pixel (row, col) covers x ∈ [col, col + 1), y ∈ [row, row + 1) of the view
(``imageAxisOrder='row-major'``, y axis pointing down).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = ["ImageView", "DrawViewBox", "colormap", "MASK_COLOR", "EMPTY_HINT"]

#: Masked pixels (NaN, dark, saturated, specular) are drawn in this colour, hatched, with a legend entry.
MASK_COLOR = (255, 0, 255)
EMPTY_HINT = (
    "No image open.\n\nFile ▸ Open image… (Ctrl+O), drop an image file here,\n"
    "or start with the sample image: tissue-inn gui"
)
_ARROWS = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1), Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0)}

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def colormap(name: str) -> pg.ColorMap:
    """A pyqtgraph colour map by name (viridis, cividis, magma, inferno, plasma)."""
    return pg.colormap.get(name)


class DrawViewBox(pg.ViewBox):
    """A ViewBox with a free-hand drawing mode (left-drag traces a polygon)."""

    sigFreehandDone = Signal(object)  # list of (x, y)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.draw_mode = False
        self._trace: list[tuple[float, float]] = []
        self._trace_item = pg.PlotCurveItem(pen=pg.mkPen("#ffffff", width=2, style=Qt.PenStyle.DashLine))
        self._trace_item.setZValue(100)
        self.addItem(self._trace_item, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt naming)
        if not self.draw_mode or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            start = self.mapSceneToView(ev.buttonDownScenePos())
            self._trace = [(start.x(), start.y())]
        self._trace.append((p.x(), p.y()))
        xs, ys = zip(*self._trace)
        self._trace_item.setData(np.asarray(xs), np.asarray(ys))
        if ev.isFinish():
            points = list(self._trace)
            self._trace = []
            self._trace_item.setData([], [])
            self.draw_mode = False
            if len(points) >= 3:
                self.sigFreehandDone.emit(points)


class ImageView(QWidget):
    """Image display with levels histogram, map overlay, colour bar, pixel marker and ROIs.

    Signals:
        pixelClicked(row, col): a left click on the image.
        pixelHovered(row, col): the cursor moved over a pixel (rate-limited).
        freehandDrawn(points): a free-hand polygon was traced (image coordinates).
    """

    pixelClicked = Signal(int, int)
    pixelHovered = Signal(int, int)
    freehandDrawn = Signal(object)
    arrowPressed = Signal(int, int)  # (d_row, d_col): move the probe pixel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#1e1e1e")
        self.placeholder = QLabel(EMPTY_HINT)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("background:#1e1e1e; color:#d0d0d0; font-size:11pt")
        self.mask_legend = QLabel("")
        self.mask_legend.setVisible(False)
        self.misfit_legend = QLabel("")
        self.misfit_legend.setVisible(False)
        self.misfit_legend.setWordWrap(True)
        self.mask_legend.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.placeholder, 1)
        lay.addWidget(self.graphics, 1)
        lay.addWidget(self.mask_legend)
        lay.addWidget(self.misfit_legend)
        self.graphics.setVisible(False)
        self.view = DrawViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.plot = self.graphics.addPlot(row=0, col=0, viewBox=self.view)
        self.plot.setLabel("bottom", "column", units="px")
        self.plot.setLabel("left", "row", units="px")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.base = pg.ImageItem()
        self.overlay = pg.ImageItem()
        self.overlay.setZValue(10)
        self.overlay.setOpacity(0.6)
        self.view.addItem(self.base)
        self.view.addItem(self.overlay)
        self.masked = pg.ImageItem()
        self.masked.setZValue(12)
        self.view.addItem(self.masked)
        self.unexplained = pg.ImageItem()
        self.unexplained.setZValue(11)
        self.view.addItem(self.unexplained)
        self.pins = pg.ScatterPlotItem(size=12, symbol="o", pen=pg.mkPen("#ffffff", width=1.5))
        self.pins.setZValue(49)
        self.view.addItem(self.pins)
        self.marker = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("#ff3030", width=2), brush=None)
        self.marker.setZValue(50)
        self.view.addItem(self.marker)
        # the levels histogram is built on first use: pyqtgraph's gradient menu imports matplotlib's
        # pyplot (≈ 2 s), which would delay the first paint of the window
        self.levels: pg.HistogramLUTItem | None = None
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=colormap("viridis"), interactive=False, width=18, colorMapMenu=False
        )
        self.colorbar.setVisible(False)
        self.graphics.addItem(self.colorbar, row=0, col=2)
        self._shape: tuple[int, int] = (0, 0)
        self._rgb = False
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self._hover_proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=30, slot=self._on_move)
        self.view.sigFreehandDone.connect(self.freehandDrawn)
        self.graphics.installEventFilter(self)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.graphics.setToolTip("Click a pixel to see its posterior; arrow keys move the probe; wheel zooms")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if obj is self.graphics and event.type() == QEvent.Type.KeyPress and event.key() in _ARROWS:
            self.arrowPressed.emit(*_ARROWS[event.key()])
            return True
        return super().eventFilter(obj, event)

    def _show_image_area(self) -> None:
        self.placeholder.setVisible(False)
        self.graphics.setVisible(True)

    def set_mask(self, reasons: np.ndarray | None, legend: str = "") -> None:
        """Draw masked pixels (reason code > 0) hatched in :data:`MASK_COLOR` and say why in the legend."""
        if reasons is None or not np.any(reasons):
            self.masked.clear()
            self.mask_legend.setVisible(False)
            return
        h, w = reasons.shape
        rgba = np.zeros((h, w, 4), dtype=np.ubyte)
        bad = reasons > 0
        rgba[bad, :3] = MASK_COLOR
        hatch = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0)
        rgba[bad, 3] = np.where(hatch[bad], 230, 120)
        self.masked.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.mask_legend.setText(
            f"<span style='color:rgb{MASK_COLOR}'>▨</span> masked pixels ({int(bad.sum())}): {legend}"
        )
        self.mask_legend.setVisible(True)

    def set_unexplained(self, flagged: np.ndarray | None, legend: str = "") -> None:
        """Grey out (hatched) the pixels the model does not explain, with a legend entry and their count."""
        if flagged is None or not np.any(flagged):
            self.unexplained.clear()
            self.misfit_legend.setVisible(bool(legend) and flagged is not None)
            self.misfit_legend.setText(f"<span style='color:#808080'>▨</span> {legend}" if legend else "")
            return
        h, w = flagged.shape
        rgba = np.zeros((h, w, 4), dtype=np.ubyte)
        hatch = (np.arange(h)[:, None] - np.arange(w)[None, :]) % 3 == 0
        rgba[flagged, :3] = 128
        rgba[flagged, 3] = np.where(hatch[flagged], 255, 170)
        self.unexplained.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.misfit_legend.setText(f"<span style='color:#808080'>▨</span> {legend}")
        self.misfit_legend.setVisible(True)

    def mark_pins(self, pins: list[tuple[int, int, str]]) -> None:
        """Pinned pixels ``(row, col, colour)`` as coloured dots."""
        self.pins.setData(
            [c + 0.5 for _, c, _ in pins], [r + 0.5 for r, _, _ in pins], brush=[pg.mkBrush(col) for *_, col in pins]
        )

    # ------------------------------------------------------------------ content
    def set_rgb(self, rgb: np.ndarray) -> None:
        """Show an H × W × 3 image with values in [0, 1]."""
        first = self._shape == (0, 0) or self._shape != rgb.shape[:2]
        self._show_image_area()
        self._shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        self._rgb = True
        data = np.nan_to_num(rgb, nan=0.0)
        self.base.setImage(data, levels=(0.0, 1.0), autoLevels=False)
        if self.levels is not None:  # levels belong to the single-band view; RGB is percentile-stretched
            self.levels.setLevelMode("rgba")
            self.levels.setLevels(0.0, 1.0)
            self.levels.setVisible(False)
        if first:
            self.reset_zoom()

    def set_band(self, band: np.ndarray, label: str = "reflectance") -> None:
        """Show one band (H × W reflectance) with adjustable levels (1–99 % at first)."""
        first = self._shape == (0, 0) or self._shape != band.shape
        self._show_image_area()
        self._shape = (int(band.shape[0]), int(band.shape[1]))
        self._rgb = False
        finite = band[np.isfinite(band)]
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        levels = self._levels()
        levels.setVisible(True)
        levels.setLevelMode("mono")
        self.base.setImage(band, autoLevels=False, levels=(float(lo), float(hi) if hi > lo else float(lo) + 1e-6))
        levels.gradient.loadPreset("grey")
        levels.setLevels(float(lo), float(hi) if hi > lo else float(lo) + 1e-6)
        levels.axis.setLabel(label)
        if first:
            self.reset_zoom()

    def _levels(self) -> pg.HistogramLUTItem:
        if self.levels is None:
            self.levels = pg.HistogramLUTItem(image=self.base)
            self.levels.setMinimumWidth(90)
            self.graphics.addItem(self.levels, row=0, col=1)
        return self.levels

    def reset_zoom(self) -> None:
        h, w = self._shape
        if h and w:
            self.view.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)

    def set_overlay(
        self,
        image: np.ndarray | None,
        levels: tuple[float, float] = (0, 1),
        cmap: str = "viridis",
        opacity: float = 0.6,
        label: str = "",
        scale: float = 1.0,
    ) -> None:
        """Show a map over the image (NaN = transparent) with a colour bar labelled ``label`` whose ticks
        show ``scale`` × the map's values (display units, e.g. % for StO2)."""
        if image is None:
            self.overlay.clear()
            self.colorbar.setVisible(False)
            return
        cm = colormap(cmap)
        self.overlay.setImage(np.asarray(image, dtype=np.float32), autoLevels=False, levels=levels)
        self.overlay.setLookupTable(cm.getLookupTable(nPts=256, alpha=True))
        self.overlay.setLevels(levels)
        self.overlay.setOpacity(float(opacity))
        self.colorbar.setColorMap(cm)
        self.colorbar.setLevels(values=levels)
        self.colorbar.getAxis("right").setScale(scale)
        self.colorbar.getAxis("right").enableAutoSIPrefix(False)
        self.colorbar.setLabel("right", label)
        self.colorbar.setVisible(True)

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay.setOpacity(float(opacity))

    def mark_pixel(self, row: int | None, col: int | None) -> None:
        if row is None or col is None:
            self.marker.setData([], [])
        else:
            self.marker.setData([col + 0.5], [row + 0.5])

    # ------------------------------------------------------------------ coordinates
    def view_to_pixel(self, point: QPointF) -> tuple[int, int] | None:
        h, w = self._shape
        col, row = int(np.floor(point.x())), int(np.floor(point.y()))
        if 0 <= row < h and 0 <= col < w:
            return row, col
        return None

    def pixel_to_widget(self, row: int, col: int):
        """Widget (viewport) coordinates of a pixel centre — for tests that click with the mouse."""
        scene_pt = self.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
        return self.graphics.mapFromScene(scene_pt)

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double() or self.view.draw_mode:
            return
        if not self.view.sceneBoundingRect().contains(ev.scenePos()):
            return
        px = self.view_to_pixel(self.view.mapSceneToView(ev.scenePos()))
        if px is not None:
            self.pixelClicked.emit(*px)

    def _on_move(self, args) -> None:
        pos = args[0]
        if not self.view.sceneBoundingRect().contains(pos):
            return
        px = self.view_to_pixel(self.view.mapSceneToView(pos))
        if px is not None:
            self.pixelHovered.emit(*px)

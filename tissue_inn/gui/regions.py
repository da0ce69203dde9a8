"""Regions of interest: rectangle, ellipse and free-hand polygon ROIs on the image; pooled posterior
histograms, a compact comparison table (one row per region, the informed parameters as
"median [68 % interval]" in clinical units; the rest behind a toggle; double-click a name to rename
it) and the full statistics table (one row per region and parameter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.gui.posterior_panel import PosteriorPanel

__all__ = ["make_roi", "roi_geometry", "RegionsPanel", "TABLE_COLUMNS"]

#: (row key, header) of the statistics table; rows come from :func:`tissue_inn.inference.image.region_statistics`
#: in display units (:func:`tissue_inn.workspace.regions.display_rows`).
TABLE_COLUMNS = (
    ("region", "region"),
    ("parameter", "parameter"),
    ("unit", "unit"),
    ("n_valid", "pixels"),
    ("pooled_median", "median"),
    ("pooled_q16", "q16"),
    ("pooled_q84", "q84"),
    ("pooled_mean", "mean"),
    ("pooled_std", "std"),
    ("median_map_mean", "map median (mean)"),
)


def make_roi(kind: str, geometry: dict[str, Any], color: str) -> pg.ROI:
    """A pyqtgraph ROI for a region (rotation handles removed: the masks assume axis-aligned shapes)."""
    pen = pg.mkPen(color, width=2)
    if kind == "rect":
        roi = pg.RectROI((geometry["x"], geometry["y"]), (geometry["w"], geometry["h"]), pen=pen, movable=True)
    elif kind == "ellipse":
        roi = pg.EllipseROI((geometry["x"], geometry["y"]), (geometry["w"], geometry["h"]), pen=pen)
        for handle in list(roi.getHandles()):
            if getattr(handle, "typ", "") == "r":
                roi.removeHandle(handle)
        roi.addScaleHandle((1, 1), (0, 0))
    elif kind == "polygon":
        roi = pg.PolyLineROI([tuple(p) for p in geometry["points"]], closed=True, pen=pen)
    else:
        raise ValueError(f"region kind {kind!r} unknown")
    roi.setZValue(30)
    return roi


def roi_geometry(kind: str, roi: pg.ROI) -> dict[str, Any]:
    """The geometry of an ROI in image coordinates (its parent is the image's ViewBox)."""
    if kind in ("rect", "ellipse"):
        pos, size = roi.pos(), roi.size()
        return {"x": float(pos.x()), "y": float(pos.y()), "w": float(size.x()), "h": float(size.y())}
    pts = [roi.mapToParent(h.pos()) for h in roi.getHandles()]
    return {"points": [(float(p.x()), float(p.y())) for p in pts]}


class RegionsPanel(QWidget):
    """Region tools, the statistics table and the pooled histograms.

    Signals:
        addRequested(str): ``"rect"``, ``"ellipse"`` or ``"polygon"`` (free-hand).
        removeRequested(str): the region name selected in the table.
        computeRequested(): compute pooled posteriors of all regions.
    """

    addRequested = Signal(str)
    removeRequested = Signal(str)
    computeRequested = Signal()
    renameRequested = Signal(str, str)
    showAllChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.btn_rect = QPushButton("▭ Rectangle")
        self.btn_ellipse = QPushButton("◯ Ellipse")
        self.btn_poly = QPushButton("✎ Free-hand")
        self.btn_poly.setToolTip("Then drag on the image to trace the outline")
        self.btn_remove = QPushButton("Remove")
        self.btn_compute = QPushButton("Compare regions")
        self.btn_rect.setToolTip("Add a rectangle in the middle of the view (drag and resize it on the image)")
        self.btn_ellipse.setToolTip("Add an ellipse in the middle of the view (drag and resize it on the image)")
        self.btn_remove.setToolTip("Remove the selected region")
        self.btn_compute.setToolTip("Pool the posteriors of every pixel in each region and compare the regions")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.show_all = QCheckBox("all parameters")
        self.show_all.setToolTip("Also list the parameters the spectra do not inform (≈ prior)")
        self.summary = QTableWidget(0, 2)
        self.summary.setToolTip("One row per region: median [68 % interval]. Double-click a name to rename it.")
        self.summary.verticalHeader().setVisible(False)
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.summary.itemChanged.connect(self._on_summary_edit)
        self.draws = QSpinBox()
        self.draws.setRange(8, 4096)
        self.draws.setValue(64)
        self.draws.setSuffix(" draws / pixel")
        self.draws.setToolTip("Posterior draws per pixel when pooling a region")
        tools = QHBoxLayout()
        for b in (self.btn_rect, self.btn_ellipse, self.btn_poly, self.btn_remove):
            tools.addWidget(b)
        run = QHBoxLayout()
        run.addWidget(self.draws)
        run.addWidget(self.btn_compute)
        run.addWidget(self.progress)
        run.addWidget(self.show_all)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels([h for _, h in TABLE_COLUMNS])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.histograms = PosteriorPanel(title="Draw regions, then “Compare regions”.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.histograms)
        split.addWidget(self.summary)
        split.addWidget(self.table)
        split.setSizes([420, 120, 160])
        lay = QVBoxLayout(self)
        lay.addLayout(tools)
        lay.addLayout(run)
        lay.addWidget(split, 1)
        self.btn_rect.clicked.connect(lambda: self.addRequested.emit("rect"))
        self.btn_ellipse.clicked.connect(lambda: self.addRequested.emit("ellipse"))
        self.btn_poly.clicked.connect(lambda: self.addRequested.emit("polygon"))
        self.btn_compute.clicked.connect(self.computeRequested)
        self.btn_remove.clicked.connect(self._remove_selected)
        self.show_all.toggled.connect(self.showAllChanged)
        self._row_region: list[str] = []
        self._summary_names: list[str] = []
        self.selected_region: str | None = None

    def set_summary(self, headers: Sequence[str], rows: Sequence[Sequence[str]], colors: dict[str, str]) -> None:
        """The compact comparison: ``headers`` and one row of strings per region (names editable)."""
        self.summary.blockSignals(True)
        self.summary.clear()
        self.summary.setColumnCount(len(headers))
        self.summary.setRowCount(len(rows))
        self.summary.setHorizontalHeaderLabels(list(headers))
        self._summary_names = []
        for i, row in enumerate(rows):
            self._summary_names.append(str(row[0]))
            for j, text in enumerate(row):
                item = QTableWidgetItem(str(text))
                if j == 0:
                    if str(text) in colors:
                        item.setForeground(pg.mkBrush(colors[str(text)]))
                    item.setToolTip("Double-click to rename")
                else:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.summary.setItem(i, j, item)
        self.summary.blockSignals(False)

    def _on_summary_edit(self, item: QTableWidgetItem) -> None:
        if item.column() != 0 or item.row() >= len(self._summary_names):
            return
        old, new = self._summary_names[item.row()], item.text().strip()
        if new and new != old:
            self.renameRequested.emit(old, new)

    def set_progress(self, fraction: float | None) -> None:
        """Region comparison progress (None hides the bar)."""
        self.progress.setVisible(fraction is not None)
        if fraction is not None:
            self.progress.setValue(int(round(100 * max(0.0, min(1.0, fraction)))))

    def _remove_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        names = {self._row_region[r] for r in rows if r < len(self._row_region)}
        if not names and self.selected_region:
            names = {self.selected_region}
        for name in names:
            self.removeRequested.emit(name)

    def set_rows(self, rows: Sequence[dict[str, Any]], colors: dict[str, str]) -> None:
        """Fill the statistics table (one row per region × parameter)."""
        self.table.setRowCount(len(rows))
        self._row_region = []
        for i, row in enumerate(rows):
            self._row_region.append(str(row.get("region", "")))
            for j, (col, _) in enumerate(TABLE_COLUMNS):
                v = row.get(col, "")
                v = "" if v is None else v
                text = f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)
                item = QTableWidgetItem(text)
                if col == "parameter" and row.get("code"):
                    item.setToolTip(f"code name: {row['code']}")
                if col == "region" and str(v) in colors:
                    item.setForeground(pg.mkBrush(colors[str(v)]))
                self.table.setItem(i, j, item)

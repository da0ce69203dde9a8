"""Histograms of posterior samples per model parameter, over the prior, grouped by tissue layer.

One small plot per parameter: the prior (grey, filled), one or more posteriors (colour), the
median (solid) and MAP (dotted), the 68 % interval (shaded), the ground truth (dashed) and, in the
title, how much the posterior contracts the prior. Parameters the measurement does not inform
(contraction < :data:`~tissue_inn.workspace.CONTRACTION_INFORMED`) get a grey title saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from tissue_inn.workspace import Workspace

__all__ = ["PosteriorPanel", "ParameterPlot", "SpectrumPlot", "POSTERIOR_COLOR", "PRIOR_COLOR"]

POSTERIOR_COLOR = "#0072B2"
PRIOR_COLOR = "#9a9a9a"
UNINFORMED_COLOR = "#8c8c8c"
TRUTH_COLOR = "#D55E00"


def _brush(color: str, alpha: int) -> pg.QtGui.QBrush:
    c = pg.mkColor(color)
    c.setAlpha(alpha)
    return pg.mkBrush(c)


def pretty_unit(unit: str) -> str:
    """Display form of a card unit (``um`` → ``µm``; the dimensionless ``1`` stays ``1``)."""
    return {"um": "µm", "nm": "nm", "1/cm": "1/cm"}.get(unit, unit)


def contraction_text(contraction: float, width: int = 10) -> str:
    """A short title part: a bar of how much the posterior contracts the prior, or "≈ prior"."""
    if not np.isfinite(contraction):
        return "contraction n/a"
    c = float(np.clip(contraction, 0.0, 1.0))
    filled = int(round(c * width))
    bar = "█" * filled + "░" * (width - filled)
    _, informed = Workspace.contraction_label(contraction)
    if not informed:
        return f"{bar} ≈ prior — not informed"
    return f"{bar} {100 * c:.0f} % contracted"


class ParameterPlot:
    """The plot of one parameter (inside a :class:`pg.GraphicsLayout`)."""

    def __init__(self, plot: pg.PlotItem, name: str, unit: str, x_range: tuple[float, float]) -> None:
        self.plot, self.name, self.unit, self.x_range = plot, name, unit, x_range
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.hideAxis("left")
        axis = plot.getAxis("bottom")
        axis.enableAutoSIPrefix(False)
        shown = pretty_unit(unit)
        axis.setLabel(f"{name} [{shown}]" if shown else name)
        plot.setXRange(*x_range, padding=0.02)
        self.prior = plot.plot(
            [0, 1],
            [0],
            stepMode="center",
            fillLevel=0,
            pen=pg.mkPen(PRIOR_COLOR, width=1),
            brush=_brush(PRIOR_COLOR, 90),
            name="prior",
        )
        self.interval = pg.LinearRegionItem(movable=False, brush=_brush(POSTERIOR_COLOR, 40), pen=pg.mkPen(None))
        self.interval.setZValue(-5)
        plot.addItem(self.interval)
        self.posteriors: list[pg.PlotDataItem] = []
        self.median = pg.InfiniteLine(angle=90, pen=pg.mkPen("#003f6b", width=2))
        self.map = pg.InfiniteLine(angle=90, pen=pg.mkPen("#003f6b", width=2, style=Qt.PenStyle.DotLine))
        self.truth = pg.InfiniteLine(angle=90, pen=pg.mkPen(TRUTH_COLOR, width=2, style=Qt.PenStyle.DashLine))
        for line in (self.median, self.map, self.truth):
            line.setZValue(20)
            plot.addItem(line)
            line.setVisible(False)
        self.interval.setVisible(False)
        self.data: dict[str, Any] = {}
        self.set_title("", True)

    def set_title(self, extra: str, informed: bool) -> None:
        color = "#202020" if informed else UNINFORMED_COLOR
        text = f"<b>{self.name}</b>" + (f"<br><span style='font-size:7.5pt'>{extra}</span>" if extra else "")
        self.plot.setTitle(text, color=color, size="9pt")

    def clear(self) -> None:
        for item in self.posteriors:
            self.plot.removeItem(item)
        self.posteriors = []
        for item in (self.median, self.map, self.truth, self.interval):
            item.setVisible(False)
        self.data = {}
        self.set_title("", True)

    def show(self, edges: np.ndarray, prior: np.ndarray, series: Sequence[tuple[str, np.ndarray, str]]) -> None:
        """Prior density and posterior densities ``(label, density, colour)`` on shared ``edges``."""
        self.clear()
        self.prior.setData(edges, prior)
        for label, density, color in series:
            item = self.plot.plot(
                edges,
                density,
                stepMode="center",
                fillLevel=0,
                pen=pg.mkPen(color, width=2),
                brush=_brush(color, 70),
                name=label,
            )
            self.posteriors.append(item)
        top = max([float(np.max(prior)) if prior.size else 0.0] + [float(np.max(d)) for _, d, _ in series if d.size])
        self.plot.setYRange(0, top * 1.08 if top > 0 else 1.0, padding=0)
        self.plot.setXRange(*self.x_range, padding=0.02)
        self.data = {"edges": edges, "prior": prior, "series": {label: d for label, d, _ in series}}

    def mark(self, summary: Mapping[str, float], truth: float | None) -> None:
        """Median, MAP, 68 % interval (q16–q84), ground truth and the contraction in the title."""
        if "median" in summary:
            self.median.setValue(float(summary["median"]))
            self.median.setVisible(True)
        if "map" in summary:
            self.map.setValue(float(summary["map"]))
            self.map.setVisible(True)
        if "q16" in summary and "q84" in summary:
            self.interval.setRegion((float(summary["q16"]), float(summary["q84"])))
            self.interval.setVisible(True)
        if truth is not None:
            self.truth.setValue(float(truth))
            self.truth.setVisible(True)
        contraction = float(summary.get("contraction", float("nan")))
        _, informed = Workspace.contraction_label(contraction)
        if not informed:
            for item in self.posteriors:
                item.setPen(pg.mkPen(UNINFORMED_COLOR, width=2))
                item.setBrush(_brush(UNINFORMED_COLOR, 60))
        self.set_title(contraction_text(contraction), informed)
        self.data["contraction"] = contraction
        self.data["informed"] = informed


class PosteriorPanel(QWidget):
    """A grid of :class:`ParameterPlot`, one row per parameter group (shared, layer 1, …)."""

    def __init__(self, parent: QWidget | None = None, title: str = "") -> None:
        super().__init__(parent)
        self.header = QLabel(title)
        self.header.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.header)
        lay.addWidget(self.graphics, 1)
        self.plots: dict[str, ParameterPlot] = {}

    def configure(self, workspace: Workspace) -> None:
        """Build one plot per parameter of the loaded model."""
        self.graphics.clear()
        self.plots = {}
        if not workspace.has_model:
            return
        units = workspace.units
        groups = workspace_groups(workspace)
        n_cols = max(len(names) for _, names in groups)
        for r, (group, names) in enumerate(groups):
            label = self.graphics.addLabel(f"<b>{group}</b>", row=r, col=0, angle=-90, color="#303030", size="9pt")
            label.setFixedWidth(22)
            for c, name in enumerate(names):
                plot = self.graphics.addPlot(row=r, col=c + 1)
                self.plots[name] = ParameterPlot(plot, name, units.get(name, ""), workspace.plot_range(name))
            for c in range(len(names), n_cols):
                self.graphics.addLabel("", row=r, col=c + 1)

    def show_pixel(self, workspace: Workspace) -> None:
        """Show the workspace's current pixel posterior."""
        result = workspace.pixel_result
        if result is None:
            return
        if not self.plots:
            self.configure(workspace)
        hists = workspace.histograms(result)
        for name, p in self.plots.items():
            h = hists[name]
            p.show(h["edges"], h["prior"], [("posterior", h["posterior"], POSTERIOR_COLOR)])
            p.mark(result.summaries.get(name, {}), result.ground_truth.get(name))
        req = result.request
        gt = " · dashed: ground truth" if result.ground_truth else ""
        self.header.setText(
            f"Pixel (row {req.row}, col {req.col}) · {req.n_draws} posterior draws, seed {req.seed} · "
            f"grey: prior · blue: posterior · solid: median · dotted: MAP · shaded: 68 % interval{gt}"
        )

    def show_pooled(self, workspace: Workspace, series: Sequence[tuple[str, np.ndarray, str]]) -> None:
        """Pooled region posteriors ``(region name, samples [M, D], colour)`` over the prior."""
        if not self.plots:
            self.configure(workspace)
        hists = {label: workspace.histograms(samples=s) for label, s, _ in series}
        prior_hist = workspace.histograms(samples=np.zeros((1, len(workspace.parameter_names))))
        for name, p in self.plots.items():
            h0 = prior_hist[name]
            p.show(
                h0["edges"],
                h0["prior"],
                [(label, hists[label][name]["posterior"], color) for label, _, color in series],
            )
        self.header.setText("Pooled posteriors of the regions (colours as drawn) over the prior (grey)")

    def clear(self) -> None:
        for p in self.plots.values():
            p.clear()
        self.header.setText("")

    def export_png(self, path: str) -> None:
        """Save the histograms as PNG with pyqtgraph's exporter."""
        from pyqtgraph.exporters import ImageExporter

        exporter = ImageExporter(self.graphics.scene())
        exporter.parameters()["width"] = max(800, self.graphics.width() * 2)
        exporter.export(str(path))


def workspace_groups(workspace: Workspace) -> list[tuple[str, list[str]]]:
    from tissue_inn.workspace import parameter_groups

    return parameter_groups(workspace.parameter_names)


class SpectrumPlot(QWidget):
    """The spectrum under the cursor, the clicked pixel's spectrum and its posterior predictive band."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics)
        self.plot = self.graphics.addPlot()
        self.plot.setLabel("bottom", "wavelength", units="nm")
        self.plot.setLabel("left", "reflectance")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMenuEnabled(False)
        self.legend = self.plot.addLegend(offset=(10, 10), labelTextSize="8pt")
        self.band90_lo = self.plot.plot(pen=pg.mkPen(None))
        self.band90_hi = self.plot.plot(pen=pg.mkPen(None))
        self.band90 = pg.FillBetweenItem(self.band90_lo, self.band90_hi, brush=_brush(POSTERIOR_COLOR, 45))
        self.band68_lo = self.plot.plot(pen=pg.mkPen(None))
        self.band68_hi = self.plot.plot(pen=pg.mkPen(None))
        self.band68 = pg.FillBetweenItem(self.band68_lo, self.band68_hi, brush=_brush(POSTERIOR_COLOR, 80))
        self.plot.addItem(self.band90)
        self.plot.addItem(self.band68)
        self.predicted = self.plot.plot(pen=pg.mkPen(POSTERIOR_COLOR, width=2), name="predictive median (68/90 %)")
        self.clicked = self.plot.plot(
            pen=pg.mkPen("#202020", width=2), symbol="o", symbolSize=7, symbolBrush="#202020", name="clicked pixel"
        )
        self.hover = self.plot.plot(
            pen=pg.mkPen("#E69F00", width=1.5, style=Qt.PenStyle.DashLine),
            symbol="t",
            symbolSize=6,
            symbolBrush="#E69F00",
            name="under cursor",
        )

    def set_hover(self, wavelengths_nm: np.ndarray, spectrum: np.ndarray) -> None:
        wl, sp = np.asarray(wavelengths_nm, float), np.asarray(spectrum, float)
        self.hover.setData(wl, sp)
        if self.clicked.xData is None or len(self.clicked.xData) == 0:
            self._fit(wl, [sp])

    def _fit(self, wl: np.ndarray, curves: list[np.ndarray]) -> None:
        """Axis ranges from the data (empty items would otherwise pull the range to 0)."""
        if wl.size:
            pad = max(10.0, 0.05 * float(np.ptp(wl)))
            self.plot.setXRange(float(wl.min()) - pad, float(wl.max()) + pad, padding=0)
        vals = np.concatenate([np.ravel(c) for c in curves]) if curves else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            hi = float(vals.max())
            self.plot.setYRange(0.0, hi * 1.15 if hi > 0 else 1.0, padding=0)

    def set_pixel(
        self, wavelengths_nm: np.ndarray, spectrum: np.ndarray, predictive: dict[str, np.ndarray] | None
    ) -> None:
        """Measured spectrum at the clicked pixel and predictive quantiles ``{"q05", "q16", "q50", "q84", "q95"}``."""
        wl = np.asarray(wavelengths_nm, float)
        self.clicked.setData(wl, np.asarray(spectrum, float))
        self._fit(wl, [np.asarray(spectrum, float)] + (list(predictive.values()) if predictive else []))
        if predictive:
            self.band90_lo.setData(wl, predictive["q05"])
            self.band90_hi.setData(wl, predictive["q95"])
            self.band68_lo.setData(wl, predictive["q16"])
            self.band68_hi.setData(wl, predictive["q84"])
            self.predicted.setData(wl, predictive["q50"])
        else:
            for item in (self.band90_lo, self.band90_hi, self.band68_lo, self.band68_hi, self.predicted):
                item.setData([], [])

    def clear(self) -> None:
        for item in (
            self.band90_lo,
            self.band90_hi,
            self.band68_lo,
            self.band68_hi,
            self.predicted,
            self.clicked,
            self.hover,
        ):
            item.setData([], [])

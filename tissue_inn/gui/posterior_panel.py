"""Histograms of posterior samples per model parameter, over the prior, grouped by tissue layer.

One small plot per parameter, titled with its clinical name and its value as text ("StO2 38 %
[30–46 %]": median and 68 % interval), the axis in display units (StO2 in %), the code name in the
tooltip. Drawn: the prior (grey, filled), one or more posteriors (the current pixel in blue, pinned
pixels and a second model in their own colours), the median (solid) and MAP (dotted), the 68 %
interval (shaded), the ground truth (dashed) and how much the posterior contracts the prior.
Parameters the measurement does not inform (contraction < ``CONTRACTION_INFORMED``) get a grey title
saying so and can be hidden ("informed parameters only").

The spectrum plot beside the image is :mod:`tissue_inn.gui.spectrum_plot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.workspace import Workspace, parameter_groups
from tissue_inn.workspace.labels import ParameterLabel, label_for

__all__ = ["PosteriorPanel", "ParameterPlot", "POSTERIOR_COLOR", "PRIOR_COLOR", "contraction_text"]

POSTERIOR_COLOR = "#0072B2"
PRIOR_COLOR = "#9a9a9a"
UNINFORMED_COLOR = "#8c8c8c"
TRUTH_COLOR = "#D55E00"
ROW_HEIGHT_PX = 150  # a parameter row never shrinks below this; the panel scrolls instead
COL_WIDTH_PX = 175  # nor a parameter column (its title holds the value text)


def _brush(color: str, alpha: int) -> pg.QtGui.QBrush:
    c = pg.mkColor(color)
    c.setAlpha(alpha)
    return pg.mkBrush(c)


def contraction_text(contraction: float, width: int = 6) -> str:
    """A short title part: a bar of how much the posterior contracts the prior, or "≈ prior"."""
    if not np.isfinite(contraction):
        return "contraction n/a"
    c = float(np.clip(contraction, 0.0, 1.0))
    filled = int(round(c * width))
    bar = "█" * filled + "░" * (width - filled)
    _, informed = Workspace.contraction_label(contraction)
    if not informed:
        return f"{bar} ≈ prior (not informed)"
    return f"{bar} {100 * c:.0f} % contracted"


class ParameterPlot:
    """The plot of one parameter (inside a :class:`pg.GraphicsLayout`)."""

    def __init__(self, plot: pg.PlotItem, label: ParameterLabel, x_range: tuple[float, float]) -> None:
        self.plot, self.label, self.x_range = plot, label, x_range
        self.name, self.unit = label.code, label.card_unit
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.hideAxis("left")
        plot.setToolTip(label.tooltip)
        axis = plot.getAxis("bottom")
        axis.enableAutoSIPrefix(False)
        axis.setScale(label.scale)  # ticks in display units (StO2 in %); the data stay in card units
        axis.setLabel(label.axis_label)
        plot.setXRange(*x_range, padding=0.02)
        self.prior = plot.plot(
            [0, 1], [0], stepMode="center", fillLevel=0, pen=pg.mkPen(PRIOR_COLOR, width=1),
            brush=_brush(PRIOR_COLOR, 90), name="prior",
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
        self._shown = 0
        self.value_text = ""
        self.set_title("", True)

    def set_title(self, extra: str, informed: bool, value: str = "") -> None:
        color = "#202020" if informed else UNINFORMED_COLOR
        self.value_text = value
        head = f"<b>{self.label.short}</b>" + (f"&nbsp; {value.removeprefix(self.label.short).strip()}" if value else "")
        text = head + (f"<br><span style='font-size:7.5pt'>{extra}</span>" if extra else "")
        self.plot.setTitle(text, color=color, size="9pt")

    def clear(self) -> None:
        for item in self.posteriors:  # curves are made once and reused (setData), never re-created per click
            item.setData([], [])
            item.setVisible(False)
        self._shown = 0
        for item in (self.median, self.map, self.truth, self.interval):
            item.setVisible(False)
        self.data = {}
        self.set_title("", True)

    def show(self, edges: np.ndarray, prior: np.ndarray, series: Sequence[tuple[str, np.ndarray, str]]) -> None:
        """Prior density and posterior densities ``(label, density, colour)`` on shared ``edges``."""
        self.clear()
        self.prior.setData(edges, prior)
        for i, (label, density, color) in enumerate(series):
            if i == len(self.posteriors):
                self.posteriors.append(self.plot.plot([0, 1], [0], stepMode="center"))
            item = self.posteriors[i]
            item.setData(edges, density, stepMode="center", fillLevel=0 if i == 0 else None)
            item.setPen(pg.mkPen(color, width=2))
            item.setBrush(_brush(color, 70) if i == 0 else None)
            item.opts["name"] = label
            item.setVisible(True)
        self._shown = len(series)
        top = max([float(np.max(prior)) if prior.size else 0.0] + [float(np.max(d)) for _, d, _ in series if d.size])
        self.plot.setYRange(0, top * 1.08 if top > 0 else 1.0, padding=0)
        self.plot.setXRange(*self.x_range, padding=0.02)
        self.data = {"edges": edges, "prior": prior, "series": {label: d for label, d, _ in series}}

    def mark(self, summary: Mapping[str, float], truth: float | None, value: str = "") -> None:
        """Median, MAP, 68 % interval (q16–q84), ground truth, the value text and the contraction."""
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
        if not informed and self._shown:
            self.posteriors[0].setPen(pg.mkPen(UNINFORMED_COLOR, width=2))
            self.posteriors[0].setBrush(_brush(UNINFORMED_COLOR, 60))
        self.set_title(contraction_text(contraction), informed, value)
        truth_text = f"\nground truth: {self.label.format(truth)}" if truth is not None else ""
        self.plot.setToolTip(f"{self.label.tooltip}\n{value}{truth_text}".strip())
        self.data["contraction"] = contraction
        self.data["informed"] = informed


class PosteriorPanel(QWidget):
    """A grid of :class:`ParameterPlot`, one row per parameter group (shared, layer 1, …).

    Signals:
        pinRequested(): pin the shown pixel.
        clearPinsRequested(): remove every pin.
    """

    pinRequested = Signal()
    clearPinsRequested = Signal()
    snrChanged = Signal(float)  # 0: the model's nominal SNR
    snrEstimateRequested = Signal()

    def __init__(self, parent: QWidget | None = None, title: str = "", pinning: bool = False) -> None:
        super().__init__(parent)
        self.header = QLabel(title)
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        self.informed_only = QCheckBox("informed parameters only")
        self.informed_only.setToolTip("Hide the parameters this pixel's spectrum does not inform (≈ prior)")
        self.btn_pin = QPushButton("Pin pixel")
        self.btn_pin.setToolTip("Keep this pixel's posterior on the plots to compare with the next clicks (up to 4)")
        self.btn_clear_pins = QPushButton("Clear pins")
        self.btn_clear_pins.setToolTip("Remove all pinned pixels")
        self.snr = QDoubleSpinBox()
        self.snr.setRange(0.0, 1000.0)
        self.snr.setDecimals(1)
        self.snr.setSingleStep(1.0)
        self.snr.setSpecialValueText("model's nominal")
        self.snr.setPrefix("SNR ")
        self.snr.setKeyboardTracking(False)
        self.snr.setToolTip(
            "The measurement's signal-to-noise ratio; models conditioned on it use it for every click, map and "
            "region. 0 = the model's nominal SNR. Recorded in every export."
        )
        self.btn_snr = QPushButton("estimate")
        self.btn_snr.setToolTip("Estimate the SNR from the image (differences of neighbouring pixels)")
        tools = QHBoxLayout()
        tools.addWidget(self.informed_only)
        tools.addStretch(1)
        for w in (self.snr, self.btn_snr):
            w.setVisible(pinning)
            tools.addWidget(w)
        for b in (self.btn_pin, self.btn_clear_pins):
            b.setVisible(pinning)
            tools.addWidget(b)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.graphics)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.banner)
        lay.addWidget(self.header)
        lay.addLayout(tools)
        lay.addWidget(self.scroll, 1)
        self.plots: dict[str, ParameterPlot] = {}
        self._groups: list[tuple[str, list[str]]] = []
        self.informed_only.toggled.connect(lambda *_: self._relayout())
        self.btn_pin.clicked.connect(self.pinRequested)
        self.snr.valueChanged.connect(lambda v: self.snrChanged.emit(float(v)))
        self.btn_snr.clicked.connect(self.snrEstimateRequested)
        self.btn_clear_pins.clicked.connect(self.clearPinsRequested)

    def set_banner(self, html: str | None, level: str = "warning") -> None:
        """A prominent line above the plots (None hides it)."""
        colors = {"warning": ("#fff3cd", "#7a5b00"), "error": ("#f8d7da", "#842029"), "info": ("#e7f1ff", "#084298")}
        bg, fg = colors.get(level, colors["warning"])
        self.banner.setStyleSheet(f"background:{bg}; color:{fg}; padding:4px; border-radius:3px")
        self.banner.setText(html or "")
        self.banner.setVisible(bool(html))

    def configure(self, workspace: Workspace) -> None:
        """Build one plot per parameter of the loaded model."""
        self.graphics.clear()
        self.plots = {}
        self._groups = parameter_groups(workspace.parameter_names) if workspace.has_model else []
        labels = workspace.labels
        ranges = workspace.plot_ranges() if workspace.has_model else {}
        for _, names in self._groups:
            for name in names:
                lab = labels.get(name) or label_for(name, workspace.units.get(name, ""))
                self.plots[name] = ParameterPlot(pg.PlotItem(), lab, ranges[name])
        self._relayout()

    def _relayout(self) -> None:
        """Place the plots (only the informed ones when asked) in rows by tissue layer."""
        layout = self.graphics.ci
        for item in list(layout.items):
            layout.removeItem(item)
        only = self.informed_only.isChecked()
        rows = []
        for group, names in self._groups:
            shown = [n for n in names if not only or self.plots[n].data.get("informed", True)]
            if shown:
                rows.append((group, shown))
        n_cols = max((len(names) for _, names in rows), default=1)
        for r, (group, names) in enumerate(rows):
            label = layout.addLabel(f"<b>{group}</b>", row=r, col=0, angle=-90, color="#303030", size="9pt")
            label.setFixedWidth(22)
            for c, name in enumerate(names):
                layout.addItem(self.plots[name].plot, row=r, col=c + 1)
            for c in range(len(names), n_cols):
                layout.addLabel("", row=r, col=c + 1)
        self.graphics.setMinimumHeight(ROW_HEIGHT_PX * max(1, len(rows)))
        self.graphics.setMinimumWidth(30 + COL_WIDTH_PX * n_cols)  # narrower windows scroll, nothing is cut

    def visible_parameters(self) -> list[str]:
        return [n for n, p in self.plots.items() if p.plot.scene() is not None]

    def show_priors(self, workspace: Workspace, hint: str) -> None:
        """The priors alone (before the first click), with a hint of what to do."""
        if not self.plots:
            self.configure(workspace)
        prior = workspace.histograms(samples=np.zeros((1, len(workspace.parameter_names))))
        for name, p in self.plots.items():
            p.show(prior[name]["edges"], prior[name]["prior"], [])
        self.header.setText(hint)

    def show_pixel(
        self, workspace: Workspace, extra: Sequence[tuple[str, np.ndarray, str]] = (), title: str = "",
        muted: bool = False,
    ) -> None:
        """Show the workspace's current pixel posterior, with ``extra`` posteriors ``(label, samples, colour)``
        (pins, a second model) overlaid."""
        result = workspace.pixel_result
        if result is None:
            return
        if not self.plots:
            self.configure(workspace)
        hists = workspace.histograms(result)
        others = {label: workspace.histograms(samples=s) for label, s, _ in extra}
        texts = workspace.value_texts(result)
        for name, p in self.plots.items():
            h = hists[name]
            series = [("posterior", h["posterior"], POSTERIOR_COLOR)]
            series += [(label, others[label][name]["posterior"], color) for label, _, color in extra]
            p.show(h["edges"], h["prior"], series)
            p.mark(result.summaries.get(name, {}), result.ground_truth.get(name), texts.get(name, ""))
            p.plot.setOpacity(0.45 if muted else 1.0)  # a pixel the model does not explain: shown, de-emphasised
        req = result.request
        gt = " · dashed: ground truth" if result.ground_truth else ""
        legend = "".join(f" · <span style='color:{c}'>■ {label}</span>" for label, _, c in extra)
        self.header.setText(
            f"<b>Pixel (row {req.row}, col {req.col})</b>{title} · {req.n_draws} posterior draws, seed {req.seed}<br>"
            f"<span style='color:{PRIOR_COLOR}'>■ prior</span> · "
            f"<span style='color:{POSTERIOR_COLOR}'>■ posterior</span>{legend} · solid: median · dotted: MAP · "
            f"shaded: 68 % interval{gt}"
        )
        if self.informed_only.isChecked():
            self._relayout()

    def show_pooled(self, workspace: Workspace, series: Sequence[tuple[str, np.ndarray, str]]) -> None:
        """Pooled region posteriors ``(region name, samples [M, D], colour)`` over the prior."""
        if not self.plots:
            self.configure(workspace)
        hists = {label: workspace.histograms(samples=s) for label, s, _ in series}
        prior_hist = workspace.histograms(samples=np.zeros((1, len(workspace.parameter_names))))
        for name, p in self.plots.items():
            h0 = prior_hist[name]
            p.show(h0["edges"], h0["prior"], [(label, hists[label][name]["posterior"], color) for label, _, color in series])
        self.header.setText("Pooled posteriors of the regions (colours as drawn) over the prior (grey)")

    def clear(self, text: str = "") -> None:
        for p in self.plots.values():
            p.clear()
        self.header.setText(text)

"""The spectrum plot under the image: the spectrum under the cursor, the clicked pixel's spectrum and
its posterior predictive band (68 and 90 %), with the legend below the plot so it never covers a curve."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from tissue_inn.gui.posterior_panel import POSTERIOR_COLOR, _brush

__all__ = ["SpectrumPlot"]


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
        self.plot.setLabel("bottom", "wavelength [nm]")
        self.plot.setLabel("left", "reflectance")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMenuEnabled(False)
        self.plot.setXRange(450, 720, padding=0)
        self.plot.setYRange(0, 0.6, padding=0)
        self.legend = pg.LegendItem(labelTextSize="8pt", colCount=3)  # below the plot: never covers a curve
        self.graphics.addItem(self.legend, row=1, col=0)
        self.band90_lo = self.plot.plot(pen=pg.mkPen(None))
        self.band90_hi = self.plot.plot(pen=pg.mkPen(None))
        self.band90 = pg.FillBetweenItem(self.band90_lo, self.band90_hi, brush=_brush(POSTERIOR_COLOR, 45))
        self.band68_lo = self.plot.plot(pen=pg.mkPen(None))
        self.band68_hi = self.plot.plot(pen=pg.mkPen(None))
        self.band68 = pg.FillBetweenItem(self.band68_lo, self.band68_hi, brush=_brush(POSTERIOR_COLOR, 80))
        self.plot.addItem(self.band90)
        self.plot.addItem(self.band68)
        self.predicted = self.plot.plot(pen=pg.mkPen(POSTERIOR_COLOR, width=2))
        self.clicked = self.plot.plot(pen=pg.mkPen("#202020", width=2), symbol="o", symbolSize=7, symbolBrush="#202020")
        self.hover = self.plot.plot(
            pen=pg.mkPen("#E69F00", width=1.5, style=Qt.PenStyle.DashLine), symbol="t", symbolSize=6,
            symbolBrush="#E69F00",
        )
        self.legend.addItem(self.predicted, "predictive median (68/90 %)")
        self.legend.addItem(self.clicked, "clicked pixel")
        self.legend.addItem(self.hover, "under cursor")

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
            self.plot.setYRange(0.0, hi * 1.1 if hi > 0 else 1.0, padding=0)

    def set_pixel(self, wavelengths_nm: np.ndarray, spectrum: np.ndarray, predictive: dict[str, np.ndarray] | None) -> None:
        """Measured spectrum at the clicked pixel and predictive quantiles ``{"q05", "q16", "q50", "q84", "q95"}``."""
        wl = np.asarray(wavelengths_nm, float)
        self.clicked.setData(wl, np.asarray(spectrum, float))
        self._fit(wl, [np.asarray(spectrum, float)] + (list(predictive.values()) if predictive else []))
        self.band90.setVisible(bool(predictive))
        self.band68.setVisible(bool(predictive))
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
        """No pixel: empty curves and no title (a new image or model starts clean)."""
        self.plot.setTitle(None)
        self.band90.setVisible(False)
        self.band68.setVisible(False)
        for item in (self.band90_lo, self.band90_hi, self.band68_lo, self.band68_hi, self.predicted, self.clicked, self.hover):
            item.setData([], [])

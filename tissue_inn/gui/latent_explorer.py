"""The latent explorer (Ardizzone et al., ICLR 2019, Fig. 5): for the selected pixel, a grid over two
latent dimensions (the others 0), each point coloured by the parameter value the network maps it to."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.gui.image_view import colormap
from tissue_inn.workspace import LatentGrid
from tissue_inn.workspace.labels import ParameterLabel

__all__ = ["LatentExplorer"]


class LatentExplorer(QWidget):
    """Latent-grid view with selectors.

    Signals:
        settingsChanged(): latent dimensions or extent changed (the window recomputes the grid).
    """

    settingsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dim_a = QSpinBox()
        self.dim_b = QSpinBox()
        self.extent = QDoubleSpinBox()
        self.extent.setRange(0.5, 6.0)
        self.extent.setValue(3.0)
        self.extent.setSuffix(" σ")
        self.parameter = QComboBox()
        self.dim_a.setToolTip("The latent coordinate along the horizontal axis")
        self.dim_b.setToolTip("The latent coordinate along the vertical axis")
        self.extent.setToolTip("How far the grid reaches in each latent direction (standard deviations)")
        self.parameter.setToolTip("The parameter that colours the grid")
        self.info = QLabel("Click a pixel to explore its latent space.")
        self.info.setWordWrap(True)
        form = QFormLayout()
        form.addRow("latent x axis", self.dim_a)
        form.addRow("latent y axis", self.dim_b)
        form.addRow("extent", self.extent)
        form.addRow("colour by", self.parameter)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plot = self.graphics.addPlot(row=0, col=0)
        self.plot.setAspectLocked(True)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=colormap("viridis"), interactive=False, width=16, colorMapMenu=False
        )
        self.graphics.addItem(self.colorbar, row=0, col=1)
        top = QHBoxLayout()
        top.addLayout(form)
        top.addWidget(self.info, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.graphics, 1)
        self.grid: LatentGrid | None = None
        self._names: list[str] = []
        self._units: dict[str, str] = {}
        self._ranges: dict[str, tuple[float, float]] = {}
        self._labels: dict[str, ParameterLabel] = {}
        for w in (self.dim_a, self.dim_b):
            w.valueChanged.connect(lambda *_: self.settingsChanged.emit())
        self.extent.valueChanged.connect(lambda *_: self.settingsChanged.emit())
        self.parameter.currentIndexChanged.connect(lambda *_: self.redraw())

    def configure(
        self,
        names: list[str],
        units: dict[str, str],
        ranges: dict[str, tuple[float, float]],
        n_latent: int,
        labels: dict[str, ParameterLabel] | None = None,
    ) -> None:
        self._names, self._units, self._ranges = list(names), dict(units), dict(ranges)
        self._labels = dict(labels or {})
        for w in (self.dim_a, self.dim_b, self.parameter):
            w.blockSignals(True)
        self.parameter.clear()
        for name in self._names:
            lab = self._labels.get(name)
            self.parameter.addItem(lab.short if lab else name, name)
        self.dim_a.setRange(0, max(0, n_latent - 1))
        self.dim_b.setRange(0, max(0, n_latent - 1))
        self.dim_a.setValue(0)
        self.dim_b.setValue(min(1, n_latent - 1))
        self.dim_b.setEnabled(n_latent > 1)
        for w in (self.dim_a, self.dim_b, self.parameter):
            w.blockSignals(False)
        self.grid = None
        self.image.clear()

    def dims(self) -> tuple[int, int | None]:
        a = self.dim_a.value()
        b = self.dim_b.value() if self.dim_b.isEnabled() else None
        return a, b

    def set_grid(self, grid: LatentGrid, pixel: tuple[int, int]) -> None:
        self.grid = grid
        a, b = grid.dims
        self.plot.setLabel("bottom", f"latent z{a}", units="σ")
        self.plot.setLabel("left", f"latent z{b}" if b is not None else "—", units="σ" if b is not None else None)
        self.info.setText(
            f"Pixel (row {pixel[0]}, col {pixel[1]}): the network run backwards from a grid over "
            f"z{a}"
            + (f" × z{b}" if b is not None else "")
            + f" (other {grid.n_latent - (2 if b is not None else 1)} latents 0). Smooth colour "
            "changes show how the ambiguity is spread over the latent space."
        )
        self.redraw()

    def redraw(self) -> None:
        if self.grid is None or not self._names:
            return
        name = self.parameter.currentData() or self._names[0]
        j = self._names.index(name)
        vals = np.asarray(self.grid.values[:, :, j], dtype=np.float32)
        finite = vals[np.isfinite(vals)]
        lo, hi = (float(v) for v in np.percentile(finite, [1, 99])) if finite.size else (0.0, 1.0)
        if not hi > lo:
            hi = lo + max(abs(lo) * 1e-6, 1e-12)
        axis = self.grid.axis
        step = float(axis[1] - axis[0]) if axis.size > 1 else 1.0
        self.image.setImage(vals, autoLevels=False, levels=(lo, hi))
        cm = colormap("viridis")
        self.image.setLookupTable(cm.getLookupTable(nPts=256))
        ny = vals.shape[0]
        y0 = float(axis[0]) if ny > 1 else -step / 2
        self.image.setRect(
            float(axis[0]) - step / 2,
            y0 - (step / 2 if ny > 1 else 0),
            step * vals.shape[1],
            step * ny if ny > 1 else step,
        )
        self.colorbar.setColorMap(cm)
        self.colorbar.setLevels(values=(lo, hi))
        lab = self._labels.get(name)
        unit = self._units.get(name, "")
        axis = self.colorbar.getAxis("right")
        axis.setScale(lab.scale if lab else 1.0)
        axis.enableAutoSIPrefix(False)
        self.colorbar.setLabel("right", lab.axis_label if lab else (f"{name} [{unit}]" if unit else name))

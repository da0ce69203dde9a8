"""Controls of the parameter maps: compute (whole image or selected region) with progress, ETA and
cancel; choose parameter × statistic, colour map, range and overlay opacity."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

__all__ = ["MapsPanel", "format_eta", "COLORMAPS", "STAT_LABELS"]

#: Perceptually uniform colour maps (matplotlib's, also in pyqtgraph).
COLORMAPS = ("viridis", "cividis", "magma", "inferno", "plasma")
STAT_LABELS = {
    "median": "median",
    "map": "MAP",
    "mean": "mean",
    "iqr": "IQR (q75 − q25)",
    "std": "standard deviation",
    "multimodality": "multimodality",
    "contraction": "contraction",
    "residual": "predictive residual",
}


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "ETA –"
    if seconds < 60:
        return f"ETA {seconds:.0f} s"
    return f"ETA {int(seconds // 60)} min {int(seconds % 60):02d} s"


class MapsPanel(QWidget):
    """Map controls.

    Signals:
        computeRequested(str): ``"image"`` or ``"region"``.
        cancelRequested(): stop the running computation.
        displayChanged(): parameter, statistic, colour map or range changed.
        opacityChanged(float): overlay opacity in [0, 1].
    """

    computeRequested = Signal(str)
    cancelRequested = Signal()
    displayChanged = Signal()
    opacityChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        compute = QGroupBox("Compute")
        self.draws = QSpinBox()
        self.draws.setRange(16, 20000)
        self.draws.setValue(256)  # the CLI's default (issue 13: a first map within seconds, with the preview)
        self.draws.setSuffix(" draws / pixel")
        self.predictive = QCheckBox("predictive residual and 'not explained' verdict")
        self.predictive.setChecked(True)
        self.predictive.setToolTip("Also map how well the posterior explains each pixel's spectrum: cheap with the model's forward surrogate (+0.1 ms/pixel), one forward solve per pixel without one (+2 ms/pixel)")
        self.btn_image = QPushButton("Whole image")
        self.btn_region = QPushButton("Selected region")
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.eta = QLabel("")
        self.kind_choice = QComboBox()
        self.kind_choice.addItem("exact (the network's draws)", "exact")
        self.kind_choice.addItem("instant (amortised quantile network)", "amortised")
        self.kind_choice.setToolTip(
            "Exact maps summarise the network's posterior draws per pixel (slow, the truth); instant maps come "
            "from the bundle's small quantile network in one pass (only when the bundle has one)"
        )
        self.preview = QCheckBox("coarse preview first, then refine")
        self.preview.setChecked(True)
        self.preview.setToolTip("Show a whole-image first look within seconds, then refine it row by row")
        self.kind = QLabel("")
        self.kind.setWordWrap(True)
        self.kind.setToolTip("Which kind of map is shown: exact (the network's draws per pixel) or incomplete")
        self.draws.setToolTip("Posterior draws per pixel: more draws, smoother maps, longer runs")
        self.btn_image.setToolTip("Map every usable pixel of the image in the background")
        self.btn_region.setToolTip("Map only the selected region (faster)")
        self.btn_cancel.setToolTip("Stop; the rows computed so far are kept and marked incomplete")
        cl = QVBoxLayout(compute)
        cl.addWidget(self.kind_choice)
        cl.addWidget(self.draws)
        cl.addWidget(self.preview)
        cl.addWidget(self.predictive)
        row = QHBoxLayout()
        row.addWidget(self.btn_image)
        row.addWidget(self.btn_region)
        row.addWidget(self.btn_cancel)
        cl.addLayout(row)
        cl.addWidget(self.progress)
        cl.addWidget(self.eta)
        cl.addWidget(self.kind)

        show = QGroupBox("Show")
        self.parameter = QComboBox()
        self.statistic = QComboBox()
        self.cmap = QComboBox()
        self.cmap.addItems(COLORMAPS)
        self.range_mode = QComboBox()
        self.range_mode.addItem("fixed (from the prior)", "prior")
        self.range_mode.addItem("automatic (1–99 %)", "auto")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(65)
        self.btn_hide = QPushButton("Hide overlay")
        self.btn_hide.setCheckable(True)
        self.parameter.setToolTip("Which parameter to show over the image")
        self.statistic.setToolTip("Which summary of each pixel's posterior to show")
        self.cmap.setToolTip("Colour map (perceptually uniform)")
        self.range_mode.setToolTip("Colour range: fixed from the prior (comparable between images) or automatic")
        self.opacity.setToolTip("Opacity of the map over the image")
        self.btn_hide.setToolTip("Show the image without the map")
        form = QFormLayout(show)
        form.addRow("parameter", self.parameter)
        form.addRow("statistic", self.statistic)
        form.addRow("colour map", self.cmap)
        form.addRow("range", self.range_mode)
        form.addRow("opacity", self.opacity)
        form.addRow("", self.btn_hide)

        lay = QVBoxLayout(self)
        lay.addWidget(compute)
        lay.addWidget(show)
        lay.addStretch(1)

        self.btn_image.clicked.connect(lambda: self.computeRequested.emit("image"))
        self.btn_region.clicked.connect(lambda: self.computeRequested.emit("region"))
        self.btn_cancel.clicked.connect(self.cancelRequested)
        self.statistic.currentIndexChanged.connect(lambda *_: self.displayChanged.emit())
        self.cmap.currentIndexChanged.connect(lambda *_: self.displayChanged.emit())
        self.range_mode.currentIndexChanged.connect(lambda *_: self.displayChanged.emit())
        self.btn_hide.toggled.connect(lambda *_: self.displayChanged.emit())
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        self._stats_of: dict[str, list[str]] = {}
        self.parameter.currentIndexChanged.connect(self._fill_statistics)

    # ------------------------------------------------------------------ state
    def set_running(self, running: bool) -> None:
        self.btn_image.setEnabled(not running)
        self.btn_region.setEnabled(not running)
        self.btn_cancel.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.eta.setText("starting …")

    def allow_amortised(self, allowed: bool) -> None:
        """Offer instant maps only for bundles with an amortised network."""
        self.kind_choice.model().item(1).setEnabled(allowed)
        if not allowed:
            self.kind_choice.setCurrentIndex(0)

    def set_kind(self, text: str) -> None:
        """Say which kind of map is shown."""
        self.kind.setText(f"shown: {text}" if text else "")

    def set_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(round(100 * max(0.0, min(1.0, fraction)))))
        self.eta.setText(text)

    def set_available(self, parameters: list[str], stats_of: dict[str, list[str]]) -> None:
        """Fill the selectors from the computed maps (keeps the current choice when possible)."""
        current = self.parameter.currentText()
        self._stats_of = stats_of
        self.parameter.blockSignals(True)
        self.parameter.clear()
        self.parameter.addItems(parameters)
        if current in parameters:
            self.parameter.setCurrentText(current)
        self.parameter.blockSignals(False)
        self._fill_statistics()

    def _fill_statistics(self, *_args) -> None:
        current = self.statistic.currentData()
        stats = self._stats_of.get(self.parameter.currentText(), [])
        self.statistic.blockSignals(True)
        self.statistic.clear()
        for s in stats:
            self.statistic.addItem(STAT_LABELS.get(s, s), s)
        if current in stats:
            self.statistic.setCurrentIndex(stats.index(current))
        elif "median" in stats:
            self.statistic.setCurrentIndex(stats.index("median"))
        self.statistic.blockSignals(False)
        self.displayChanged.emit()

    def current_key(self) -> str | None:
        p, s = self.parameter.currentText(), self.statistic.currentData()
        return f"{p}/{s}" if p and s else None

    def select(self, parameter: str, statistic: str) -> None:
        self.parameter.setCurrentText(parameter)
        stats = self._stats_of.get(parameter, [])
        if statistic in stats:
            self.statistic.setCurrentIndex(stats.index(statistic))

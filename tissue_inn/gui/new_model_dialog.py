"""Model ▸ New model…: pick tissue and camera, see the cost, make the model in the background with a live
loss curve, ETA and Cancel, resume a stopped run, read the evaluation and load the model.

Everything but the drawing is :mod:`tissue_inn.workspace.new_model`; the work runs in a worker of the
main window's registry (closing the window stops it, and the work folder stays for a resume).

One dialog, one class (≈ 470 lines, kept whole): its form, its run and its result share the same
widgets and slots; the logic already lives in the workspace, so a split would only scatter the slots of
one widget over several files.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QElapsedTimer, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.gui.model_dialog import ModelCardDialog, badge_style, card_figures
from tissue_inn.gui.workers import StopFlag, WorkerRegistry
from tissue_inn.workspace import Cancelled, TissueInnError
from tissue_inn.workspace import new_model as nm
from tissue_inn.workspace.models import card_summary
from tissue_inn.workspace.trust import calibration_badge

__all__ = ["NewModelDialog"]

JOB = "make model"


def _picker(items: list[str], current: str | None, tip: str) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(True)
    combo.addItems(items)
    if current:
        if combo.findText(current) < 0:
            combo.addItem(current)
        combo.setCurrentText(current)
    combo.setToolTip(tip)
    combo.setMinimumContentsLength(18)
    return combo


class NewModelDialog(QDialog):
    """The "New model" dialog (non-modal; the main window stays usable while a model is made).

    Args:
        workers: The registry to run in (the main window's, so closing the app stops the job cleanly).
        tissue, camera: Preselected shipped names or TOML paths.
        output_dir: Folder for new models (default :func:`tissue_inn.workspace.new_model.default_models_dir`).
        on_load: Called with the new bundle's folder when the user presses "Load this model".

    Attributes:
        advanced: Extra request fields (test size, evaluation draws, …; tests make tiny models with it).

    Signals:
        jobEnded(str): ``"done"``, ``"cancelled"`` or ``"failed"``.
        estimated(str): the cost estimate's text was shown.
        progressed(object): a progress report of the job was shown.
    """

    jobEnded = Signal(str)
    estimated = Signal(str)
    progressed = Signal(object)

    def __init__(self, parent: QWidget | None = None, workers: WorkerRegistry | None = None,
                 tissue: str | None = None, camera: str | None = None, output_dir: str | Path | None = None,
                 on_load=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New model — simulate, train, evaluate")
        self.resize(820, 760)
        self.workers = workers if workers is not None else WorkerRegistry(self)
        self.on_load = on_load
        self.advanced: dict[str, Any] = {}
        self.result: nm.MadeModel | None = None
        self.tracker = nm.MakeModelTracker()
        self._stop: StopFlag | None = None
        self._output_edited = False
        self._output_dir = Path(output_dir) if output_dir else nm.default_models_dir()

        self.tissue = _picker(nm.shipped("tissue"), tissue or "colon",
                              "A shipped tissue, or the path of a tissue .toml file (File…)")
        self.camera = _picker(nm.shipped("camera"), camera or "spectrocam8",
                              "A shipped camera, or the path of a camera .toml file (File…)")
        self.output = QLineEdit()
        self.output.setToolTip("The folder the model bundle is written to (its work folder is <folder>.work)")
        self.size = QSpinBox()
        self.size.setRange(100, 10_000_000)
        self.size.setSingleStep(10_000)
        self.size.setValue(100_000)
        self.size.setGroupSeparatorShown(True)
        self.size.setToolTip("Simulated training spectra (100,000 is the shipped models' size)")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(40)
        self.epochs.setToolTip("Training epochs")
        self.device = QComboBox()
        for d in ("auto", "cpu", "cuda"):
            self.device.addItem(d)
        self.device.setToolTip("Where to simulate and train (auto: the GPU when there is one)")
        self.gate = QCheckBox("calibrate the “not explained” gate")
        self.gate.setChecked(True)
        self.gate.setToolTip("Also fit the misfit gate that flags spectra the tissue model cannot explain")

        form = QFormLayout()
        form.addRow("Tissue", self._with_button(self.tissue, "File…", lambda: self._pick_toml(self.tissue, "tissue")))
        form.addRow("Camera", self._with_button(self.camera, "File…", lambda: self._pick_toml(self.camera, "camera")))
        form.addRow("Output folder", self._with_button(self.output, "Browse…", self._pick_output))
        row = QHBoxLayout()
        for label, w in (("spectra", self.size), ("epochs", self.epochs), ("device", self.device)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        row.addWidget(self.gate)
        row.addStretch(1)
        form.addRow("Size", row)

        self.cost = QLabel("Press “Estimate time” to measure how long this will take.")
        self.cost.setWordWrap(True)
        self.cost.setToolTip("Measured on this machine: the solver on a few spectra and a few training steps")
        self.resume = QLabel("")
        self.resume.setWordWrap(True)
        self.resume.setStyleSheet("color:#7a5b00")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setToolTip("All stages together, weighted by their estimated time")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setMinimumHeight(170)
        self.plot.addLegend(offset=(-10, 10))
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=5,
                                          name="training")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=5,
                                        name="validation")
        self.plot.setToolTip("Training and validation loss per epoch (lower is better)")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(90)
        self.log.setToolTip("Progress lines of each stage")
        self.summary = QTextBrowser()
        self.summary.setVisible(False)
        self.summary.setMinimumHeight(120)
        self.figures = QWidget()
        self.figures_layout = QHBoxLayout(self.figures)
        self.figures_scroll = QScrollArea()
        self.figures_scroll.setWidget(self.figures)
        self.figures_scroll.setWidgetResizable(True)
        self.figures_scroll.setMinimumHeight(220)
        self.figures_scroll.setVisible(False)

        self.btn_estimate = QPushButton("Estimate time")
        self.btn_estimate.setToolTip("Measure this machine's speed and predict each stage's time")
        self.btn_start = QPushButton("Start")
        self.btn_start.setToolTip("Simulate, train, evaluate and write the bundle (in the background)")
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.setToolTip("Stop soon; the work folder stays, so Start resumes later (even after "
                                   "closing the application)")
        self.btn_cancel.setEnabled(False)
        self.btn_card = QPushButton("Model card…")
        self.btn_card.setEnabled(False)
        self.btn_card.setToolTip("The new model's card: evaluation tables and figures")
        self.btn_load = QPushButton("Load this model")
        self.btn_load.setEnabled(False)
        self.btn_load.setToolTip("Use the new model in the main window")
        self.btn_close = QPushButton("Close")
        self.btn_close.setToolTip("Close this dialog (asks before stopping a running job)")
        buttons = QHBoxLayout()
        for b in (self.btn_estimate, self.btn_start, self.btn_cancel):
            buttons.addWidget(b)
        buttons.addStretch(1)
        for b in (self.btn_card, self.btn_load, self.btn_close):
            buttons.addWidget(b)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.cost)
        lay.addWidget(self.resume)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.plot, 2)
        lay.addWidget(self.log)
        lay.addWidget(self.summary, 1)
        lay.addWidget(self.figures_scroll, 2)
        lay.addLayout(buttons)

        self.btn_estimate.clicked.connect(self.estimate)
        self.btn_start.clicked.connect(self.start)
        self.btn_cancel.clicked.connect(self.cancel)
        self.btn_load.clicked.connect(self.load_result)
        self.btn_card.clicked.connect(self.show_card)
        self.btn_close.clicked.connect(self.close)
        self.output.textEdited.connect(self._on_output_edited)
        self.output.textChanged.connect(lambda *_: self.refresh_resume())
        for combo in (self.tissue, self.camera):
            combo.currentTextChanged.connect(lambda *_: self._default_output())
            combo.currentTextChanged.connect(lambda *_: self.refresh_resume())
        self.size.valueChanged.connect(lambda *_: self.refresh_resume())
        self._default_output()

    # ------------------------------------------------------------------ fields
    @staticmethod
    def _with_button(field: QWidget, text: str, slot) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(field, 1)
        btn = QPushButton(text)
        btn.setToolTip(f"Choose a file or folder for “{text.rstrip('…')}”")
        btn.clicked.connect(slot)
        row.addWidget(btn)
        return row

    def _pick_toml(self, combo: QComboBox, kind: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"{kind.capitalize()} definition", "", "TOML files (*.toml)")
        if path:
            combo.setCurrentText(path)

    def _pick_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to put the new model in", str(self._output_dir))
        if folder:
            self.output.setText(str(Path(folder) / Path(self.output.text() or "new_model").name))
            self._output_edited = True

    def _on_output_edited(self, *_: Any) -> None:
        self._output_edited = True

    def _default_output(self) -> None:
        if self._output_edited:
            return
        stem = lambda s: Path(s).stem if s.endswith(".toml") else s  # noqa: E731
        self.output.setText(str(self._output_dir / f"{stem(self.tissue.currentText())}_{stem(self.camera.currentText())}"))

    def request(self) -> nm.MakeModelRequest:
        """The request of the fields (and :attr:`advanced`); a :class:`TissueInnError` names a bad field."""
        return nm.new_model_request(self.tissue.currentText().strip(), self.camera.currentText().strip(),
                                    self.output.text().strip(), size=self.size.value(), epochs=self.epochs.value(),
                                    device=self.device.currentText(), gate=self.gate.isChecked(),
                                    **self.advanced)

    def refresh_resume(self) -> nm.ResumeInfo | None:
        """Say what an earlier run left in the work folder, and offer Resume."""
        try:
            req = self.request()
        except TissueInnError:
            req = None
        out = self.output.text().strip()
        info = nm.resume_info(out, req) if out else None
        exists = bool(out) and Path(out).exists()
        if exists:  # a finished model: its work folder keeps the simulated data for a retrain
            kept = f" Its simulated spectra stay in {info.folder}: Start again (other epochs) retrains without " \
                "simulating." if info is not None and info.same_request else ""
            self.resume.setText(f"{out} exists; Start replaces it (asks first).{kept}")
            self.btn_start.setText("Start")
            return info
        self.resume.setText(info.text if info else "")
        self.btn_start.setText("Resume" if info is not None and info.same_request else "Start")
        return info

    @property
    def running(self) -> bool:
        return JOB in self.workers.names()

    # ------------------------------------------------------------------ estimate
    def estimate(self) -> None:
        try:
            req = self.request()
        except TissueInnError as exc:
            self._fail(exc)
            return
        self.cost.setText("measuring …")
        self.btn_estimate.setEnabled(False)

        def shown(cost: nm.CostEstimate) -> None:
            self.btn_estimate.setEnabled(True)
            self._show_cost(cost)

        def failed(exc: BaseException) -> None:
            self.btn_estimate.setEnabled(True)
            self._fail(exc)

        self.workers.start(nm.estimate, req, name="estimate", on_returned=shown, on_errored=failed)

    def _show_cost(self, cost: nm.CostEstimate) -> None:
        self.tracker.stage_estimates = {"simulate": cost.simulate_s, "train": cost.train_s,
                                        "evaluate": cost.evaluate_s}
        self.cost.setText(cost.text)
        self.estimated.emit(cost.text)

    # ------------------------------------------------------------------ the job
    def start(self) -> bool:
        """Start (or resume) making the model in the background."""
        if self.running:
            return False
        try:
            req = self.request()
            info = nm.resume_info(req.output, req)
            if info is not None and not info.same_request:
                raise TissueInnError(info.text)
            if Path(req.output).exists():
                if QMessageBox.question(self, "Replace the model?", f"{req.output} exists. Replace it?",
                                        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                        QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
                    return False
                req = nm.new_model_request(**{**self._fields(req), "force": True})
        except TissueInnError as exc:
            self._fail(exc)
            return False
        self.result = None
        self.tracker = nm.MakeModelTracker(stage_estimates=dict(self.tracker.stage_estimates))
        self.train_curve.setData([], [])
        self.val_curve.setData([], [])
        self.log.clear()
        self.summary.setVisible(False)
        self.figures_scroll.setVisible(False)
        self.btn_load.setEnabled(False)
        self.btn_card.setEnabled(False)
        self._set_running(True)
        self.status.setText("measuring the cost, then starting …" if info is None else "resuming …")
        self._stop = StopFlag()
        self.workers.start(self._job, req, self._stop, name=JOB, stop_flag=self._stop, on_yielded=self._on_progress,
                           on_returned=self._on_done, on_errored=self._on_error)
        return True

    @staticmethod
    def _fields(req: nm.MakeModelRequest) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(req)

    @staticmethod
    def _job(req: nm.MakeModelRequest, stop: StopFlag):
        """Worker: the cost estimate first (for the ETA), then make_model."""
        cost = nm.estimate(req)
        yield nm.Progress("estimate", 1, 1, cost.text, {"estimate": cost})
        if stop():
            raise Cancelled("stopped before the simulation started")
        return (yield from nm.run(req, should_stop=stop))

    def _on_progress(self, p: nm.Progress) -> None:
        if p.stage == "estimate":
            self._show_cost(p.extra["estimate"])
            return
        self.tracker.update(p)
        self.progress.setValue(int(1000 * self.tracker.overall_fraction()))
        self.status.setText(html.escape(self.tracker.status_text()))
        if self.tracker.epochs:
            self.train_curve.setData(self.tracker.epochs, self.tracker.train_loss)
            self.val_curve.setData(self.tracker.epochs, self.tracker.val_loss)
        line = p.extra.get("log_line") if isinstance(p.extra, dict) else None
        if line:
            self.log.appendPlainText(str(line))
        self.progressed.emit(p)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (a training step, a simulation block)."""
        if self._stop is not None:
            self._stop.set()
            self.status.setText("stopping … (the work folder stays; Resume continues later)")
            self.btn_cancel.setEnabled(False)

    def _set_running(self, running: bool) -> None:
        self.btn_start.setEnabled(not running)
        self.btn_estimate.setEnabled(not running)
        self.btn_cancel.setEnabled(running)
        for w in (self.tissue, self.camera, self.output, self.size, self.epochs, self.device, self.gate):
            w.setEnabled(not running)

    def _on_done(self, made: nm.MadeModel) -> None:
        self._set_running(False)
        self.result = made
        self.progress.setValue(1000)
        self.status.setText(f"✔ wrote {made.path} in {made.seconds:.0f} s")
        self._show_summary(made)
        self.btn_load.setEnabled(True)
        self.btn_card.setEnabled(True)
        self.refresh_resume()
        self.jobEnded.emit("done")

    def _on_error(self, exc: BaseException) -> None:
        self._set_running(False)
        self.refresh_resume()
        if isinstance(exc, Cancelled):
            self.status.setText(f"Stopped. The work stays in {nm.work_dir(self.output.text().strip())}; "
                                "press Resume to continue (also after restarting the application).")
            self.jobEnded.emit("cancelled")
            return
        self._fail(exc)
        self.jobEnded.emit("failed")

    def _fail(self, exc: BaseException | str) -> None:
        text = str(exc) if isinstance(exc, TissueInnError | str) else f"{type(exc).__name__}: {exc}"
        self.status.setText(f"<span style='color:#842029'>{html.escape(text)}</span>")
        QMessageBox.critical(self, "Cannot make the model", text)

    # ------------------------------------------------------------------ the result
    def _show_summary(self, made: nm.MadeModel) -> None:
        badge = calibration_badge(made.card)
        self.summary.setHtml(f"<p><span style='{badge_style(badge)}'>{html.escape(badge.text)}</span> "
                             f"{html.escape(badge.detail)}</p><pre>{html.escape(card_summary(made.card))}</pre>")
        self.summary.setVisible(True)
        while self.figures_layout.count():
            item = self.figures_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        figs = [p for p in card_figures(made.path, made.card) if "calibration" in p.name or "coverage" in p.name]
        for path in figs[:4]:
            img = QLabel()
            pix = QPixmap(str(path))
            if not pix.isNull():
                img.setPixmap(pix.scaledToHeight(200, Qt.TransformationMode.SmoothTransformation))
            img.setToolTip(str(path.relative_to(made.path)))
            self.figures_layout.addWidget(img)
        self.figures_scroll.setVisible(bool(figs))
        self.shown_figures = figs

    def show_card(self) -> ModelCardDialog | None:
        if self.result is None:
            return None
        dlg = ModelCardDialog(self.result.card, self.result.path, self)
        dlg.show()
        return dlg

    def load_result(self) -> bool:
        if self.result is None or self.on_load is None:
            return False
        ok = bool(self.on_load(self.result.path))
        if ok:
            self.status.setText(f"✔ loaded {self.result.path.name} in the main window")
        return ok

    # ------------------------------------------------------------------ closing
    def stop_and_wait(self, timeout_ms: int = 30000) -> bool:
        """Stop the job (work folder kept) and wait until its worker has ended."""
        if not self.running:
            return True
        self.cancel()
        timer = QElapsedTimer()
        timer.start()
        while self.running and timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            time.sleep(0.01)
        return not self.running

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.running:
            answer = QMessageBox.question(
                self, "Stop making the model?",
                "The model is still being made. Stop it? (The work folder stays; Start resumes it later.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.stop_and_wait()
        event.accept()

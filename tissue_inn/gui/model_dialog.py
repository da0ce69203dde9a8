"""The model card: parameters and priors, camera bands, training data, evaluation figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.workspace.models import card_summary

__all__ = ["ModelCardDialog", "card_figures", "prior_text"]


def prior_text(tissue: dict[str, Any], name: str) -> str:
    """The prior of a parameter as written in the card's tissue definition (e.g. ``uniform [0, 0.1]``)."""
    spec = (tissue.get("shared") or {}).get(name)
    if spec is None and "_" in name:
        prop, _, k = name.rpartition("_")
        layers = tissue.get("layers") or []
        if k.isdigit() and 1 <= int(k) <= len(layers):
            spec = layers[int(k) - 1].get(prop)
    if not isinstance(spec, dict):
        return "" if spec is None else f"fixed {spec}"
    args = ", ".join(f"{k} {v}" for k, v in spec.items() if k != "prior")
    return f"{spec.get('prior', '?')} ({args})"


def card_figures(folder: Path | None, card: dict[str, Any]) -> list[Path]:
    """PNG figures that travel with the bundle (named in the card, or any ``*.png`` in the folder)."""
    if folder is None:
        return []
    named: list[Path] = []
    ev = card.get("evaluation")
    for key in ("figures", "calibration_plot", "plots"):
        val = (ev or {}).get(key) if isinstance(ev, dict) else None
        vals = val.values() if isinstance(val, dict) else (val if isinstance(val, list) else [val])
        for v in vals:
            if isinstance(v, str) and (folder / v).is_file():
                named.append(folder / v)
    found = sorted(p for p in folder.rglob("*.png") if p.is_file())
    return list(dict.fromkeys(named + found))


class ModelCardDialog(QDialog):
    """Shows a model's card in tabs."""

    def __init__(self, card: dict[str, Any], folder: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card — {card.get('name') or (folder.name if folder else 'model')}")
        self.resize(820, 620)
        tabs = QTabWidget()
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)

        summary = QPlainTextEdit()
        summary.setReadOnly(True)
        summary.setFont(mono)
        summary.setPlainText(card_summary(card))
        tabs.addTab(summary, "Summary")

        spec = card.get("estimator", {})
        names = spec.get("parameter_names", [])
        units = spec.get("parameter_units", [])
        lows, highs = spec.get("prior_low", []), spec.get("prior_high", [])
        tissue = card.get("tissue", {}) or {}
        table = QTableWidget(len(names), 4)
        table.setHorizontalHeaderLabels(["parameter", "unit", "prior support", "prior"])
        for i, n in enumerate(names):
            lo = lows[i] if i < len(lows) and lows[i] is not None else -math.inf
            hi = highs[i] if i < len(highs) and highs[i] is not None else math.inf
            for j, text in enumerate(
                [n, units[i] if i < len(units) else "", f"[{lo:g}, {hi:g}]", prior_text(tissue, n)]
            ):
                table.setItem(i, j, QTableWidgetItem(text))
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        tabs.addTab(table, "Parameters && priors")

        cam = card.get("camera", {}) or {}
        cam_text = QPlainTextEdit()
        cam_text.setReadOnly(True)
        cam_text.setFont(mono)
        cam_text.setPlainText(
            f"band centres [nm]: {card.get('band_centers_nm')}\n\n"
            + json.dumps(cam, indent=2)
            + ("\n\nnoise model:\n" + json.dumps(card.get("noise_model"), indent=2) if card.get("noise_model") else "")
        )
        tabs.addTab(cam_text, "Camera")

        data_text = QPlainTextEdit()
        data_text.setReadOnly(True)
        data_text.setFont(mono)
        data_text.setPlainText(
            "dataset:\n"
            + json.dumps(card.get("dataset", {}), indent=2)
            + "\n\ntraining:\n"
            + json.dumps(card.get("training", {}), indent=2)
            + "\n\nevaluation:\n"
            + json.dumps(card.get("evaluation", {}), indent=2)
        )
        tabs.addTab(data_text, "Training && evaluation")

        self.figures = card_figures(folder, card)
        fig_widget = QWidget()
        fl = QVBoxLayout(fig_widget)
        if not self.figures:
            fl.addWidget(QLabel("This bundle carries no evaluation figures (calibration plot, …)."))
        for path in self.figures:
            fl.addWidget(QLabel(f"<b>{path.name}</b>"))
            img = QLabel()
            pix = QPixmap(str(path))
            if not pix.isNull():
                img.setPixmap(pix.scaledToWidth(min(760, pix.width()), Qt.TransformationMode.SmoothTransformation))
            fl.addWidget(img)
        fl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(fig_widget)
        scroll.setWidgetResizable(True)
        tabs.addTab(scroll, f"Figures ({len(self.figures)})")
        self.tabs = tabs

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(tabs)
        lay.addWidget(buttons)

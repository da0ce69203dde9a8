"""The model card: a plain-language page (intended use, tissue, camera, SNR range, calibration, what it
cannot tell, limitations) and technical tabs with tables — never raw JSON."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
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
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.workspace.models import card_summary
from tissue_inn.workspace.trust import CalibrationBadge, Table, calibration_badge, card_tables, plain_language

__all__ = ["ModelCardDialog", "card_figures", "badge_style"]


def badge_style(badge: CalibrationBadge) -> str:
    """Style sheet of a calibration badge (green calibrated, red over-/under-confident, grey unknown)."""
    if badge.status == "calibrated":
        bg, fg = "#d1e7dd", "#0f5132"
    elif badge.status == "unknown":
        bg, fg = "#e9ecef", "#41464b"
    elif badge.status.startswith("roughly"):
        bg, fg = "#fff3cd", "#7a5b00"
    else:
        bg, fg = "#f8d7da", "#842029"
    return f"background:{bg}; color:{fg}; padding:2px 6px; border-radius:3px; font-weight:bold"


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


def _table_widget(table: Table) -> QTableWidget:
    w = QTableWidget(len(table.rows), len(table.headers))
    w.setHorizontalHeaderLabels(list(table.headers))
    for i, row in enumerate(table.rows):
        for j, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            w.setItem(i, j, item)
    w.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    w.horizontalHeader().setStretchLastSection(True)
    w.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    w.verticalHeader().setVisible(False)
    return w


def _stack(tables: list[Table]) -> QWidget:
    page = QWidget()
    lay = QVBoxLayout(page)
    for t in tables:
        lay.addWidget(QLabel(f"<b>{html.escape(t.title)}</b>"))
        if t.rows:
            lay.addWidget(_table_widget(t), 1)
        else:
            lay.addWidget(QLabel("(not recorded in the card)"))
    return page


class ModelCardDialog(QDialog):
    """Shows a model's card: "About this model", then tables, then the figures."""

    def __init__(self, card: dict[str, Any], folder: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name = card.get("name") or (folder.name if folder else "model")
        self.setWindowTitle(f"Model card — {name}")
        self.resize(860, 640)
        tabs = QTabWidget()

        self.badge = calibration_badge(card)
        about = QTextBrowser()
        about.setOpenExternalLinks(False)
        parts = [f"<h2>{html.escape(str(name))}</h2>",
                 f"<p><span style='{badge_style(self.badge)}'>{html.escape(self.badge.text)}</span></p>"]
        for heading, text in plain_language(card):
            parts.append(f"<h4>{html.escape(heading)}</h4><p>{html.escape(text)}</p>")
        about.setHtml("".join(parts))
        self.about = about
        tabs.addTab(about, "About this model")

        tables = {t.title: t for t in card_tables(card)}
        tabs.addTab(_stack([tables["Parameters & priors"]]), "Parameters && priors")
        tabs.addTab(_stack([tables["Camera"], tables["Noise model"]]), "Camera && noise")
        train = _stack([tables["Evaluation"], tables["Training"], tables["Dataset"]])
        summary = QPlainTextEdit(card_summary(card))
        summary.setReadOnly(True)
        summary.setMaximumHeight(140)
        summary.setToolTip("The same summary as `tissue-inn info MODEL`")
        train.layout().addWidget(QLabel("<b>Summary (as printed by tissue-inn info)</b>"))
        train.layout().addWidget(summary)
        tabs.addTab(train, "Training && evaluation")

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

"""Open an image, optionally with white and dark references (remembered per folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tissue_inn.workspace.browse import References

__all__ = ["OpenImageDialog"]


class OpenImageDialog(QDialog):
    """Image file plus optional white/dark reference files.

    Args:
        file_filter: The readers' file filter.
        references_for: Image path → the references remembered for its folder (pre-filled on change).
        start: A file or folder to start from.
    """

    def __init__(
        self,
        file_filter: str,
        references_for: Callable[[str], References],
        start: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open multispectral image")
        self._filter = file_filter
        self._references_for = references_for
        self.image = QLineEdit(start)
        self.white = QLineEdit()
        self.dark = QLineEdit()
        self.image.setToolTip("The multispectral cube (HDF5, NumPy, TIFF, ENVI, …)")
        self.white.setToolTip("White reference (optional): turns raw counts into reflectance, (raw − dark) / (white − dark)")
        self.dark.setToolTip("Dark reference (optional): zero when only a white reference is given")
        form = QFormLayout()
        for label, edit, what in (("image", self.image, "image"), ("white reference", self.white, "white"),
                                  ("dark reference", self.dark, "dark")):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            btn = QPushButton("Browse…")
            btn.setToolTip(f"Choose the {label}")
            btn.clicked.connect(lambda *_, e=edit, w=what: self._browse(e, w))
            row.addWidget(btn)
            form.addRow(label, row)
        note = QLabel("References are remembered for each folder and offered for its other images.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self.image.editingFinished.connect(self._fill_references)
        if start:
            self._fill_references()

    def _browse(self, edit: QLineEdit, what: str) -> None:
        start = edit.text() or self.image.text()
        path, _ = QFileDialog.getOpenFileName(self, f"Choose the {what}", start, self._filter)
        if path:
            edit.setText(path)
            if what == "image":
                self._fill_references()

    def _fill_references(self) -> None:
        if not self.image.text():
            return
        refs = self._references_for(self.image.text())
        if refs.white is not None and not self.white.text():
            self.white.setText(str(refs.white))
        if refs.dark is not None and not self.dark.text():
            self.dark.setText(str(refs.dark))

    def choice(self) -> tuple[Path, References]:
        """The image and its references."""
        white, dark = self.white.text().strip(), self.dark.text().strip()
        return Path(self.image.text().strip()), References(Path(white) if white else None, Path(dark) if dark else None)

"""Shared pieces of the GUI tests: a recorder of message boxes, a factory of loaded main windows that
closes them and checks that no worker thread outlives them, and mouse helpers.

Fixtures are defined under other attribute names (``name=`` gives the fixture name) so that test
modules can import them without shadowing.
"""

from __future__ import annotations

import pytest
from conftest import write_cube
from PySide6.QtCore import QSettings, Qt, QThreadPool
from PySide6.QtWidgets import QMessageBox

from tissue_inn.gui.main_window import MainWindow
from tissue_inn.workspace import Workspace

WAIT_MS = 60000


class Dialogs:
    """Records QMessageBox calls instead of blocking."""

    def __init__(self, answer=QMessageBox.StandardButton.Yes) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.answer = answer

    def critical(self, parent, title, text, *args, **kwargs):
        self.calls.append(("critical", title, text))
        return QMessageBox.StandardButton.Ok

    def question(self, parent, title, text, *args, **kwargs):
        self.calls.append(("question", title, text))
        return self.answer


@pytest.fixture(name="dialogs")
def dialogs_fixture(monkeypatch):
    d = Dialogs()
    monkeypatch.setattr(QMessageBox, "critical", d.critical)
    monkeypatch.setattr(QMessageBox, "question", d.question)
    return d


@pytest.fixture(name="make_window")
def make_window_fixture(qtbot, tmp_path, dialogs, tiny_bundle):
    """Factory of loaded windows; at the end every window is closed and no worker thread may survive."""
    windows: list[MainWindow] = []

    def make(image=None, n_draws_pixel=256, n_draws_map=16) -> MainWindow:
        settings = QSettings(str(tmp_path / f"settings{len(windows)}.ini"), QSettings.Format.IniFormat)
        win = MainWindow(Workspace(n_draws_pixel=n_draws_pixel, n_draws_map=n_draws_map, seed=1), settings=settings)
        qtbot.addWidget(win)
        win.resize(1400, 850)
        win.show()
        assert win.load_model(tiny_bundle)
        if image is None:
            image = write_cube(tmp_path / f"cube{len(windows)}.h5")
        assert win.open_image(image)
        windows.append(win)
        qtbot.wait(50)  # let the layout settle before tests map pixels to widget coordinates
        return win

    yield make
    for win in windows:
        win.close()
    assert all(w.workers.n_running == 0 for w in windows), "a worker outlived its window"
    assert QThreadPool.globalInstance().waitForDone(10000)


def click_pixel(qtbot, win: MainWindow, row: int, col: int) -> None:
    pos = win.image_view.pixel_to_widget(row, col)
    qtbot.mouseClick(win.image_view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def send_mouse(widget, kind, pos, button=Qt.MouseButton.NoButton, buttons=Qt.MouseButton.NoButton):
    """Deliver a mouse event directly (QTest's mouseMove does not reach widgets on the offscreen platform)."""
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = QPointF(pos)
    event = QMouseEvent(
        getattr(QEvent.Type, kind),
        local,
        QPointF(widget.mapToGlobal(pos)),
        button,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)



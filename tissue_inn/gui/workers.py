"""Worker threads: superqt workers with a registry, so the window can stop and await them all.

Functions become ``FunctionWorker`` (``returned`` → result); generators yielding
:class:`~tissue_inn.progress.Progress` become ``GeneratorWorker`` (``yielded`` → progress). Every
error arrives as the ``errored`` signal on the GUI thread; nothing touches widgets from a worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QObject, QThreadPool, Signal
from superqt.utils import create_worker

__all__ = ["WorkerRegistry", "StopFlag"]


class StopFlag:
    """A thread-safe ``should_stop`` callable for the core's generators."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


class WorkerRegistry(QObject):
    """Starts workers and knows which are still running.

    Signals:
        changed(int): number of running workers after a start or a finish.
    """

    changed = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[int, tuple[Any, StopFlag | None, str]] = {}

    def start(
        self,
        func: Callable[..., Any],
        *args: Any,
        name: str = "job",
        stop_flag: StopFlag | None = None,
        on_returned: Callable[[Any], None] | None = None,
        on_yielded: Callable[[Any], None] | None = None,
        on_errored: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        **kwargs: Any,
    ):
        """Run ``func(*args, **kwargs)`` in the thread pool; callbacks run on the GUI thread."""
        worker = create_worker(func, *args, _start_thread=False, _ignore_errors=on_errored is not None, **kwargs)
        key = id(worker)
        self._running[key] = (worker, stop_flag, name)
        if on_returned is not None:
            worker.returned.connect(on_returned)
        if on_yielded is not None and hasattr(worker.signals, "yielded"):
            worker.yielded.connect(on_yielded)
        if on_errored is not None:
            worker.errored.connect(on_errored)

        def done() -> None:
            self._running.pop(key, None)
            if on_finished is not None:
                on_finished()
            self.changed.emit(len(self._running))

        worker.finished.connect(done)
        worker.start()
        self.changed.emit(len(self._running))
        return worker

    @property
    def n_running(self) -> int:
        return len(self._running)

    def names(self) -> list[str]:
        return [name for _, _, name in self._running.values()]

    def stop(self, name: str | None = None) -> None:
        """Ask the running workers (all, or those called ``name``) to stop."""
        for worker, flag, wname in list(self._running.values()):
            if name is None or wname == name:
                if flag is not None:
                    flag.set()
                worker.quit()

    def stop_and_wait(self, timeout_ms: int = 10000) -> bool:
        """Stop all workers and wait (processing events, so their ``finished`` arrive). True if all ended."""
        self.stop()
        timer = QElapsedTimer()
        timer.start()
        while self._running and timer.elapsed() < timeout_ms:
            QThreadPool.globalInstance().waitForDone(20)
            QCoreApplication.processEvents()
        ok = QThreadPool.globalInstance().waitForDone(max(0, timeout_ms - int(timer.elapsed())))
        QCoreApplication.processEvents()
        return ok and not self._running

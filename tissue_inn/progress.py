"""Progress reports of long work.

Long operations (simulation, training, image inference) are generators that yield
:class:`Progress` objects and *return* their result. The CLI draws a progress bar from
them; the GUI runs the same generator in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Progress", "run_to_completion", "ShouldStop", "RateEstimator"]

T = TypeVar("T")
ShouldStop = Callable[[], bool] | None


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Attributes:
        stage: short name of what is running (``"simulate"``, ``"train"``, ``"infer"``).
        done: units finished so far.
        total: units in all (``0`` when unknown).
        message: a human readable line (loss values, rate).
        extra: structured figures (e.g. per-term losses) for programmatic consumers.
    """

    stage: str
    done: int
    total: int
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def run_to_completion(gen: Generator[Progress, None, T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a progress generator to its end and return its result."""
    while True:
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(report)


class RateEstimator:
    """Units per second and ETA from a monotonic clock."""

    def __init__(self, total: int, already_done: int = 0) -> None:
        self.total = total
        self.start_done = already_done
        self.t0 = time.monotonic()

    def rate(self, done: int) -> float:
        dt = time.monotonic() - self.t0
        return (done - self.start_done) / dt if dt > 0 else 0.0

    def eta_s(self, done: int) -> float:
        r = self.rate(done)
        return (self.total - done) / r if r > 0 else float("inf")

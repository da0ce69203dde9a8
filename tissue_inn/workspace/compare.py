"""Comparing posteriors: up to four pinned pixels overlaid in distinct colours, and a second model
answering the same click.

>>> pins = Pins()
>>> pins.colors[:2]
('#009E73', '#E69F00')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tissue_inn.errors import TissueInnError
from tissue_inn.workspace.models import LoadedModel
from tissue_inn.workspace.pixel import PixelRequest, PixelResult

__all__ = ["Pins", "Pin", "MAX_PINS", "PIN_COLORS", "COMPARE_COLOR", "check_comparable", "compare_request"]

MAX_PINS = 4
#: Pin colours (Okabe & Ito 2008), distinct from the current pixel's blue and the ground truth's vermilion.
PIN_COLORS = ("#009E73", "#E69F00", "#7F3C8D", "#56B4E9")
#: The second model's posterior.
COMPARE_COLOR = "#CC79A7"


@dataclass
class Pin:
    """A pinned pixel posterior and its colour."""

    result: PixelResult
    color: str

    @property
    def label(self) -> str:
        r = self.result.request
        return f"pixel ({r.row}, {r.col})"


@dataclass
class Pins:
    """Pinned pixel posteriors (at most :data:`MAX_PINS`; pinning a pixel again moves nothing)."""

    items: list[Pin] = field(default_factory=list)
    colors: tuple[str, ...] = PIN_COLORS

    def add(self, result: PixelResult) -> Pin:
        """Pin a result; a pixel already pinned is not pinned twice; a fifth pin is refused."""
        rc = (result.request.row, result.request.col)
        for pin in self.items:
            if (pin.result.request.row, pin.result.request.col) == rc:
                return pin
        if len(self.items) >= MAX_PINS:
            raise TissueInnError(f"at most {MAX_PINS} pixels can be pinned; unpin one first")
        used = {p.color for p in self.items}
        color = next(c for c in self.colors if c not in used)
        pin = Pin(result, color)
        self.items.append(pin)
        return pin

    def remove(self, row: int, col: int) -> None:
        self.items = [p for p in self.items if (p.result.request.row, p.result.request.col) != (row, col)]

    def clear(self) -> None:
        self.items = []

    def __len__(self) -> int:
        return len(self.items)

    def series(self) -> list[tuple[str, np.ndarray, str]]:
        """``(label, samples [n, D], colour)`` of every pin."""
        return [(p.label, p.result.samples, p.color) for p in self.items]


def check_comparable(main: LoadedModel, other: LoadedModel) -> None:
    """Two models can answer the same click when they estimate the same parameters from the same bands."""
    if main.parameter_names != other.parameter_names:
        raise TissueInnError(
            f"{other.name} estimates {other.parameter_names}, {main.name} estimates {main.parameter_names}; "
            "compare models of the same tissue"
        )
    if main.band_centers_nm.shape != other.band_centers_nm.shape or not np.allclose(
        main.band_centers_nm, other.band_centers_nm, atol=2.0
    ):
        raise TissueInnError(f"{other.name} was trained for other bands than {main.name}; compare models of one camera")


def compare_request(request: PixelRequest, other: LoadedModel) -> PixelRequest:
    """The same click (same generation, spectrum, draws and seed) for the second model."""
    return PixelRequest(
        request.generation, request.row, request.col, request.spectrum, request.n_draws, request.seed,
        other.posterior, request.ground_truth, request.snr,
    )

"""The measurement's noise level as the user sets it (or has it estimated from the image), and the
warning when it lies outside what the model was trained on. The numbers come from
:mod:`tissue_inn.inference.noise`; this module only phrases them for the pixel header."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SnrEstimate", "snr_warning", "estimate_image_snr", "snr_text"]


@dataclass(frozen=True)
class SnrEstimate:
    """An SNR estimated from the image: the value and how it was found (with its uncertainty)."""

    value: float
    text: str


def snr_warning(snr: float | None, card: Mapping[str, Any], model_name: str) -> str | None:
    """A warning naming the trained range when ``snr`` lies outside it (None: in range or not set)."""
    if snr is None:
        return None
    from tissue_inn.inference.noise import check_snr_range

    return check_snr_range(float(snr), dict(card), model_name)


def estimate_image_snr(image: np.ndarray) -> SnrEstimate:
    """A robust per-band estimate from differences of neighbouring pixels (slow on big images; a worker runs it)."""
    from tissue_inn.inference.noise import estimate_snr_from_image

    spec = estimate_snr_from_image(image)
    return SnrEstimate(float(spec.scalar()), spec.describe())


def snr_text(snr: float | None, nominal: float | None) -> str:
    """``"SNR 12 (set)"`` or ``"SNR 20 (the model's nominal)"`` for the pixel header.

    >>> snr_text(None, 20.0), snr_text(12.0, 20.0)
    ("SNR 20 (the model's nominal)", 'SNR 12 (set)')
    """
    if snr is not None:
        return f"SNR {snr:.3g} (set)"
    return f"SNR {nominal:.3g} (the model's nominal)" if nominal else "SNR: the model's nominal"

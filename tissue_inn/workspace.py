"""The Qt-free state of the desktop application: one model, one image, their results and operations.

The GUI (:mod:`tissue_inn.gui`) draws what this module holds and runs its slow operations in worker
threads; everything that is not drawing lives here and is tested without Qt.

Notation: an image pixel is addressed ``(row, col)``; spectra are in the *model's* band order
(the cube's bands are matched once, when model and image meet, with :func:`tissue_inn.io.bands.match_bands`).

Staleness: every pixel request and every map job carries a *generation* number. A later click (or a
new model / image) increases it, and :meth:`Workspace.accept_pixel` / :meth:`Workspace.accept_maps`
drop answers that belong to an older generation.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissue_inn.errors import BandMismatchError, Cancelled, DataFileError, ModelBundleError, TissueInnError
from tissue_inn.io.bands import match_bands
from tissue_inn.io.cube import Cube, read_cube
from tissue_inn.progress import Progress

__all__ = [
    "CONTRACTION_INFORMED",
    "REGION_COLORS",
    "PixelRequest",
    "PixelResult",
    "MapJob",
    "Region",
    "LatentGrid",
    "Workspace",
    "band_mismatch_message",
    "check_bands",
    "parameter_groups",
    "push_recent",
    "region_mask",
    "histogram",
    "stretch",
]

#: Below this contraction (1 − posterior variance / prior variance) a posterior is shown as "≈ prior".
CONTRACTION_INFORMED = 0.1
#: Colour-blind-friendly region colours (Okabe & Ito 2008 palette).
REGION_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
#: Statistics whose values carry the parameter's unit and live in its prior range.
VALUE_STATISTICS = ("mean", "median", "map", "q05", "q16", "q25", "q75", "q84", "q95")
#: Statistics that measure spread (same unit, range from 0).
SPREAD_STATISTICS = ("std", "iqr")
_RECENT_MAX = 10


# ----------------------------------------------------------------------------------------------
# small pure helpers


def check_bands(
    cube_wavelengths_nm: Sequence[float] | None,
    model_band_centers_nm: Sequence[float],
    n_cube_bands: int | None = None,
    tol_nm: float = 2.0,
) -> np.ndarray:
    """Indices of the cube's bands that give the model's bands, or a :class:`BandMismatchError`.

    The error message names both band lists and the model bands that have no partner, so a dialog can
    show it as it is.
    """
    try:
        return np.asarray(
            match_bands(cube_wavelengths_nm, model_band_centers_nm, tol_nm, n_cube_bands=n_cube_bands), dtype=int
        )
    except BandMismatchError as exc:
        raise BandMismatchError(
            band_mismatch_message(cube_wavelengths_nm, model_band_centers_nm, tol_nm) + f"\n({exc})"
        ) from None


def band_mismatch_message(
    cube_wavelengths_nm: Sequence[float] | None, model_band_centers_nm: Sequence[float], tol_nm: float = 2.0
) -> str:
    """A readable account of how the image's bands differ from the model's."""
    model = [float(v) for v in model_band_centers_nm]
    if cube_wavelengths_nm is None:
        return f"the image carries no wavelengths; the model needs bands {_fmt_nm(model)}"
    cube = [float(v) for v in cube_wavelengths_nm]
    missing = [m for m in model if not any(abs(m - c) <= tol_nm for c in cube)]
    return (
        f"the model's bands do not match the image: model {_fmt_nm(model)}, image {_fmt_nm(cube)}; "
        f"no image band within {tol_nm:g} nm of {_fmt_nm(missing)}. Load a model trained for this camera."
    )


def _fmt_nm(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "] nm"


def parameter_groups(parameter_names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Group parameters by tissue layer: ``[("shared", [...]), ("layer 1 (top)", [...]), ...]``.

    Parameters named ``<property>_<k>`` belong to layer k; the others are shared by the stack.
    """
    shared: list[str] = []
    layers: dict[int, list[str]] = {}
    for name in parameter_names:
        m = re.fullmatch(r"(.+)_(\d+)", name)
        if m:
            layers.setdefault(int(m.group(2)), []).append(name)
        else:
            shared.append(name)
    groups: list[tuple[str, list[str]]] = [("shared", shared)] if shared else []
    for k in sorted(layers):
        label = f"layer {k} (top)" if k == 1 and len(layers) > 1 else f"layer {k}"
        groups.append((label, layers[k]))
    return groups


def push_recent(recent: Sequence[str], path: str | os.PathLike, max_items: int = _RECENT_MAX) -> list[str]:
    """The recent-files list with ``path`` first, no duplicates, at most ``max_items`` entries."""
    p = str(Path(path).resolve())
    out = [p] + [str(r) for r in recent if str(r) != p]
    return out[:max_items]


def region_mask(kind: str, geometry: Mapping[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """H × W bool mask of the pixels whose centres lie inside a region.

    Coordinates are image coordinates: ``x`` = column, ``y`` = row, the pixel (r, c) covers
    [c, c+1) × [r, r+1), its centre is (c + 0.5, r + 0.5).

    Args:
        kind: ``"rect"`` (geometry ``x, y, w, h``), ``"ellipse"`` (``x, y, w, h`` of the bounding box)
            or ``"polygon"`` (``points``: list of (x, y)).
        geometry: As above.
        shape: (H, W).
    """
    h, w = int(shape[0]), int(shape[1])
    cols = np.arange(w) + 0.5
    rows = np.arange(h) + 0.5
    if kind in ("rect", "ellipse"):
        x, y, gw, gh = (float(geometry[k]) for k in ("x", "y", "w", "h"))
        if gw < 0:
            x, gw = x + gw, -gw
        if gh < 0:
            y, gh = y + gh, -gh
        if kind == "rect":
            return ((rows >= y) & (rows < y + gh))[:, None] & ((cols >= x) & (cols < x + gw))[None, :]
        if gw == 0 or gh == 0:
            return np.zeros((h, w), dtype=bool)
        cx, cy = x + gw / 2, y + gh / 2
        return ((cols[None, :] - cx) / (gw / 2)) ** 2 + ((rows[:, None] - cy) / (gh / 2)) ** 2 <= 1.0
    if kind == "polygon":
        from matplotlib.path import Path as MplPath

        pts = np.asarray(geometry["points"], dtype=float).reshape(-1, 2)
        if len(pts) < 3:
            return np.zeros((h, w), dtype=bool)
        cc, rr = np.meshgrid(cols, rows)
        inside = MplPath(pts).contains_points(np.column_stack([cc.ravel(), rr.ravel()]))
        return inside.reshape(h, w)
    raise ValueError(f"region kind {kind!r} unknown; use 'rect', 'ellipse' or 'polygon'")


def histogram(samples: np.ndarray, low: float, high: float, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram on [low, high]: ``(edges [bins+1], density [bins])`` (density integrates to the
    fraction of samples inside the range)."""
    s = np.asarray(samples, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if not high > low:
        high = low + 1.0
    counts, edges = np.histogram(s, bins=bins, range=(low, high))
    width = (high - low) / bins
    density = counts / (max(s.size, 1) * width)
    return edges, density


def stretch(image: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Percentile contrast stretch of each channel to [0, 1] (NaN stays NaN)."""
    img = np.asarray(image, dtype=np.float32)
    chans = img[..., None] if img.ndim == 2 else img
    out = np.empty_like(chans)
    for k in range(chans.shape[-1]):
        c = chans[..., k]
        finite = c[np.isfinite(c)]
        if finite.size == 0:
            out[..., k] = np.nan
            continue
        lo, hi = np.percentile(finite, [low_pct, high_pct])
        if not hi > lo:
            hi = lo + 1e-6
        out[..., k] = np.clip((c - lo) / (hi - lo), 0.0, 1.0)
    return out[..., 0] if img.ndim == 2 else out


# ----------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class PixelRequest:
    """One click: which pixel, its spectrum (model band order) and how to sample."""

    generation: int
    row: int
    col: int
    spectrum: np.ndarray
    n_draws: int
    seed: int
    posterior: Any = field(repr=False, compare=False, default=None)


@dataclass
class PixelResult:
    """The answer to a :class:`PixelRequest`.

    Attributes:
        request: The request answered.
        pixel: The core's ``PixelPosterior`` (samples ``[n_draws, D]``, ``summaries``, predictive bands).
        ground_truth: parameter name → true value at this pixel (where the image carries it).
        predictive: the core's ``PredictiveCheck`` once computed (:meth:`Workspace.compute_predictive`).
    """

    request: PixelRequest
    pixel: Any
    ground_truth: dict[str, float] = field(default_factory=dict)
    predictive: Any = None

    @property
    def samples(self) -> np.ndarray:
        return np.asarray(self.pixel.samples)

    @property
    def summaries(self) -> dict[str, dict[str, float]]:
        return self.pixel.summaries


@dataclass(frozen=True)
class MapJob:
    """A map computation: generation, region of interest (None = whole image), sampling settings.

    ``predictive``: also map the posterior predictive residual (one forward solve per pixel).
    """

    generation: int
    roi_mask: np.ndarray | None
    n_draws: int
    seed: int
    posterior: Any = field(repr=False, compare=False, default=None)
    cube: Any = field(repr=False, compare=False, default=None)
    predictive: bool = True


@dataclass
class Region:
    """A region of interest drawn on the image."""

    name: str
    kind: str
    geometry: dict[str, Any]
    mask: np.ndarray
    color: str

    @property
    def n_pixels(self) -> int:
        return int(self.mask.sum())


@dataclass
class LatentGrid:
    """Parameters obtained by running the network backwards on a grid of two latent coordinates.

    Attributes:
        axis: The latent coordinate values along each grid axis (``[n]``).
        values: ``[n, n, D]`` parameters in physical units; ``values[i, j]`` has latent
            ``z[dim_a] = axis[j]`` (x axis) and ``z[dim_b] = axis[i]`` (y axis), other latents 0.
        dims: (dim_a, dim_b); ``dim_b`` is None when the model has one latent dimension.
        n_latent: Number of latent dimensions of the model.
    """

    axis: np.ndarray
    values: np.ndarray
    dims: tuple[int, int | None]
    n_latent: int


# ----------------------------------------------------------------------------------------------
# the workspace


class Workspace:
    """The application state: a model (posterior), an image (cube), results and regions.

    Args:
        n_draws_pixel: Posterior draws per clicked pixel.
        n_draws_map: Posterior draws per pixel for maps.
        seed: Base seed of every random process started from here (recorded with the results).
    """

    def __init__(self, n_draws_pixel: int = 4096, n_draws_map: int = 500, seed: int = 0) -> None:
        self.n_draws_pixel = int(n_draws_pixel)
        self.n_draws_map = int(n_draws_map)
        self.seed = int(seed)
        self.posterior: Any = None
        self.model_path: Path | None = None
        self.card: dict[str, Any] = {}
        self.cube: Cube | None = None
        self.image_path: Path | None = None
        self.image: np.ndarray | None = None  # H × W × B (cube band order), float32, in memory
        self.band_indices: np.ndarray | None = None  # cube band for each model band
        self.valid: np.ndarray | None = None
        self.maps: Any = None  # MapResult
        self.regions: dict[str, Region] = {}
        self.pixel_result: PixelResult | None = None
        self.region_stats: list[dict[str, Any]] = []
        self.region_samples: dict[str, np.ndarray] = {}
        self._generation = 0
        self._map_generation = 0
        self._region_counter = 0
        self._prior_cache: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------------ state
    @property
    def generation(self) -> int:
        """The current pixel-request generation (answers of older generations are stale)."""
        return self._generation

    @property
    def has_model(self) -> bool:
        return self.posterior is not None

    @property
    def has_image(self) -> bool:
        return self.image is not None

    @property
    def ready(self) -> bool:
        """Model and image are both loaded (and their bands match)."""
        return self.has_model and self.has_image and self.band_indices is not None

    @property
    def model_name(self) -> str:
        if not self.has_model:
            return "no model"
        return str(self.card.get("name") or (self.model_path.name if self.model_path else "model"))

    @property
    def device(self) -> str:
        return str(getattr(self.posterior, "device", "cpu")) if self.has_model else "-"

    @property
    def parameter_names(self) -> list[str]:
        return list(self.posterior.parameter_names) if self.has_model else []

    @property
    def units(self) -> dict[str, str]:
        if not self.has_model:
            return {}
        u = self.posterior.units
        if isinstance(u, Mapping):
            return {k: str(v) for k, v in u.items()}
        return dict(zip(self.parameter_names, (str(v) for v in u)))

    @property
    def prior_bounds(self) -> dict[str, tuple[float, float]]:
        if not self.has_model:
            return {}
        b = self.posterior.prior_bounds
        if isinstance(b, Mapping):
            return {k: (float(v[0]), float(v[1])) for k, v in b.items()}
        arr = np.asarray(b, dtype=float).reshape(-1, 2)
        return {n: (float(lo), float(hi)) for n, (lo, hi) in zip(self.parameter_names, arr)}

    @property
    def band_centers_nm(self) -> np.ndarray:
        return np.asarray(self.posterior.band_centers_nm, dtype=float) if self.has_model else np.zeros(0)

    @property
    def wavelengths_nm(self) -> np.ndarray | None:
        """The image's band centres (nm), or None."""
        if self.cube is None or self.cube.wavelengths_nm is None:
            return None
        return np.asarray(self.cube.wavelengths_nm, dtype=float)

    @property
    def shape(self) -> tuple[int, int]:
        if self.image is None:
            return (0, 0)
        return int(self.image.shape[0]), int(self.image.shape[1])

    def _invalidate(self) -> None:
        """A new model or image: old answers are stale, results and region statistics are gone."""
        self._generation += 1
        self._map_generation += 1
        self.maps = None
        self.pixel_result = None
        self.region_stats = []
        self.region_samples = {}

    # ------------------------------------------------------------------ loading
    def load_model(self, name_or_path: str | os.PathLike | None = None, device: str | None = None) -> None:
        """Load a bundle (folder or shipped name; None = the default model).

        Raises:
            ModelBundleError: The bundle is unreadable.
            BandMismatchError: An image is loaded and its bands do not fit the model (state unchanged).
        """
        from tissue_inn.inference.posterior import Posterior
        from tissue_inn.io.bundle import resolve_model

        path = resolve_model(name_or_path)
        posterior = Posterior.from_bundle(path, device=device)
        indices = None
        if self.cube is not None:
            indices = check_bands(self.cube.wavelengths_nm, posterior.band_centers_nm, n_cube_bands=self.cube.shape[2])
        card = getattr(posterior, "card", None)
        if card is None:
            from tissue_inn.io.bundle import read_card

            card = read_card(path)
        self.posterior, self.card, self.model_path, self.band_indices = posterior, dict(card), Path(path), indices
        self._prior_cache.clear()
        self._invalidate()

    def load_image(self, path: str | os.PathLike) -> None:
        """Read a cube (whole, into memory for display) and match its bands to the loaded model.

        Raises:
            DataFileError: Unreadable or corrupt file (state unchanged).
            BandMismatchError: A model is loaded and the image's bands do not fit it (state unchanged).
        """
        cube = read_cube(path)
        h, w, b = cube.shape
        if h == 0 or w == 0 or b == 0:
            raise DataFileError(f"{Path(path).name}: empty image {cube.shape}")
        indices = None
        if self.has_model:
            indices = check_bands(cube.wavelengths_nm, self.posterior.band_centers_nm, n_cube_bands=b)
        try:
            image = np.asarray(cube.tile(0, h, 0, w), dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise DataFileError(f"{Path(path).name}: cannot read the image data ({exc})") from exc
        self.cube, self.image, self.image_path, self.band_indices = cube, image, Path(path), indices
        finite = np.all(np.isfinite(image), axis=2)
        self.valid = finite & np.all(image > 0, axis=2)
        self.regions = {}
        self._region_counter = 0
        self._invalidate()

    # ------------------------------------------------------------------ looking
    def default_rgb_bands(self) -> tuple[int, int, int]:
        """Cube band indices nearest to 620 / 550 / 470 nm (red, green, blue), or the first three bands."""
        b = self.image.shape[2] if self.image is not None else 0
        wl = self.wavelengths_nm
        if wl is None or b < 3:
            return (min(2, b - 1), min(1, b - 1), 0) if b else (0, 0, 0)
        pick = [int(np.argmin(np.abs(wl - t))) for t in (620.0, 550.0, 470.0)]
        return pick[0], pick[1], pick[2]

    def rgb(self, bands: tuple[int, int, int] | None = None) -> np.ndarray:
        """H × W × 3 pseudo-colour image in [0, 1] (percentile stretch per channel)."""
        if self.image is None:
            raise TissueInnError("no image loaded; open an image first")
        bands = bands or self.default_rgb_bands()
        return stretch(self.image[:, :, list(bands)])

    def band(self, k: int) -> np.ndarray:
        """One band of the image (H × W, reflectance)."""
        if self.image is None:
            raise TissueInnError("no image loaded; open an image first")
        return self.image[:, :, int(k)]

    def band_label(self, k: int) -> str:
        wl = self.wavelengths_nm
        return f"band {k}" + (f" ({wl[k]:g} nm)" if wl is not None else "")

    def inside(self, row: int, col: int) -> bool:
        h, w = self.shape
        return 0 <= row < h and 0 <= col < w

    def spectrum(self, row: int, col: int) -> np.ndarray:
        """The image spectrum at a pixel in the image's band order."""
        if not self.inside(row, col):
            raise IndexError(f"pixel ({row}, {col}) is outside the {self.shape[0]} × {self.shape[1]} image")
        return np.asarray(self.image[row, col, :], dtype=np.float64)

    def model_spectrum(self, row: int, col: int) -> np.ndarray:
        """The spectrum at a pixel in the model's band order."""
        if self.band_indices is None:
            raise TissueInnError("load a model and an image whose bands match first")
        return self.spectrum(row, col)[self.band_indices]

    def ground_truth_at(self, row: int, col: int) -> dict[str, float]:
        gt = self.cube.ground_truth if self.cube is not None else None
        out: dict[str, float] = {}
        for name, arr in (gt or {}).items():
            try:
                v = float(np.asarray(arr[row, col]))
            except (IndexError, TypeError, ValueError):
                continue
            if math.isfinite(v):
                out[str(name)] = v
        return out

    # ------------------------------------------------------------------ priors
    def prior_samples(self, n: int = 100_000, seed: int | None = None) -> np.ndarray:
        """``[n, D]`` draws from the model's prior (the card's tissue definition), cached.

        Falls back to uniform draws over finite prior bounds (NaN for an unbounded parameter) when the
        card carries no tissue definition.
        """
        seed = self.seed if seed is None else int(seed)
        key = (int(n), seed)
        if key in self._prior_cache:
            return self._prior_cache[key]
        gen = torch.Generator().manual_seed(seed)
        names = self.parameter_names
        samples = None
        tissue_dict = self.card.get("tissue")
        if tissue_dict:
            from tissue_inn.config import TissueModel

            try:
                tissue = TissueModel.from_dict(tissue_dict, source="model card")
                if list(tissue.parameter_names) == names:
                    samples = tissue.sample_prior(n, gen).double().numpy()
            except (TissueInnError, KeyError, TypeError, ValueError):
                samples = None
        if samples is None:
            samples = np.full((n, len(names)), np.nan)
            u = torch.rand(n, len(names), generator=gen, dtype=torch.float64).numpy()
            for j, name in enumerate(names):
                lo, hi = self.prior_bounds[name]
                if math.isfinite(lo) and math.isfinite(hi):
                    samples[:, j] = lo + (hi - lo) * u[:, j]
        self._prior_cache[key] = samples
        return samples

    def plot_range(self, name: str) -> tuple[float, float]:
        """The x range of a parameter's histogram: prior bounds, or prior quantiles where unbounded."""
        lo, hi = self.prior_bounds[name]
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
        col = self.prior_samples()[:, self.parameter_names.index(name)]
        col = col[np.isfinite(col)]
        if col.size:
            qlo, qhi = np.percentile(col, [0.5, 99.5])
            lo = lo if math.isfinite(lo) else float(qlo)
            hi = hi if math.isfinite(hi) else float(qhi)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            lo, hi = (lo if math.isfinite(lo) else 0.0), (hi if math.isfinite(hi) and hi > lo else lo + 1.0)
        return lo, hi

    # ------------------------------------------------------------------ pixel posteriors
    def request_pixel(self, row: int, col: int) -> PixelRequest:
        """Start a new click: increases the generation (older answers become stale)."""
        if not self.ready:
            raise TissueInnError("load a model and an image whose bands match first")
        y = self.model_spectrum(row, col)
        self._generation += 1
        return PixelRequest(self._generation, int(row), int(col), y, self.n_draws_pixel, self.seed, self.posterior)

    def compute_pixel(self, request: PixelRequest) -> PixelResult:
        """The posterior of one pixel (slow; runs in a worker thread, touches no workspace state)."""
        posterior = request.posterior if request.posterior is not None else self.posterior
        y = np.asarray(request.spectrum, dtype=np.float64)
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise DataFileError(
                f"pixel ({request.row}, {request.col}) has no usable spectrum "
                "(NaN, zero or negative reflectance); click another pixel"
            )
        pixel = posterior.pixel(y, n_draws=request.n_draws, seed=request.seed, predictive_draws=0)
        return PixelResult(request, pixel, self.ground_truth_at(request.row, request.col))

    def is_current(self, generation: int) -> bool:
        return generation == self._generation

    def accept_pixel(self, result: PixelResult) -> bool:
        """Keep ``result`` if it answers the latest request; False (dropped) when stale."""
        if not self.is_current(result.request.generation):
            return False
        self.pixel_result = result
        return True

    def compute_predictive(self, result: PixelResult, n: int = 64) -> Any:
        """Posterior predictive check of a pixel result (forward simulations; slow, runs in a worker)."""
        posterior = result.request.posterior if result.request.posterior is not None else self.posterior
        if not getattr(posterior, "has_forward_model", False):
            return None
        return posterior.predictive(result.request.spectrum, result.samples, n)

    def accept_predictive(self, result: PixelResult, check: Any) -> bool:
        """Attach a predictive check to the current pixel result; False when the click is stale."""
        if self.pixel_result is not result or not self.is_current(result.request.generation):
            return False
        result.predictive = check
        return True

    @staticmethod
    def predictive_quantiles(result: PixelResult | None) -> dict[str, np.ndarray] | None:
        """Posterior predictive band quantiles ``{"q05", "q16", "q50", "q84", "q95"} → [B]`` (model band order),
        or None when there is no predictive check yet."""
        if result is None:
            return None
        check = result.predictive if result.predictive is not None else getattr(result.pixel, "predictive", None)
        if check is None:
            return None
        spectra = np.asarray(getattr(check, "spectra", np.zeros((0, 0))), dtype=float)
        if spectra.ndim == 2 and spectra.shape[0] >= 2:
            q = np.quantile(spectra, [0.05, 0.16, 0.5, 0.84, 0.95], axis=0)
            return dict(zip(("q05", "q16", "q50", "q84", "q95"), q))
        q05, q50, q95 = (np.asarray(getattr(check, f"band_{k}"), dtype=float) for k in ("q05", "q50", "q95"))
        return {"q05": q05, "q16": q05, "q50": q50, "q84": q95, "q95": q95}

    def histograms(
        self, result: PixelResult | None = None, bins: int = 40, samples: np.ndarray | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        """Per parameter: ``edges``, ``posterior`` density, ``prior`` density on the plot range."""
        if samples is None:
            result = result or self.pixel_result
            if result is None:
                raise TissueInnError("no pixel posterior yet; click a pixel first")
            samples = result.samples
        samples = np.asarray(samples).reshape(-1, len(self.parameter_names))
        prior = self.prior_samples()
        out: dict[str, dict[str, np.ndarray]] = {}
        for j, name in enumerate(self.parameter_names):
            lo, hi = self.plot_range(name)
            edges, post = histogram(samples[:, j], lo, hi, bins)
            _, pri = histogram(prior[:, j], lo, hi, bins)
            out[name] = {"edges": edges, "posterior": post, "prior": pri}
        return out

    @staticmethod
    def contraction_label(contraction: float) -> tuple[str, bool]:
        """(text, informed) for a contraction value; informed is False below :data:`CONTRACTION_INFORMED`."""
        if not math.isfinite(contraction):
            return "contraction n/a", False
        informed = contraction >= CONTRACTION_INFORMED
        pct = f"{100 * contraction:.0f} % contracted"
        return (pct if informed else f"≈ prior — not informed by this measurement ({pct})"), informed

    # ------------------------------------------------------------------ maps
    def new_map_job(
        self,
        roi_mask: np.ndarray | None = None,
        n_draws: int | None = None,
        seed: int | None = None,
        predictive: bool = True,
    ) -> MapJob:
        """Describe a map computation (whole image or ``roi_mask``); increases the map generation."""
        if not self.ready:
            raise TissueInnError("load a model and an image whose bands match first")
        if roi_mask is not None:
            roi_mask = np.asarray(roi_mask, dtype=bool)
            if roi_mask.shape != self.shape:
                raise ValueError(f"region mask {roi_mask.shape} does not match the image {self.shape}")
            if not roi_mask.any():
                raise TissueInnError("the region is empty; draw it over the image")
        self._map_generation += 1
        return MapJob(
            self._map_generation,
            roi_mask,
            int(n_draws or self.n_draws_map),
            self.seed if seed is None else int(seed),
            self.posterior,
            self.cube,
            bool(predictive),
        )

    def run_map_job(
        self,
        job: MapJob,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[Progress, None, Any]:
        """The core's ``infer_image`` generator for ``job`` (drive it in a worker)."""
        from tissue_inn.inference.image import infer_image

        return (
            yield from infer_image(
                job.posterior,
                job.cube,
                n_draws=job.n_draws,
                seed=job.seed,
                roi_mask=job.roi_mask,
                should_stop=should_stop,
                predictive="median" if job.predictive else None,
            )
        )

    def accept_maps(self, job: MapJob, result: Any) -> bool:
        """Keep a finished map result unless a newer job, model or image made it stale."""
        if job.generation != self._map_generation or result is None:
            return False
        self.maps = result
        return True

    def map_keys(self) -> list[str]:
        return list(self.maps.maps) if self.maps is not None else []

    def map_parameters(self) -> list[str]:
        """Parameters (plus ``predictive``) present in the maps, in model order."""
        present = {k.split("/", 1)[0] for k in self.map_keys()}
        ordered = [n for n in self.parameter_names if n in present]
        return ordered + sorted(present - set(ordered))

    def map_statistics(self, parameter: str) -> list[str]:
        return [k.split("/", 1)[1] for k in self.map_keys() if k.split("/", 1)[0] == parameter and "/" in k]

    def map_image(self, key: str) -> np.ndarray:
        if self.maps is None or key not in self.maps.maps:
            raise KeyError(f"no map {key!r}; compute maps first")
        return np.asarray(self.maps.maps[key], dtype=np.float32)

    def map_unit(self, key: str) -> str:
        units = getattr(self.maps, "units", None)
        if isinstance(units, Mapping) and key in units:
            return str(units[key])
        parameter, _, statistic = key.partition("/")
        if statistic in VALUE_STATISTICS or statistic in SPREAD_STATISTICS:
            return self.units.get(parameter, "")
        if parameter == "predictive":
            return "reflectance" if "residual" not in statistic else "relative"
        return ""

    def map_range(self, key: str, mode: str = "prior") -> tuple[float, float]:
        """Colour range of a map: ``"prior"`` (fixed, from the prior) or ``"auto"`` (1–99 % of shown pixels)."""
        parameter, _, statistic = key.partition("/")
        if mode == "prior" and parameter in self.prior_bounds:
            if statistic in VALUE_STATISTICS:
                return self.plot_range(parameter)
            if statistic in SPREAD_STATISTICS:
                col = self.prior_samples()[:, self.parameter_names.index(parameter)]
                col = col[np.isfinite(col)]
                if col.size:
                    spread = (
                        float(np.std(col)) if statistic == "std" else float(np.subtract(*np.percentile(col, [75, 25])))
                    )
                    return 0.0, spread if spread > 0 else 1.0
            if statistic in ("multimodality", "contraction"):
                return 0.0, 1.0
        img = self.map_image(key)
        finite = img[np.isfinite(img)]
        if finite.size == 0:
            return 0.0, 1.0
        lo, hi = (float(v) for v in np.percentile(finite, [1, 99]))
        return (lo, hi) if hi > lo else (lo, lo + (abs(lo) * 1e-6 or 1e-6))

    # ------------------------------------------------------------------ regions
    def add_region(self, kind: str, geometry: Mapping[str, Any], name: str | None = None) -> Region:
        """Add a region (mask computed from its geometry); it gets the next free colour."""
        if self.image is None:
            raise TissueInnError("open an image before drawing regions")
        self._region_counter += 1
        name = name or f"R{self._region_counter}"
        color = REGION_COLORS[(self._region_counter - 1) % len(REGION_COLORS)]
        region = Region(name, kind, dict(geometry), region_mask(kind, geometry, self.shape), color)
        self.regions[name] = region
        return region

    def update_region(self, name: str, geometry: Mapping[str, Any]) -> Region:
        region = self.regions[name]
        region.geometry = dict(geometry)
        region.mask = region_mask(region.kind, geometry, self.shape)
        return region

    def remove_region(self, name: str) -> None:
        self.regions.pop(name, None)
        self.region_samples.pop(name, None)
        self.region_stats = [r for r in self.region_stats if r.get("region") != name]

    def compute_regions(
        self,
        names: Sequence[str] | None = None,
        n_draws_per_pixel: int = 64,
        seed: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[Progress, None, tuple[dict[str, np.ndarray], list[dict[str, Any]]]]:
        """Pooled posterior samples and statistics of regions (a generator; drive it in a worker).

        Returns:
            ``(name → pooled samples [M, D], statistics rows)``; pass them to :meth:`accept_regions`.
        """
        from tissue_inn.inference.image import pooled_region, region_statistics

        if not self.ready:
            raise TissueInnError("load a model and an image whose bands match first")
        names = list(self.regions) if names is None else list(names)
        seed = self.seed if seed is None else int(seed)
        posterior, cube, maps = self.posterior, self.cube, self.maps
        regions = [self.regions[n] for n in names]
        pooled: dict[str, np.ndarray] = {}
        rows: list[dict[str, Any]] = []
        for i, region in enumerate(regions):
            if should_stop is not None and should_stop():
                raise Cancelled("region statistics cancelled")
            yield Progress("regions", i, len(regions), f"region {region.name} ({region.n_pixels} px)")
            samples = np.asarray(pooled_region(posterior, cube, region.mask, n_draws_per_pixel, seed))
            if samples.shape[0] == 0:
                continue
            pooled[region.name] = samples
            region_rows = region_statistics(
                posterior, cube, {region.name: region.mask}, n_draws_per_pixel, seed, result=maps
            )
            q16, q84 = np.quantile(samples, [0.16, 0.84], axis=0)  # the 68 % interval shown in the table
            for row, lo, hi in zip(region_rows, q16, q84):
                row["pooled_q16"], row["pooled_q84"] = float(lo), float(hi)
                row["seed"] = seed
            rows.extend(region_rows)
        yield Progress("regions", len(regions), len(regions), "done")
        return pooled, rows

    def accept_regions(self, pooled: Mapping[str, np.ndarray], rows: list[dict[str, Any]]) -> None:
        self.region_samples.update(pooled)
        names = set(pooled)
        self.region_stats = [r for r in self.region_stats if r.get("region") not in names] + list(rows)

    # ------------------------------------------------------------------ export
    def _export_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = dict(getattr(self.maps, "attrs", {}) or {})
        attrs.setdefault("model", self.model_name)
        attrs.setdefault("model_path", str(self.model_path) if self.model_path else "")
        attrs.setdefault("image", str(self.image_path) if self.image_path else "")
        return attrs

    def export_maps(
        self,
        path: str | os.PathLike,
        fmt: str | None = None,
        keys: Sequence[str] | None = None,
        force: bool = False,
        range_mode: str = "prior",
    ) -> list[Path]:
        """Write maps: ``hdf5`` / ``tiff`` (all selected keys in one file) or ``png`` (one file per key).

        For PNG, ``path`` is a file for a single key or a folder / stem for several
        (``<stem>_<parameter>_<statistic>.png``). The format defaults to the path's suffix.
        """
        from tissue_inn.io.maps import write_map_png, write_maps_hdf5, write_maps_tiff

        if self.maps is None:
            raise TissueInnError("no maps yet; compute maps first")
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "hdf5").lower()
        fmt = {"h5": "hdf5", "tif": "tiff"}.get(fmt, fmt)
        keys = list(keys) if keys else self.map_keys()
        maps = {k: self.map_image(k) for k in keys}
        units = {k: self.map_unit(k) for k in keys}
        mask = getattr(self.maps, "mask", None)
        if fmt == "hdf5":
            return [write_maps_hdf5(path, maps, attrs=self._export_attrs(), mask=mask, units=units, force=force)]
        if fmt == "tiff":
            return [write_maps_tiff(path, maps, units=units, force=force, mask=mask, extra=self._export_attrs())]
        if fmt == "png":
            written = []
            single = len(keys) == 1 and path.suffix.lower() == ".png"
            for k in keys:
                target = path if single else self.png_path_for(path, k)
                lo, hi = self.map_range(k, range_mode)
                title = f"{k.replace('/', ' — ')}  ({self.model_name})"
                written.append(
                    write_map_png(
                        target,
                        maps[k],
                        title=title,
                        unit=units[k] or k,
                        vmin=lo,
                        vmax=hi,
                        cmap="viridis",
                        mask=mask,
                        force=force,
                    )
                )
            return written
        raise ValueError(f"map export format {fmt!r} unknown; use hdf5, tiff or png")

    @staticmethod
    def png_path_for(base: str | os.PathLike, key: str) -> Path:
        """Where the PNG of map ``key`` goes for a folder or stem ``base``."""
        base = Path(base)
        safe = key.replace("/", "_")
        if base.is_dir():
            return base / f"{safe}.png"
        stem = base.with_suffix("") if base.suffix.lower() == ".png" else base
        return stem.with_name(f"{stem.name}_{safe}.png")

    def histogram_rows(self, result: PixelResult | None = None, bins: int = 40) -> list[dict[str, Any]]:
        """CSV rows of the shown histograms: one row per parameter and bin."""
        result = result or self.pixel_result
        hists = self.histograms(result, bins)
        rows = []
        units = self.units
        for name, h in hists.items():
            for i in range(bins):
                rows.append(
                    {
                        "pixel_row": result.request.row,
                        "pixel_col": result.request.col,
                        "parameter": name,
                        "unit": units.get(name, ""),
                        "bin_low": float(h["edges"][i]),
                        "bin_high": float(h["edges"][i + 1]),
                        "posterior_density": float(h["posterior"][i]),
                        "prior_density": float(h["prior"][i]),
                    }
                )
        return rows

    def summary_rows(self, result: PixelResult | None = None) -> list[dict[str, Any]]:
        """CSV rows of the per-parameter summaries of a pixel posterior."""
        result = result or self.pixel_result
        if result is None:
            raise TissueInnError("no pixel posterior yet; click a pixel first")
        rows = []
        for name in self.parameter_names:
            s = result.summaries.get(name, {})
            row = {
                "pixel_row": result.request.row,
                "pixel_col": result.request.col,
                "parameter": name,
                "unit": self.units.get(name, ""),
                "n_draws": result.request.n_draws,
                "seed": result.request.seed,
            }
            row.update({k: float(v) for k, v in s.items() if np.ndim(v) == 0})
            if name in result.ground_truth:
                row["ground_truth"] = result.ground_truth[name]
            rows.append(row)
        return rows

    def export_histograms_csv(self, path: str | os.PathLike, force: bool = False, bins: int = 40) -> list[Path]:
        """Write the current histograms (``path``) and the summaries (``<stem>_summary.csv``)."""
        from tissue_inn.io.maps import write_csv

        if self.pixel_result is None:
            raise TissueInnError("no pixel posterior yet; click a pixel first")
        path = Path(path)
        summary = path.with_name(path.stem + "_summary.csv")
        return [
            write_csv(path, self.histogram_rows(bins=bins), force=force),
            write_csv(summary, self.summary_rows(), force=force),
        ]

    def export_region_stats_csv(self, path: str | os.PathLike, force: bool = False) -> Path:
        from tissue_inn.io.maps import write_csv

        if not self.region_stats:
            raise TissueInnError("no region statistics yet; draw a region and compute its statistics")
        return write_csv(path, self.region_stats, force=force)

    # ------------------------------------------------------------------ latent explorer
    def n_latent(self) -> int:
        """Number of latent dimensions of the loaded model's network."""
        est = self._estimator()
        return int(est.net.dim_z) if est.family == "inn" else int(est.net.dim_x)

    def _estimator(self) -> Any:
        est = getattr(self.posterior, "estimator", None)
        if est is None:
            raise ModelBundleError("this model exposes no network (the latent explorer needs one)")
        return est

    def latent_grid(
        self, spectrum: np.ndarray, dim_a: int = 0, dim_b: int | None = 1, extent: float = 3.0, n: int = 41
    ) -> LatentGrid:
        """Run the network backwards on a grid over two latent dimensions (others 0) for one spectrum.

        cinn: ``x = net_to_x(net.forward(z, c, rev=True))`` with ``c = y_to_net(y)`` repeated;
        inn: ``x = net_to_x(net.inverse(y_net, z))``.
        """
        est = self._estimator()
        n_lat = self.n_latent()
        if not 0 <= dim_a < n_lat or (dim_b is not None and not 0 <= dim_b < n_lat):
            raise ValueError(f"latent dimensions must lie in 0..{n_lat - 1}")
        if dim_b == dim_a:
            raise ValueError("choose two different latent dimensions")
        axis = np.linspace(-extent, extent, n)
        if dim_b is None:
            zb, za = np.zeros(1), axis
        else:
            zb, za = axis, axis
        grid_b, grid_a = np.meshgrid(zb, za, indexing="ij")
        m = grid_a.size
        param = next(est.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
        z = torch.zeros(m, n_lat, dtype=torch.float32, device=dev)
        z[:, dim_a] = torch.as_tensor(grid_a.ravel(), dtype=torch.float32, device=dev)
        if dim_b is not None:
            z[:, dim_b] = torch.as_tensor(grid_b.ravel(), dtype=torch.float32, device=dev)
        y = torch.as_tensor(np.asarray(spectrum, dtype=np.float64).reshape(1, -1), device=dev)
        with torch.no_grad():
            c = est.y_to_net(y).repeat(m, 1)
            if est.family == "inn":
                u = est.net.inverse(c, z)
            else:
                u, _ = est.net.forward(z, c, rev=True)
            x = est.net_to_x(u).cpu().numpy()
        values = x.reshape(grid_a.shape + (x.shape[1],))
        return LatentGrid(axis, values, (dim_a, dim_b), n_lat)

"""The application state: one model, one image, their results and regions — and the generation
counters that make late answers harmless.

Staleness: every pixel request and every map job carries a *generation* number. A later click (or a
new model / image) increases it, and :meth:`Workspace.accept_pixel` / :meth:`Workspace.accept_maps`
drop answers that belong to an older generation.

:class:`Workspace` is a thin facade: it holds the state and delegates the work to the small modules
of this package (``models``, ``images``, ``pixel``, ``display``; maps, regions, export and the latent
grid through :class:`~tissue_inn.workspace.results.WorkspaceResults`), each of which is tested on its own;
:class:`Generation` lives in :mod:`~tissue_inn.workspace.generation` and is re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tissue_inn.errors import TissueInnError
from tissue_inn.workspace import display, pixel
from tissue_inn.workspace.compare import Pins, check_comparable, compare_request
from tissue_inn.workspace.generation import Generation
from tissue_inn.workspace.images import LoadedImage, load_image, match_bands
from tissue_inn.workspace.labels import ParameterLabel, labels_from_card
from tissue_inn.workspace.models import LoadedModel, load_model
from tissue_inn.workspace.pixel import PixelRequest, PixelResult
from tissue_inn.workspace.regions import Region
from tissue_inn.workspace.results import NOT_READY, WorkspaceResults
from tissue_inn.workspace.snr import snr_warning

if TYPE_CHECKING:
    from tissue_inn.inference.image import MapResult
    from tissue_inn.inference.posterior import Posterior, PredictiveCheck
    from tissue_inn.io.cube import Cube

__all__ = ["Generation", "Workspace"]




class Workspace(WorkspaceResults):
    """The application state: a model, an image, results and regions.

    Args:
        n_draws_pixel: Posterior draws per clicked pixel.
        n_draws_map: Posterior draws per pixel for maps.
        seed: Base seed of every random process started from here (recorded with the results).

    >>> ws = Workspace(seed=1)
    >>> ws.has_model, ws.has_image, ws.ready, ws.model_name
    (False, False, False, 'no model')
    """

    def __init__(self, n_draws_pixel: int = 4096, n_draws_map: int = 500, seed: int = 0) -> None:
        self.n_draws_pixel = int(n_draws_pixel)
        self.n_draws_map = int(n_draws_map)
        self.seed = int(seed)
        self.model: LoadedModel | None = None
        self.loaded_image: LoadedImage | None = None
        self.band_indices: np.ndarray | None = None  # cube band for each model band
        self.maps: MapResult | None = None
        self.regions: dict[str, Region] = {}
        self.pixel_result: PixelResult | None = None
        self.region_stats: list[dict[str, Any]] = []
        self.region_samples: dict[str, np.ndarray] = {}
        self.pixel_generation = Generation()
        self.map_generation = Generation()
        self._region_counter = 0
        self.maps_saved = False
        #: The measurement's SNR set by the user (None: the model's nominal); kept across images and models.
        self.snr: float | None = None
        self.pins = Pins()
        self.compare_model: LoadedModel | None = None
        self.compare_result: PixelResult | None = None
        #: Keep regions when the next image has the same size (False: start each image afresh).
        self.carry_regions = True

    # ------------------------------------------------------------------ state
    @property
    def generation(self) -> int:
        """The current pixel-request generation (answers of older generations are stale)."""
        return self.pixel_generation.value

    @property
    def has_model(self) -> bool:
        return self.model is not None

    @property
    def has_image(self) -> bool:
        return self.loaded_image is not None

    @property
    def ready(self) -> bool:
        """Model and image are both loaded (and their bands match)."""
        return self.has_model and self.has_image and self.band_indices is not None

    @property
    def posterior(self) -> Posterior | None:
        return self.model.posterior if self.model is not None else None

    @property
    def card(self) -> dict[str, Any]:
        return self.model.card if self.model is not None else {}

    @property
    def model_path(self) -> Path | None:
        return self.model.path if self.model is not None else None

    @property
    def model_name(self) -> str:
        return self.model.name if self.model is not None else "no model"

    @property
    def device(self) -> str:
        return self.model.posterior.device if self.model is not None else "-"

    @property
    def parameter_names(self) -> list[str]:
        return self.model.parameter_names if self.model is not None else []

    @property
    def units(self) -> dict[str, str]:
        return self.model.units if self.model is not None else {}

    @property
    def labels(self) -> dict[str, ParameterLabel]:
        """Clinical name, display unit and scale of every parameter (:mod:`tissue_inn.workspace.labels`)."""
        tissue = self.model.posterior.tissue if self.model is not None else None
        return labels_from_card(self.parameter_names, self.units, self.card, tissue.parameters if tissue else ())

    @property
    def prior_bounds(self) -> dict[str, tuple[float, float]]:
        return self.model.prior_bounds if self.model is not None else {}

    @property
    def band_centers_nm(self) -> np.ndarray:
        return self.model.band_centers_nm if self.model is not None else np.zeros(0)

    @property
    def cube(self) -> Cube | None:
        return self.loaded_image.cube if self.loaded_image is not None else None

    @property
    def image(self) -> np.ndarray | None:
        """``H × W × B`` (cube band order), float32, in memory."""
        return self.loaded_image.data if self.loaded_image is not None else None

    @property
    def image_path(self) -> Path | None:
        return self.loaded_image.path if self.loaded_image is not None else None

    @property
    def valid(self) -> np.ndarray | None:
        return self.loaded_image.valid if self.loaded_image is not None else None

    @property
    def wavelengths_nm(self) -> np.ndarray | None:
        """The image's band centres (nm), or None."""
        return self.loaded_image.wavelengths_nm if self.loaded_image is not None else None

    @property
    def shape(self) -> tuple[int, int]:
        return self.loaded_image.shape if self.loaded_image is not None else (0, 0)

    def _invalidate(self) -> None:
        """A new model or image: old answers are stale, results and region statistics are gone."""
        self.pixel_generation.next()
        self.map_generation.next()
        self.maps = None
        self.pixel_result = None
        self.region_stats = []
        self.region_samples = {}
        self.pins.clear()
        self.compare_result = None

    @property
    def has_unsaved_maps(self) -> bool:
        """Maps were computed and not exported since (a new model or image would discard them)."""
        return self.maps is not None and not self.maps_saved

    # ------------------------------------------------------------------ loading
    def load_model(self, name_or_path: str | os.PathLike | None = None, device: str | None = None) -> None:
        """Load a bundle (folder or shipped name; None = the default model).

        Raises:
            ModelBundleError: The bundle is unreadable.
            BandMismatchError: An image is loaded and its bands do not fit the model (state unchanged).
        """
        self.set_model(load_model(name_or_path, device=device))

    def set_model(self, model: LoadedModel) -> None:
        """Use a model read elsewhere (e.g. in a worker thread); same checks as :meth:`load_model`."""
        indices = None
        if self.loaded_image is not None:
            indices = match_bands(self.loaded_image, model)
        self.model, self.band_indices = model, indices
        if self.compare_model is not None:
            try:
                check_comparable(model, self.compare_model)
            except TissueInnError:
                self.compare_model = None
        self._invalidate()

    def load_image(
        self, path: str | os.PathLike, white: str | os.PathLike | None = None, dark: str | os.PathLike | None = None
    ) -> None:
        """Read a cube (whole, into memory for display) and match its bands to the loaded model.

        Raises:
            DataFileError: Unreadable or corrupt file (state unchanged).
            BandMismatchError: A model is loaded and the image's bands do not fit it (state unchanged).
        """
        self.set_image(load_image(path, white=white, dark=dark))

    def set_image(self, loaded: LoadedImage) -> None:
        """Use an image read elsewhere (e.g. in a worker thread); same checks as :meth:`load_image`."""
        indices = None
        if self.model is not None:
            indices = match_bands(loaded, self.model)
        keep = self._carry_regions(loaded.shape)
        self.loaded_image, self.band_indices = loaded, indices
        self.regions = keep
        if not keep:
            self._region_counter = 0
        self._invalidate()

    def _carry_regions(self, shape: tuple[int, int]) -> dict[str, Region]:
        """Regions carried over to the next image of the same size (clicking through a study)."""
        if self.loaded_image is None or self.loaded_image.shape != shape or not self.carry_regions:
            return {}
        return dict(self.regions)

    # ------------------------------------------------------------------ looking
    def default_rgb_bands(self) -> tuple[int, int, int]:
        """Cube band indices nearest to 620 / 550 / 470 nm (red, green, blue), or the first three bands."""
        n = self.loaded_image.n_bands if self.loaded_image is not None else 0
        return display.default_rgb_bands(self.wavelengths_nm, n)

    def rgb(self, bands: tuple[int, int, int] | None = None) -> np.ndarray:
        """H × W × 3 pseudo-colour image in [0, 1] (percentile stretch per channel)."""
        img = self._image()
        return display.stretch(img[:, :, list(bands or self.default_rgb_bands())])

    def band(self, k: int) -> np.ndarray:
        """One band of the image (H × W, reflectance)."""
        return self._image()[:, :, int(k)]

    def _image(self) -> np.ndarray:
        if self.loaded_image is None:
            raise TissueInnError("no image loaded; open an image first")
        return self.loaded_image.data

    def band_label(self, k: int) -> str:
        return display.band_label(k, self.wavelengths_nm)

    def band_short_label(self, k: int) -> str:
        return display.band_short_label(k, self.wavelengths_nm)

    def inside(self, row: int, col: int) -> bool:
        return self.loaded_image is not None and self.loaded_image.inside(row, col)

    def spectrum(self, row: int, col: int) -> np.ndarray:
        """The image spectrum at a pixel in the image's band order."""
        if not self.inside(row, col):
            raise IndexError(f"pixel ({row}, {col}) is outside the {self.shape[0]} × {self.shape[1]} image")
        return np.asarray(self._image()[row, col, :], dtype=np.float64)

    def model_spectrum(self, row: int, col: int) -> np.ndarray:
        """The spectrum at a pixel in the model's band order."""
        if self.band_indices is None:
            raise TissueInnError(NOT_READY)
        return self.spectrum(row, col)[self.band_indices]

    def mask_reason(self, row: int, col: int) -> str | None:
        """Why a pixel cannot be analysed (plain words), or None when it can."""
        return self.loaded_image.mask_reason(row, col) if self.inside(row, col) else "outside the image"

    def ground_truth_at(self, row: int, col: int) -> dict[str, float]:
        return self.loaded_image.ground_truth_at(row, col) if self.loaded_image is not None else {}

    # ------------------------------------------------------------------ priors
    def prior_samples(self, n: int = 100_000, seed: int | None = None) -> np.ndarray:
        """``[n, D]`` draws from the model's prior (its tissue definition), cached."""
        if self.model is None:
            raise TissueInnError("load a model first")
        return self.model.prior_samples(n, self.seed if seed is None else int(seed))

    def plot_range(self, name: str) -> tuple[float, float]:
        """The x range of a parameter's histogram: prior bounds, or prior quantiles where unbounded."""
        bounds = self.prior_bounds[name]
        if all(np.isfinite(bounds)):
            return display.plot_range(bounds)
        return display.plot_range(bounds, self.prior_samples()[:, self.parameter_names.index(name)])

    def plot_ranges(self) -> dict[str, tuple[float, float]]:
        return {n: self.plot_range(n) for n in self.parameter_names}

    # ------------------------------------------------------------------ pixel posteriors
    def request_pixel(self, row: int, col: int) -> PixelRequest:
        """Start a new click: increases the generation (older answers become stale)."""
        if not self.ready or self.model is None:
            raise TissueInnError(NOT_READY)
        y = self.model_spectrum(row, col)
        gen = self.pixel_generation.next()
        return PixelRequest(
            gen, int(row), int(col), y, self.n_draws_pixel, self.seed, self.model.posterior,
            self.ground_truth_at(row, col), self.snr,
        )

    @property
    def nominal_snr(self) -> float | None:
        """The SNR the model assumes when none is set."""
        return self.model.posterior.nominal_snr if self.model is not None else None

    def set_snr(self, snr: float | None) -> str | None:
        """Set the measurement's SNR (None: the model's nominal); returns a warning when outside the trained range."""
        if snr is not None and not (np.isfinite(snr) and snr > 0):
            raise TissueInnError(f"the SNR must be a positive number, got {snr}")
        self.snr = None if snr is None else float(snr)
        return snr_warning(self.snr, self.card, self.model_name) if self.model is not None else None

    def compute_pixel(self, request: PixelRequest) -> PixelResult:
        """The posterior of one pixel (slow; runs in a worker thread, touches no workspace state)."""
        return pixel.compute_pixel(request)

    def is_current(self, generation: int) -> bool:
        return self.pixel_generation.is_current(generation)

    def accept_pixel(self, result: PixelResult) -> bool:
        """Keep ``result`` if it answers the latest request; False (dropped) when stale."""
        if not self.is_current(result.request.generation):
            return False
        self.pixel_result = result
        return True

    def compute_predictive(self, result: PixelResult, n: int = 64) -> PredictiveCheck | None:
        """Posterior predictive check of a pixel result (forward simulations; slow, runs in a worker)."""
        return pixel.compute_predictive(result, n)

    def accept_predictive(self, result: PixelResult, check: PredictiveCheck) -> bool:
        """Attach a predictive check to the current pixel result; False when the click is stale."""
        if self.pixel_result is not result or not self.is_current(result.request.generation):
            return False
        result.predictive = check
        return True

    def pin_current(self) -> None:
        """Pin the current pixel's posterior (overlaid in its own colour on later clicks)."""
        if self.pixel_result is None:
            raise TissueInnError("click a pixel first, then pin it")
        self.pins.add(self.pixel_result)

    def set_compare_model(self, model: LoadedModel | None) -> None:
        """A second model that answers every click too (None: stop comparing)."""
        if model is not None and self.model is not None:
            check_comparable(self.model, model)
        self.compare_model, self.compare_result = model, None

    def compare_request(self, request: PixelRequest) -> PixelRequest | None:
        """The click for the second model, or None when no model is compared."""
        return compare_request(request, self.compare_model) if self.compare_model is not None else None

    def accept_compare(self, result: PixelResult) -> bool:
        """Keep the second model's answer if it belongs to the latest click."""
        if not self.is_current(result.request.generation):
            return False
        self.compare_result = result
        return True

    predictive_quantiles = staticmethod(pixel.predictive_quantiles)
    contraction_label = staticmethod(pixel.contraction_label)

    def histograms(
        self, result: PixelResult | None = None, bins: int = 40, samples: np.ndarray | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        """Per parameter: ``edges``, ``posterior`` density, ``prior`` density on the plot range."""
        if samples is None:
            result = result or self.pixel_result
            if result is None:
                raise TissueInnError("no pixel posterior yet; click a pixel first")
            samples = result.samples
        if self.model is None:
            raise TissueInnError("load a model first")
        model, seed = self.model, self.seed
        return pixel.histograms(
            samples, self.parameter_names, self.plot_ranges(), lambda j, lo, hi, b: model.prior_density(j, lo, hi, b, seed),
            bins,
        )

    def value_texts(self, result: PixelResult | None = None) -> dict[str, str]:
        """``name → "StO2 38 % [30–46 %]"`` for the current (or given) pixel result."""
        result = result or self.pixel_result
        return pixel.value_texts(result.summaries, self.labels) if result is not None else {}

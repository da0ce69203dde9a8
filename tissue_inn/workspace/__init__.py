"""The Qt-free application layer: everything the desktop application does that is not drawing.

The GUI (:mod:`tissue_inn.gui`) draws what the workspace holds and runs its slow operations in
worker threads; it imports nothing else of tissue_inn's core (an import-linter contract checks it).
Each module is one concept and is tested without Qt:

- :mod:`~tissue_inn.workspace.state` — :class:`Workspace` (the state) and :class:`Generation` counters
- :mod:`~tissue_inn.workspace.results` — the results half of :class:`Workspace` (maps, regions, exports)
- :mod:`~tissue_inn.workspace.models` — loading a bundle, priors, the card summary
- :mod:`~tissue_inn.workspace.images` — loading an image, band matching, usable pixels and reasons
- :mod:`~tissue_inn.workspace.browse` — images of a folder, recent files, references per folder
- :mod:`~tissue_inn.workspace.pixel` — a click: request, result, predictive band, readable values
- :mod:`~tissue_inn.workspace.compare` — pinned pixels and a second model on the same click
- :mod:`~tissue_inn.workspace.snr` — the measurement's SNR as set or estimated, with its range warning
- :mod:`~tissue_inn.workspace.maps`, :mod:`~tissue_inn.workspace.regions`, :mod:`~tissue_inn.workspace.export`
- :mod:`~tissue_inn.workspace.display` — stretch, pseudo-RGB bands, histograms, plot ranges
- :mod:`~tissue_inn.workspace.labels` — clinical names, display units and scales
- :mod:`~tissue_inn.workspace.trust` — the calibration badge and the model card in plain language
- :mod:`~tissue_inn.workspace.latent` — the latent explorer's grid
- :mod:`~tissue_inn.workspace.new_model` — Model ▸ New model…: request, cost, resume, progress and ETA
- :mod:`~tissue_inn.workspace.generation` — the counters that make late answers harmless

Notation: an image pixel is addressed ``(row, col)``; spectra are in the *model's* band order
(the cube's bands are matched once, when model and image meet).
"""

from tissue_inn.errors import BandMismatchError, Cancelled, DataFileError, ModelBundleError, TissueInnError
from tissue_inn.workspace.browse import folder_images, push_recent, step_image
from tissue_inn.workspace.display import histogram, parameter_groups, stretch
from tissue_inn.workspace.images import band_mismatch_message, check_bands
from tissue_inn.workspace.labels import ParameterLabel, label_for, pretty_unit
from tissue_inn.workspace.latent import LatentGrid
from tissue_inn.workspace.maps import MapJob
from tissue_inn.workspace.pixel import CONTRACTION_INFORMED, PixelRequest, PixelResult
from tissue_inn.workspace.regions import REGION_COLORS, Region, region_mask
from tissue_inn.workspace.state import Generation, Workspace

__all__ = [
    "CONTRACTION_INFORMED",
    "REGION_COLORS",
    "BandMismatchError",
    "Cancelled",
    "DataFileError",
    "Generation",
    "LatentGrid",
    "MapJob",
    "ModelBundleError",
    "ParameterLabel",
    "PixelRequest",
    "PixelResult",
    "Region",
    "TissueInnError",
    "Workspace",
    "band_mismatch_message",
    "check_bands",
    "folder_images",
    "histogram",
    "label_for",
    "parameter_groups",
    "pretty_unit",
    "push_recent",
    "region_mask",
    "step_image",
    "stretch",
]

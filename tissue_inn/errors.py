"""User-facing errors. Each message names the problem and says what to do about it."""

__all__ = [
    "TissueInnError",
    "ConfigError",
    "DataFileError",
    "BandMismatchError",
    "MeasurementError",
    "NoUsablePixelsError",
    "SnrError",
    "ModelBundleError",
    "OutputExistsError",
    "Cancelled",
]


class TissueInnError(Exception):
    """Base class of every error the CLI/GUI reports as a one-line message."""


class ConfigError(TissueInnError, ValueError):
    """A tissue, camera or settings definition is malformed."""


class DataFileError(TissueInnError, ValueError):
    """An input data file (dataset, cube, reference frame) is unreadable or inconsistent."""


class BandMismatchError(TissueInnError, ValueError):
    """A measurement's bands do not match the model's bands."""


class MeasurementError(TissueInnError, ValueError):
    """A measured spectrum cannot be given to the network (NaN, ≤ 0, above 1, wrong band count)."""


class NoUsablePixelsError(DataFileError):
    """Every pixel of an image is unusable (NaN, ≤ 0, saturated, above 1): nothing to analyse.

    ``counts`` maps each reason (``"nan"``, ``"non_positive"``, ``"saturated"``, ``"above_max"``) to
    its number of pixels.
    """

    def __init__(self, message: str, counts: dict[str, int] | None = None):
        super().__init__(message)
        self.counts = dict(counts or {})


class SnrError(TissueInnError, ValueError):
    """A noise level (SNR) given by the user or read from a file is unusable (not a number, ≤ 0, wrong shape)."""


class ModelBundleError(TissueInnError, ValueError):
    """A model bundle is missing files, malformed, or its weights do not match its card."""


class OutputExistsError(TissueInnError, FileExistsError):
    """The output exists and ``force`` was not given."""


class Cancelled(TissueInnError):
    """Long work stopped on request (``should_stop`` returned True)."""

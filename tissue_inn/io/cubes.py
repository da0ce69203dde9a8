"""Reading multispectral measurement cubes (HDF5, NumPy, TIFF, ENVI) and preparing them for inference.

Every reader returns a :class:`Cube` whose ``data`` has layout H × W × B (rows, columns, bands) and
yields float32. Large files are never read whole: ``data`` is a :class:`LazyCube` that reads the
requested rows/columns on slicing, and :meth:`Cube.iter_tiles` walks the image in row strips.

White/dark references turn raw counts into reflectance, ``(raw − dark) / (white − dark)``;
:func:`match_bands` maps a model's bands onto the cube's bands and :func:`valid_mask` flags pixels
that must never reach a network (NaN/inf, non-positive, saturated, above the maximum reflectance).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.data.dataset import file_sha256
from tissue_inn.errors import BandMismatchError, DataFileError

__all__ = [
    "Cube",
    "LazyCube",
    "read_cube",
    "to_reflectance",
    "match_bands",
    "valid_mask",
    "SUPPORTED_SUFFIXES",
]

SUPPORTED_SUFFIXES = {
    "hdf5": (".h5", ".hdf5", ".hdf", ".he5"),
    "npy": (".npy",),
    "tiff": (".tif", ".tiff"),
    "envi": (".hdr", ".raw", ".img", ".dat", ".bil", ".bip", ".bsq"),
}
_SUPPORTED_TEXT = "HDF5 (.h5/.hdf5), NumPy (.npy), TIFF (.tif/.tiff), ENVI (.hdr + raw)"

_WAVELENGTH_KEYS = ("wavelengths_nm", "wavelength_nm", "wavelengths", "wavelength", "band_centers_nm", "wavelengths_um")
_PREFERRED_DATASETS = ("reflectance", "cube")
_NM_UNITS = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_UM_UNITS = {"um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns"}
_UNKNOWN_UNITS = {"", "unknown", "none"}
# Wavelengths below this value without explicit units are taken to be micrometres (visible/NIR
# imaging spans roughly 0.35–2.5 µm, i.e. 350–2500 nm; no band centre in nm is below 30).
_UM_HEURISTIC_MAX = 30.0
_REASONS = ("nan", "non_positive", "saturated", "above_max")


# ----------------------------------------------------------------------------------------------
# lazy array


class LazyCube:
    """Array-like H × W × B view of a file that reads only the requested rows/columns.

    Slicing returns float32 NumPy arrays, e.g. ``lazy[r0:r1, c0:c1, :]``. Rows and columns accept
    ints and slices (steps allowed); the band index accepts anything NumPy accepts.

    Args:
        shape: (H, W, B).
        reader: ``reader(r0, r1, c0, c1) -> ndarray[r1 - r0, c1 - c0, B]`` (any numeric dtype).
        description: Short text for ``repr`` and error messages (e.g. the file name).
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, shape: tuple[int, int, int], reader: Callable[[int, int, int, int], np.ndarray], description=""):
        self.shape = tuple(int(s) for s in shape)
        self._reader = reader
        self.description = description

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyCube(shape={self.shape}, source={self.description!r})"

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Read the block rows ``r0:r1``, columns ``c0:c1`` (all bands) as float32."""
        h, w, b = self.shape
        if not (0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w):
            raise IndexError(f"block rows {r0}:{r1}, columns {c0}:{c1} is outside the {h} × {w} image")
        if r0 == r1 or c0 == c1:
            return np.zeros((r1 - r0, c1 - c0, b), dtype=np.float32)
        out = np.asarray(self._reader(r0, r1, c0, c1))
        if out.shape != (r1 - r0, c1 - c0, b):
            raise DataFileError(
                f"{self.description}: reading rows {r0}:{r1}, columns {c0}:{c1} gave shape {out.shape}, "
                f"expected {(r1 - r0, c1 - c0, b)} (file changed or corrupt?)"
            )
        return np.ascontiguousarray(out, dtype=np.float32)

    @staticmethod
    def _axis_index(key: Any, n: int) -> tuple[int, int, Any]:
        """Bounding range [lo, hi) of an int/slice key and the index to apply inside that range."""
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            idx = range(start, stop, step)
            if len(idx) == 0:
                return 0, 0, slice(None)
            lo, hi = min(idx[0], idx[-1]), max(idx[0], idx[-1]) + 1
            # the block holds exactly lo..hi-1 and the range runs from one end to the other
            return lo, hi, slice(0 if step > 0 else hi - lo - 1, None, step)
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {key} is out of range for size {n}")
            return i, i + 1, 0
        raise TypeError("LazyCube rows/columns accept ints and slices only; read a block and index it in NumPy")

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3:
            raise IndexError(f"too many indices for a 3-D cube: {len(key)}")
        r0, r1, rloc = self._axis_index(key[0], self.shape[0])
        c0, c1, cloc = self._axis_index(key[1], self.shape[1])
        block = self.read(r0, r1, c0, c1)
        return block[rloc, cloc, key[2]]

    def __array__(self, dtype=None, copy=None):
        arr = self.read(0, self.shape[0], 0, self.shape[1])
        return arr if dtype is None else arr.astype(dtype, copy=False)


# ----------------------------------------------------------------------------------------------
# Cube


@dataclass
class Cube:
    """A multispectral measurement, H × W × B.

    Attributes:
        data: ``np.ndarray`` or :class:`LazyCube` (H × W × B); slicing yields reflectance (after the
            white/dark references, if any were given).
        wavelengths_nm: Band centres in nm (length B) or None when the file carries none.
        source_path: The file read (for ENVI: the binary image file; the header is in ``metadata``).
        metadata: Format, dataset path, dtype, wavelength source, reference details, ``warnings`` (list).
        ground_truth: Optional name → H × W array (HDF5 group ``ground_truth``).
        saturation: Raw-count saturation level (pixels with raw ≥ this are invalid), or None.
        raw: Raw (pre-reference) array-like when references were applied, else None.
    """

    data: Any
    wavelengths_nm: np.ndarray | None = None
    source_path: Path | None = None
    metadata: dict = field(default_factory=dict)
    ground_truth: dict[str, np.ndarray] | None = None
    saturation: float | None = None
    raw: Any = None
    _convert: Callable[[np.ndarray, int, int, int, int], np.ndarray] | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.data.shape) != 3:
            raise DataFileError(f"cube has {len(self.data.shape)} dimensions, expected H × W × bands")
        if self.wavelengths_nm is not None:
            self.wavelengths_nm = np.asarray(self.wavelengths_nm, dtype=np.float64).reshape(-1)
            if self.wavelengths_nm.size != self.shape[2]:
                raise DataFileError(
                    f"{self._name()}: {self.wavelengths_nm.size} wavelengths given for {self.shape[2]} bands"
                )
        if self.source_path is not None:
            self.source_path = Path(self.source_path)
        self.metadata.setdefault("warnings", [])

    def _name(self) -> str:
        return self.source_path.name if self.source_path is not None else "cube"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, B)."""
        return tuple(int(s) for s in self.data.shape)

    @property
    def source_sha256(self) -> str | None:
        """SHA-256 hex digest of ``source_path`` (streamed in 1 MiB chunks, computed once)."""
        if self._sha256 is None and self.source_path is not None:
            try:
                self._sha256 = file_sha256(self.source_path)
            except OSError as exc:
                raise DataFileError(f"{self.source_path}: cannot read for checksum: {exc.strerror}") from exc
        return self._sha256

    def tile(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows ``r0:r1`` and columns ``c0:c1`` (all bands) as a float32 array."""
        h, w, _ = self.shape
        if not (0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w):
            raise IndexError(f"tile rows {r0}:{r1}, columns {c0}:{c1} is outside the {h} × {w} image")
        return np.ascontiguousarray(self.data[r0:r1, c0:c1, :], dtype=np.float32)

    def iter_tiles(self, tile_rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(r0, r1, tile)`` row strips of ``tile_rows`` rows over the full width."""
        if tile_rows < 1:
            raise ValueError("tile_rows must be ≥ 1")
        h, w, _ = self.shape
        for r0 in range(0, h, tile_rows):
            r1 = min(h, r0 + tile_rows)
            yield r0, r1, self.tile(r0, r1, 0, w)

    def valid_tile(
        self, r0: int, r1: int, c0: int, c1: int, r_min: float | None = 1e-5, r_max: float | None = 1.0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Read a tile and its validity mask, checking saturation on the raw counts.

        Returns:
            ``(tile float32 [h, w, B], mask bool [h, w] (True = usable), reasons)`` as :func:`valid_mask`.
        """
        if self.saturation is not None and self.raw is not None and self._convert is not None:
            h, w, _ = self.shape
            if not (0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w):
                raise IndexError(f"tile rows {r0}:{r1}, columns {c0}:{c1} is outside the {h} × {w} image")
            raw = np.asarray(self.raw[r0:r1, c0:c1, :], dtype=np.float32)
            tile = self._convert(raw, r0, r1, c0, c1)
        else:
            tile = self.tile(r0, r1, c0, c1)
            raw = None
        mask, reasons = valid_mask(tile, r_min=r_min, r_max=r_max, saturation=self.saturation, raw=raw)
        return tile, mask, reasons


# ----------------------------------------------------------------------------------------------
# helpers


def _warn(metadata: dict, message: str) -> None:
    metadata.setdefault("warnings", []).append(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _jsonable(value: Any) -> Any:
    """Attribute values as plain Python (for ``Cube.metadata``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()] if value.size <= 4096 else f"<array {value.shape}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _wavelength_scale(units: str | None, values: np.ndarray, where: str, metadata: dict) -> float:
    """Factor converting ``values`` in ``units`` to nm."""
    u = (units or "").strip().lower()
    if u in _NM_UNITS:
        return 1.0
    if u in _UM_UNITS:
        return 1000.0
    if u not in _UNKNOWN_UNITS:
        raise DataFileError(f"{where}: unrecognised wavelength units {units!r}; pass wavelengths_nm explicitly")
    if values.size and np.nanmax(values) < _UM_HEURISTIC_MAX:
        _warn(metadata, f"{where}: wavelengths without units and all < {_UM_HEURISTIC_MAX:g}; taken as µm")
        return 1000.0
    return 1.0


def _parse_wavelength_values(raw: Any, where: str) -> np.ndarray:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = raw.replace(",", " ").replace("{", " ").replace("}", " ").split()
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{where}: wavelengths are not numbers ({exc}); pass wavelengths_nm explicitly") from exc
    if not np.all(np.isfinite(arr)):
        raise DataFileError(f"{where}: wavelengths contain NaN/inf; pass wavelengths_nm explicitly")
    return arr


def _read_sidecar_wavelengths(path: Path) -> tuple[Any, str | None, Path] | None:
    """``<stem>.wavelengths.txt/json`` (or ``<name>.wavelengths.*``) beside ``path``."""
    for base in (path.with_suffix(""), path):
        for ext in (".json", ".txt"):
            cand = base.with_name(base.name + ".wavelengths" + ext)
            if cand.is_file():
                text = cand.read_text(encoding="utf-8")
                if ext == ".json":
                    try:
                        obj = json.loads(text)
                    except json.JSONDecodeError as exc:
                        raise DataFileError(f"{cand}: invalid JSON ({exc.msg}, line {exc.lineno})") from exc
                    units = None
                    if isinstance(obj, dict):
                        units = obj.get("units") or obj.get("wavelength_units")
                        for key in _WAVELENGTH_KEYS:
                            if key in obj:
                                if key.endswith("_um"):
                                    units = "um"
                                elif key.endswith("_nm"):
                                    units = "nm"
                                return obj[key], units, cand
                        raise DataFileError(f"{cand}: no 'wavelengths_nm' entry")
                    return obj, units, cand
                lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
                return " ".join(lines), None, cand
    return None


def _units_from_key(key: str, explicit: Any) -> str | None:
    if explicit is not None:
        return explicit.decode() if isinstance(explicit, bytes) else str(explicit)
    if key.endswith("_nm"):
        return "nm"
    if key.endswith("_um"):
        return "um"
    return None


def _sniff_format(path: Path) -> str:
    suffix = path.suffix.lower()
    for fmt, suffixes in SUPPORTED_SUFFIXES.items():
        if suffix in suffixes:
            if fmt == "envi" and suffix != ".hdr" and not _envi_header_for(path):
                break
            return fmt
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror}") from exc
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if _envi_header_for(path):
        return "envi"
    raise DataFileError(
        f"{path.name}: unsupported file type {path.suffix or '(no suffix)'}; supported: {_SUPPORTED_TEXT}"
    )


def _envi_header_for(path: Path) -> Path | None:
    for cand in (Path(str(path) + ".hdr"), path.with_suffix(".hdr"), path.with_suffix(".HDR")):
        if cand.is_file() and cand != path:
            return cand
    return None


# ----------------------------------------------------------------------------------------------
# format readers: each returns (lazy, file_wavelengths | None, units | None, wavelength source, metadata,
#                                ground_truth, source_path)


def _read_hdf5(path: Path, dataset: str | None):
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(f"{path.name}: not an HDF5 file (truncated or corrupt?): {exc}") from exc
    with fh:
        if dataset is not None:
            if dataset not in fh:
                raise DataFileError(f"{path.name}: no dataset {dataset!r}; available: {_h5_datasets(fh)}")
            obj = fh[dataset]
            if not isinstance(obj, h5py.Dataset):
                raise DataFileError(
                    f"{path.name}: {dataset!r} is a group, not a dataset; available: {_h5_datasets(fh)}"
                )
            ds = obj
        else:
            cands = [
                n for n, s in _h5_datasets(fh, with_shapes=True) if len(s) == 3 and not n.startswith("ground_truth/")
            ]
            if not cands:
                raise DataFileError(f"{path.name}: no 3-D dataset (H × W × bands) found; datasets: {_h5_datasets(fh)}")
            preferred = [n for n in cands if n.rsplit("/", 1)[-1].lower() in _PREFERRED_DATASETS]
            if len(cands) == 1:
                name = cands[0]
            elif len(preferred) == 1:
                name = preferred[0]
            else:
                raise DataFileError(f"{path.name}: several 3-D datasets {cands}; choose one with dataset=")
            ds = fh[name]
        if ds.ndim != 3:
            raise DataFileError(f"{path.name}:{ds.name}: cube has {ds.ndim} dimensions, expected H × W × bands")
        if not (np.issubdtype(ds.dtype, np.number) or ds.dtype == np.bool_):
            raise DataFileError(f"{path.name}:{ds.name}: data type {ds.dtype} is not numeric")
        ds_name = ds.name
        shape = ds.shape
        metadata: dict = {"format": "hdf5", "dataset": ds_name, "dtype": str(ds.dtype)}
        metadata["attrs"] = {k: _jsonable(v) for k, v in ds.attrs.items() if k not in _WAVELENGTH_KEYS}
        metadata["file_attrs"] = {k: _jsonable(v) for k, v in fh.attrs.items() if k not in _WAVELENGTH_KEYS}

        # wavelengths: dataset attribute, file attribute, sibling dataset, root dataset
        wl = units = None
        source = None
        for holder, label in ((ds.attrs, f"attribute of {ds_name}"), (fh.attrs, "file attribute")):
            for key in _WAVELENGTH_KEYS:
                if key in holder:
                    wl = holder[key]
                    units = _units_from_key(key, holder.get("wavelength_units", holder.get("wavelengths_units")))
                    source = f"{label} {key!r}"
                    break
            if wl is not None:
                break
        if wl is None:
            parent = ds.parent
            for group in (parent, fh) if parent.name != "/" else (fh,):
                for key in _WAVELENGTH_KEYS:
                    if key in group and isinstance(group[key], h5py.Dataset):
                        wds = group[key]
                        wl = wds[()]
                        units = _units_from_key(key, wds.attrs.get("units", wds.attrs.get("unit")))
                        source = f"dataset {wds.name}"
                        break
                if wl is not None:
                    break

        ground_truth = None
        if "ground_truth" in fh and isinstance(fh["ground_truth"], h5py.Group):
            ground_truth = {}
            for name, gshape in _h5_datasets(fh["ground_truth"], with_shapes=True):
                arr = fh["ground_truth"][name][()]
                if arr.shape == tuple(shape[:2]):
                    ground_truth[name] = np.asarray(arr)
                else:
                    metadata.setdefault("warnings", []).append(
                        f"ground_truth/{name} has shape {gshape}, image is {tuple(shape[:2])}; ignored"
                    )

    def reader(r0, r1, c0, c1):
        try:
            with h5py.File(path, "r") as f:
                return f[ds_name][r0:r1, c0:c1, :]
        except OSError as exc:
            raise DataFileError(f"{path.name}:{ds_name}: cannot read rows {r0}:{r1} (file truncated?): {exc}") from exc

    lazy = LazyCube(shape, reader, description=f"{path.name}:{ds_name}")
    return lazy, wl, units, source, metadata, ground_truth, path


def _h5_datasets(group, with_shapes: bool = False) -> list:
    import h5py

    found: list = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found.append((name, obj.shape) if with_shapes else name)

    group.visititems(visit)
    return found


def _read_npy(path: Path):
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise DataFileError(f"{path.name}: not a NumPy .npy file (bad header; truncated or corrupt?)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataFileError(
                f"{path.name}: holds pickled Python objects, which are never loaded (unsafe); save a numeric array"
            ) from exc
        raise DataFileError(f"{path.name}: not a readable .npy file (truncated or corrupt?): {exc}") from exc
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{path.name}: not a readable .npy file (truncated or corrupt?): {exc}") from exc
    if not isinstance(arr, np.ndarray):
        raise DataFileError(f"{path.name}: expected a single array, found {type(arr).__name__}")
    if arr.ndim != 3:
        raise DataFileError(f"{path.name}: cube has {arr.ndim} dimensions, expected H × W × bands")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataFileError(f"{path.name}: data type {arr.dtype} is not numeric")
    metadata = {"format": "npy", "dtype": str(arr.dtype)}
    wl = units = source = None
    side = _read_sidecar_wavelengths(path)
    if side is not None:
        wl, units, cand = side
        source = f"sidecar {cand.name}"

    def reader(r0, r1, c0, c1):
        return arr[r0:r1, c0:c1, :]

    return LazyCube(arr.shape, reader, description=path.name), wl, units, source, metadata, None, path


def _read_tiff(path: Path):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise DataFileError(f"{path.name}: TIFF contains no images")
            series = tif.series[0]
            axes = series.axes
            dtype = series.dtype
            description = tif.pages[0].description if tif.pages else ""
            try:
                arr = tifffile.memmap(path, mode="r")
                memmapped = True
            except (ValueError, OSError):
                arr = series.asarray()
                memmapped = False
    except tifffile.TiffFileError as exc:
        raise DataFileError(f"{path.name}: not a readable TIFF file (truncated or corrupt?): {exc}") from exc
    except (ValueError, OSError, EOFError) as exc:
        raise DataFileError(f"{path.name}: cannot read TIFF ({exc})") from exc
    arr = np.asarray(arr) if not memmapped else arr
    # drop singleton leading axes (e.g. T=1), keep the last three
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
        axes = axes[1:]
    if arr.ndim != 3:
        raise DataFileError(f"{path.name}: cube has {arr.ndim} dimensions, expected H × W × bands (axes {axes})")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataFileError(f"{path.name}: data type {dtype} is not numeric")
    info: dict = {}
    if description:
        try:
            parsed = json.loads(description)
            if isinstance(parsed, dict):
                info = parsed
        except json.JSONDecodeError:
            info = {}
    layout = str(info.get("layout", "")).upper()
    if layout in ("HWB", "HWC", "YXC", "YXS") or (not layout and axes[-1] in "SC"):
        hwb = True
    elif layout in ("BHW", "CHW", "CYX") or not layout:
        hwb = False
    else:
        raise DataFileError(f"{path.name}: unknown layout {layout!r} in ImageDescription; use 'HWB' or 'BHW'")
    metadata = {"format": "tiff", "dtype": str(dtype), "axes": axes, "layout": "HWB" if hwb else "BHW (pages = bands)"}
    metadata["description"] = {k: _jsonable(v) for k, v in info.items() if k not in _WAVELENGTH_KEYS}
    metadata["memory_mapped"] = memmapped
    wl = units = source = None
    for key in _WAVELENGTH_KEYS:
        if key in info:
            wl = info[key]
            units = _units_from_key(key, info.get("wavelength_units"))
            source = f"ImageDescription {key!r}"
            break
    if hwb:
        h, w, b = arr.shape

        def reader(r0, r1, c0, c1):
            return arr[r0:r1, c0:c1, :]
    else:
        b, h, w = arr.shape

        def reader(r0, r1, c0, c1):
            return np.moveaxis(arr[:, r0:r1, c0:c1], 0, -1)

    return LazyCube((h, w, b), reader, description=path.name), wl, units, source, metadata, None, path


def _read_envi(path: Path):
    from spectral.io import envi

    if path.suffix.lower() == ".hdr":
        hdr, image = path, None
    else:
        hdr, image = _envi_header_for(path), path
        if hdr is None:
            raise DataFileError(f"{path.name}: no ENVI header ({path.name}.hdr or {path.stem}.hdr) beside it")
    try:
        img = envi.open(str(hdr), None if image is None else str(image))
    except envi.EnviDataFileNotFoundError as exc:
        raise DataFileError(f"{hdr.name}: ENVI data file not found beside the header ({exc})") from exc
    except (envi.EnviException, OSError, ValueError, TypeError, KeyError) as exc:
        raise DataFileError(f"{hdr.name}: not a readable ENVI header/image: {exc}") from exc
    data_path = Path(img.filename)
    expected = int(np.prod(img.shape)) * np.dtype(img.dtype).itemsize + int(getattr(img, "offset", 0))
    if data_path.stat().st_size < expected:
        raise DataFileError(
            f"{data_path.name}: ENVI image is {data_path.stat().st_size} bytes, header needs {expected} (truncated?)"
        )
    meta = img.metadata
    metadata = {
        "format": "envi",
        "header_path": str(hdr),
        "dtype": str(np.dtype(img.dtype)),
        "interleave": meta.get("interleave"),
        "header": {k: _jsonable(v) for k, v in meta.items() if k not in ("wavelength", "fwhm", "band names")},
    }
    if "fwhm" in meta:
        metadata["fwhm"] = meta["fwhm"]
    wl = units = source = None
    if "wavelength" in meta:
        wl = meta["wavelength"]
        units = meta.get("wavelength units")
        source = "ENVI header 'wavelength'"

    ignore = meta.get("data ignore value")
    try:
        ignore = None if ignore is None else float(ignore)
    except (TypeError, ValueError):
        _warn(metadata, f"{hdr.name}: 'data ignore value' {ignore!r} is not a number; ignored")
        ignore = None
    metadata["data_ignore_value"] = ignore

    def reader(r0, r1, c0, c1):
        try:
            block = img.read_subregion((r0, r1), (c0, c1))
        except (OSError, ValueError) as exc:
            raise DataFileError(f"{data_path.name}: cannot read rows {r0}:{r1}: {exc}") from exc
        if ignore is not None:
            block = np.asarray(block, dtype=np.float32)
            block[block == np.float32(ignore)] = np.nan  # no-data pixels → invalid (NaN)
        return block

    return LazyCube(img.shape, reader, description=data_path.name), wl, units, source, metadata, None, data_path


_READERS = {"hdf5": _read_hdf5, "npy": _read_npy, "tiff": _read_tiff, "envi": _read_envi}


# ----------------------------------------------------------------------------------------------
# references


def _load_reference(ref: Any, name: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, str]:
    """A white/dark reference as a float32 array broadcastable to ``shape`` plus a description."""
    if isinstance(ref, (str, os.PathLike)):
        p = Path(ref)
        desc = str(p)
        if p.suffix.lower() == ".npy" and p.is_file():
            try:
                arr = np.load(p, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise DataFileError(f"{p.name}: {name} reference is not a readable .npy file: {exc}") from exc
        else:
            arr = np.asarray(read_cube(p).data)
    else:
        arr = ref
        desc = f"array {np.shape(ref)}"
    try:
        arr = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{name} reference is not numeric: {exc}") from exc
    h, w, b = shape
    if arr.ndim == 0:
        arr = arr.reshape(1, 1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, 1, -1)
    if arr.ndim != 3 or arr.shape[2] not in (1, b) or arr.shape[0] not in (1, h) or arr.shape[1] not in (1, w):
        raise DataFileError(
            f"{name} reference ({desc}) has shape {tuple(arr.shape)}; the cube is {h} × {w} × {b}: give "
            f"{h} × {w} × {b}, 1 × 1 × {b} or a {b}-vector (average reference frames over rows if needed)"
        )
    return arr, desc


def _slice_ref(ref: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    rows = slice(r0, r1) if ref.shape[0] > 1 else slice(None)
    cols = slice(c0, c1) if ref.shape[1] > 1 else slice(None)
    return ref[rows, cols, :]


def to_reflectance(raw: np.ndarray, white: Any, dark: Any = None) -> tuple[np.ndarray, int]:
    """Reflectance ``(raw − dark) / (white − dark)``; entries where white ≤ dark become NaN.

    Args:
        raw: Raw counts, h × w × B (or anything broadcastable with the references).
        white: White reference: array (h × w × B, 1 × 1 × B, B-vector) or a file readable by
            :func:`read_cube` (or a .npy of any of these shapes).
        dark: Dark reference, same forms; None means zero.

    Returns:
        ``(reflectance float32, n_invalid)`` where ``n_invalid`` counts result entries whose
        reference had white ≤ dark (set to NaN).
    """
    raw = np.asarray(raw, dtype=np.float32)
    shape3 = raw.shape if raw.ndim == 3 else (1, 1, raw.shape[-1])
    w, _ = _load_reference(white, "white", shape3)
    d = np.zeros((1, 1, 1), np.float32) if dark is None else _load_reference(dark, "dark", shape3)[0]
    return _apply_references(raw, w, d)


def _apply_references(raw: np.ndarray, white: np.ndarray, dark: np.ndarray) -> tuple[np.ndarray, int]:
    denom = white - dark
    bad = denom <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (raw - dark) / np.where(bad, np.float32(1.0), denom)
    out = np.asarray(out, dtype=np.float32)
    n_bad = 0
    if np.any(bad):
        bad_full = np.broadcast_to(bad, out.shape)
        out = np.where(bad_full, np.float32(np.nan), out)
        n_bad = int(np.count_nonzero(bad_full))
    return out, n_bad


# ----------------------------------------------------------------------------------------------
# public reader


def read_cube(
    path: str | os.PathLike,
    dataset: str | None = None,
    wavelengths_nm: Any = None,
    white: Any = None,
    dark: Any = None,
    saturation: float | None = None,
) -> Cube:
    """Open a multispectral cube (H × W × B) without reading it whole.

    Formats: HDF5 (``dataset`` path selectable; by default the only 3-D dataset or the one named
    ``reflectance``/``cube``; wavelengths from an attribute or a sibling dataset ``wavelengths_nm``;
    optional group ``ground_truth``), NumPy ``.npy`` (memory-mapped; wavelengths from a sidecar
    ``<name>.wavelengths.txt``/``.json``), TIFF (pages = bands, or H × W × samples; wavelengths from
    an ImageDescription JSON) and ENVI (``.hdr`` + binary; wavelength units nm or µm).

    Args:
        path: The file.
        dataset: HDF5 dataset path (HDF5 only).
        wavelengths_nm: Band centres in nm; overrides the file's wavelengths.
        white: White reference (array or file), turns raw counts into reflectance.
        dark: Dark reference (array or file); zero when only ``white`` is given.
        saturation: Raw-count saturation level; pixels reaching it are reported invalid by
            :meth:`Cube.valid_tile`.

    Raises:
        DataFileError: Missing, corrupt, unsupported or inconsistent file (message names the file).
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, expected a cube file ({_SUPPORTED_TEXT})")
    fmt = _sniff_format(path)
    if dataset is not None and fmt != "hdf5":
        raise DataFileError(f"{path.name}: dataset= applies to HDF5 files only (this is {fmt})")
    lazy, file_wl, units, wl_source, metadata, ground_truth, source_path = _READERS[fmt](
        path, *((dataset,) if fmt == "hdf5" else ())
    )
    metadata.setdefault("warnings", [])
    h, w, b = lazy.shape
    if min(h, w, b) < 1:
        raise DataFileError(f"{path.name}: empty cube of shape {lazy.shape}")

    wl = None
    file_wl_nm = None
    if file_wl is not None:
        try:
            vals = _parse_wavelength_values(file_wl, f"{path.name} ({wl_source})")
            file_wl_nm = vals * _wavelength_scale(units, vals, f"{path.name} ({wl_source})", metadata)
        except DataFileError:
            if wavelengths_nm is None:
                raise
            _warn(metadata, f"{path.name}: wavelengths in the file ({wl_source}) unreadable; using the given ones")
    if wavelengths_nm is not None:
        wl = _parse_wavelength_values(wavelengths_nm, "wavelengths_nm argument")
        if wl.size != b:
            raise DataFileError(f"{path.name}: {wl.size} wavelengths given for a cube with {b} bands")
        metadata["wavelength_source"] = "argument"
        if file_wl_nm is not None and (file_wl_nm.size != b or np.max(np.abs(file_wl_nm - wl)) > 0.5):
            _warn(
                metadata, f"{path.name}: given wavelengths differ from the file's ({wl_source}); using the given ones"
            )
    elif file_wl_nm is not None:
        if file_wl_nm.size != b:
            raise DataFileError(
                f"{path.name}: {file_wl_nm.size} wavelengths ({wl_source}) for {b} bands; pass wavelengths_nm"
            )
        wl = file_wl_nm
        metadata["wavelength_source"] = wl_source
    else:
        metadata["wavelength_source"] = None

    raw_lazy = None
    convert = None
    data: Any = lazy
    if white is not None or dark is not None:
        white_arr = dark_arr = None
        if white is not None:
            white_arr, wdesc = _load_reference(white, "white", (h, w, b))
            metadata["white_reference"] = wdesc
        if dark is not None:
            dark_arr, ddesc = _load_reference(dark, "dark", (h, w, b))
            metadata["dark_reference"] = ddesc
        else:
            dark_arr = np.zeros((1, 1, 1), np.float32)
        if white_arr is not None:
            bad = np.broadcast_arrays(white_arr, dark_arr)
            n_bad = int(np.count_nonzero(bad[0] <= bad[1]))
            metadata["reference_white_le_dark"] = n_bad
            if n_bad:
                _warn(metadata, f"{path.name}: white ≤ dark in {n_bad} reference entries; those pixels/bands are NaN")

            def convert(raw, r0, r1, c0, c1):
                return _apply_references(
                    raw, _slice_ref(white_arr, r0, r1, c0, c1), _slice_ref(dark_arr, r0, r1, c0, c1)
                )[0]

            metadata["values"] = "reflectance (raw − dark) / (white − dark)"
        else:

            def convert(raw, r0, r1, c0, c1):
                return np.asarray(raw - _slice_ref(dark_arr, r0, r1, c0, c1), dtype=np.float32)

            metadata["values"] = "raw − dark (no white reference: not reflectance)"
            _warn(metadata, f"{path.name}: dark subtracted but no white reference given; values are not reflectance")
        raw_lazy = lazy

        def ref_reader(r0, r1, c0, c1):
            return convert(raw_lazy.read(r0, r1, c0, c1), r0, r1, c0, c1)

        data = LazyCube((h, w, b), ref_reader, description=lazy.description)
    if saturation is not None:
        metadata["saturation"] = float(saturation)
    return Cube(
        data=data,
        wavelengths_nm=wl,
        source_path=source_path,
        metadata=metadata,
        ground_truth=ground_truth,
        saturation=None if saturation is None else float(saturation),
        raw=raw_lazy,
        _convert=convert,
    )


# ----------------------------------------------------------------------------------------------
# band matching and validity


def _fmt_nm(values: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(values, dtype=np.float64).reshape(-1)) + "] nm"


def match_bands(
    cube_wavelengths_nm: Any,
    model_wavelengths_nm: Any,
    tol_nm: float = 2.0,
    *,
    n_cube_bands: int | None = None,
    warnings_out: list[str] | None = None,
) -> np.ndarray:
    """Indices into the cube's bands that give the model's bands, in the model's order.

    Each model band takes the nearest cube band within ``tol_nm``; a cube with more bands than the
    model is fine (its extra bands are dropped).

    Args:
        cube_wavelengths_nm: The cube's band centres (nm), None when unknown, or a :class:`Cube`
            (then its wavelengths and band count are used and a warning lands in its metadata).
        model_wavelengths_nm: The model's band centres (nm).
        tol_nm: Largest accepted |cube − model| difference.
        n_cube_bands: Band count of a cube without wavelengths.
        warnings_out: List that receives a warning text when the match is by count only.

    Raises:
        BandMismatchError: Some model band has no cube band within ``tol_nm`` (names both lists
            and the missing bands), or the cube has no wavelengths and the band counts differ.
    """
    cube_meta = None
    if isinstance(cube_wavelengths_nm, Cube):
        cube_meta = cube_wavelengths_nm.metadata
        n_cube_bands = cube_wavelengths_nm.shape[2]
        cube_wavelengths_nm = cube_wavelengths_nm.wavelengths_nm
    model = np.asarray(model_wavelengths_nm, dtype=np.float64).reshape(-1)
    if cube_wavelengths_nm is None:
        if n_cube_bands is None or n_cube_bands != model.size:
            have = "an unknown number of" if n_cube_bands is None else str(n_cube_bands)
            raise BandMismatchError(
                f"the cube carries no wavelengths and has {have} bands, the model needs {model.size} bands "
                f"{_fmt_nm(model)}; pass the cube's wavelengths (--wavelengths / wavelengths_nm=)"
            )
        msg = (
            f"the cube carries no wavelengths; assuming its {n_cube_bands} bands are the model's "
            f"{_fmt_nm(model)} in order (pass wavelengths_nm to check)"
        )
        if warnings_out is not None:
            warnings_out.append(msg)
        if cube_meta is not None:
            cube_meta.setdefault("warnings", []).append(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
        return np.arange(model.size, dtype=np.int64)
    cube = np.asarray(cube_wavelengths_nm, dtype=np.float64).reshape(-1)
    if cube.size == 0:
        raise BandMismatchError("the cube has no bands")
    diff = np.abs(cube[None, :] - model[:, None])
    nearest = np.argmin(diff, axis=1)
    ok = diff[np.arange(model.size), nearest] <= tol_nm
    missing = model[~ok]
    if missing.size:
        raise BandMismatchError(
            f"cube bands {_fmt_nm(cube)} do not provide model bands {_fmt_nm(model)}: missing {_fmt_nm(missing)} "
            f"(tolerance ±{tol_nm:g} nm); use a model trained for this camera"
        )
    uniq, counts = np.unique(nearest, return_counts=True)
    if np.any(counts > 1):
        dup = cube[uniq[counts > 1]]
        raise BandMismatchError(
            f"model bands {_fmt_nm(model)} are closer together than the tolerance ±{tol_nm:g} nm: cube band(s) "
            f"{_fmt_nm(dup)} would serve several model bands (cube bands {_fmt_nm(cube)})"
        )
    return nearest.astype(np.int64)


def valid_mask(
    tile: np.ndarray,
    r_min: float | None = 1e-5,
    r_max: float | None = 1.0,
    saturation: float | None = None,
    raw: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Which pixels of a reflectance tile may be given to a network.

    A pixel is invalid when any band is NaN/inf (``nan``), below ``r_min`` (``non_positive``; the
    default 1e-5 rejects ≤ 0), at or above ``saturation`` in the raw counts (``raw`` if given, else
    ``tile``) (``saturated``), or above ``r_max`` (``above_max``). Each invalid pixel is counted
    once, under the first reason in that order, so the counts add up to the number of invalid pixels.

    Args:
        tile: h × w × B reflectance.
        r_min: Smallest accepted value (None: accept anything > 0).
        r_max: Largest accepted reflectance (None: no limit).
        saturation: Raw saturation level (None: not checked).
        raw: h × w × B raw counts for the saturation test.

    Returns:
        ``(mask bool [h, w], {"nan", "non_positive", "saturated", "above_max"} → counts)``.
    """
    tile = np.asarray(tile)
    if tile.ndim != 3:
        raise ValueError(f"tile must be h × w × bands, got shape {tile.shape}")
    with np.errstate(invalid="ignore"):
        bad_nan = ~np.all(np.isfinite(tile), axis=-1)
        low = tile < r_min if r_min is not None else tile <= 0
        bad_low = np.any(low, axis=-1) & ~bad_nan
        remaining = ~(bad_nan | bad_low)
        if saturation is not None:
            ref = tile if raw is None else np.asarray(raw)
            if ref.shape[:2] != tile.shape[:2]:
                raise ValueError(f"raw shape {ref.shape} does not match tile shape {tile.shape}")
            bad_sat = np.any(ref >= saturation, axis=-1) & remaining
        else:
            bad_sat = np.zeros(tile.shape[:2], dtype=bool)
        remaining &= ~bad_sat
        bad_high = (np.any(tile > r_max, axis=-1) & remaining) if r_max is not None else np.zeros_like(bad_sat)
    mask = remaining & ~bad_high
    reasons = {
        "nan": int(np.count_nonzero(bad_nan)),
        "non_positive": int(np.count_nonzero(bad_low)),
        "saturated": int(np.count_nonzero(bad_sat)),
        "above_max": int(np.count_nonzero(bad_high)),
    }
    return mask, reasons

"""Writing parameter maps: HDF5, float32 multi-page TIFF, colour-mapped PNG, CSV.

Every writer goes through :func:`tissue_inn.atomic.atomic_path`: the file appears complete or
not at all, and an existing output is only replaced with ``force=True``.

Map keys follow ``"<parameter>/<statistic>"`` (e.g. ``"sao2/median"``, ``"vhb_1/iqr"``); a key
without ``/`` is a parameter with statistic ``"value"``.

One concept, the map files (≈ 460 lines, kept whole): the four formats share the key and unit
conventions, one validation of maps and mask (``_check_maps``) and one error wrapping, and each writer
is read next to its reader; a module per format would repeat or import those pieces for ~80 lines each.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.atomic import atomic_path
from tissue_inn.errors import DataFileError, TissueInnError

__all__ = [
    "split_map_key",
    "write_maps_hdf5",
    "read_maps_hdf5",
    "read_map_units",
    "write_maps_tiff",
    "read_maps_tiff",
    "write_map_png",
    "write_csv",
]

_MAPS_GROUP = "maps"
_MASK_DATASET = "mask"
_JSON_ATTRS_KEY = "_json_attrs"
_FORMAT_ATTR = "tissue_inn_format"
_FORMAT_VALUE = "tissue_inn.maps/1"


def split_map_key(key: str) -> tuple[str, str]:
    """``"sao2/median"`` → ``("sao2", "median")``; ``"sao2"`` → ``("sao2", "value")``."""
    if "/" in key:
        parameter, statistic = key.split("/", 1)
    else:
        parameter, statistic = key, "value"
    if not parameter or not statistic or "/" in statistic:
        raise ValueError(f"map key {key!r} must look like '<parameter>/<statistic>'")
    return parameter, statistic


def _unit_for(key: str, units: Mapping[str, str] | None) -> str:
    if not units:
        return ""
    if key in units:
        return str(units[key])
    return str(units.get(split_map_key(key)[0], ""))


def _check_maps(maps: Mapping[str, Any], mask: Any = None) -> tuple[Mapping[str, Any], np.ndarray | None]:
    """Check keys, shapes and dtypes; the arrays themselves are fetched one at a time by the writers.

    A :class:`~tissue_inn.io.maps_store.MapStore` (maps streamed to disk) is checked by its shape only,
    so writing a 2048 × 2048 × 143-map result never holds more than one map in memory.
    """
    from tissue_inn.io.maps_store import MapStore

    if not maps:
        raise ValueError("no maps to write")
    shape = None
    if isinstance(maps, MapStore):
        for key in maps:
            split_map_key(key)
        shape = maps.shape
    else:
        for key, value in maps.items():
            split_map_key(key)
            arr = value if hasattr(value, "shape") and hasattr(value, "dtype") else np.asarray(value)
            if len(arr.shape) != 2:
                raise ValueError(f"map {key!r} has shape {tuple(arr.shape)}; expected H × W")
            if shape is None:
                shape = tuple(arr.shape)
            elif tuple(arr.shape) != shape:
                raise ValueError(f"map {key!r} has shape {tuple(arr.shape)}, other maps are {shape}")
            dtype = np.dtype(arr.dtype)
            if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
                raise ValueError(f"map {key!r} has non-numeric dtype {dtype}")
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != tuple(shape):
            raise ValueError(f"mask has shape {m.shape}, maps are {shape}")
    return maps, m


def _map_array(value: Any) -> np.ndarray:
    """One map as written: float32 for floating maps, integers and booleans kept."""
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
    return arr


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _plain(value: Any) -> Any:
    """HDF5 attribute value → plain Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _wrap_os_errors(path: str | os.PathLike, exc: OSError) -> TissueInnError:
    return TissueInnError(f"cannot write {path}: {exc.strerror or exc}; choose another output path")


def write_maps_hdf5(
    path: str | os.PathLike,
    maps: Mapping[str, np.ndarray],
    *,
    attrs: Mapping[str, Any] | None = None,
    mask: np.ndarray | None = None,
    units: Mapping[str, str] | None = None,
    force: bool = False,
    compression_level: int = 4,
) -> Path:
    """Write maps to HDF5: ``/maps/<parameter>/<statistic>`` datasets (gzip), ``/mask``, root attrs.

    Each map dataset has attributes ``parameter``, ``statistic`` and ``unit``. Root ``attrs`` take
    str/int/float/bool values as HDF5 attributes; anything else (dicts, lists, None; e.g. the model
    card) is stored as a JSON string and decoded again by :func:`read_maps_hdf5`.

    Args:
        path: Output file.
        maps: ``"<parameter>/<statistic>"`` → H × W array.
        attrs: Root attributes (JSON-able values).
        mask: Optional H × W bool, True where pixels were estimated.
        units: Unit per key or per parameter (e.g. ``{"sao2": "fraction", "a_mie_1": "1/cm"}``).
        force: Replace an existing file.
        compression_level: gzip level 0–9.

    Returns:
        The written path.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        TissueInnError: The folder cannot be written.
    """
    import h5py

    arrays, m = _check_maps(maps, mask)
    plain_attrs: dict[str, Any] = {}
    json_keys: list[str] = []
    for key, value in (attrs or {}).items():
        if key in (_JSON_ATTRS_KEY, _FORMAT_ATTR):
            raise ValueError(f"attribute name {key!r} is reserved")
        if isinstance(value, (str, bool, int, float, np.bool_, np.integer, np.floating)):
            plain_attrs[key] = value
        else:
            try:
                plain_attrs[key] = json.dumps(value, default=_json_default, allow_nan=True)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"attribute {key!r} is not JSON-able: {exc}") from exc
            json_keys.append(key)
    try:
        with atomic_path(path, force=force) as tmp:
            with h5py.File(tmp, "w") as fh:
                fh.attrs[_FORMAT_ATTR] = _FORMAT_VALUE
                for key, value in plain_attrs.items():
                    fh.attrs[key] = value
                fh.attrs[_JSON_ATTRS_KEY] = json.dumps(json_keys)
                group = fh.create_group(_MAPS_GROUP)
                for key in arrays:
                    parameter, statistic = split_map_key(key)
                    ds = group.create_dataset(
                        f"{parameter}/{statistic}",
                        data=_map_array(arrays[key]),
                        compression="gzip",
                        compression_opts=compression_level,
                        shuffle=True,
                        chunks=True,
                    )
                    ds.attrs["parameter"] = parameter
                    ds.attrs["statistic"] = statistic
                    ds.attrs["unit"] = _unit_for(key, units)
                    ds.attrs["key"] = key
                if m is not None:
                    fh.create_dataset(_MASK_DATASET, data=m.astype(np.uint8), compression="gzip", chunks=True)
                    fh[_MASK_DATASET].attrs["meaning"] = "1 = pixel estimated, 0 = masked"
    except TissueInnError:
        raise
    except OSError as exc:
        raise _wrap_os_errors(path, exc) from exc
    return Path(path)


def read_maps_hdf5(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any], np.ndarray | None]:
    """Read a file written by :func:`write_maps_hdf5`.

    Returns:
        ``(maps "<parameter>/<statistic>" → array, root attrs (JSON strings decoded), mask or None)``.
        Units are in ``attrs["units"]`` only if the writer put them there; per-map units are in the
        dataset attributes (see :func:`read_map_units`).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(f"{path.name}: not an HDF5 file (truncated or corrupt?): {exc}") from exc
    with fh:
        if _MAPS_GROUP not in fh or not isinstance(fh[_MAPS_GROUP], h5py.Group):
            raise DataFileError(f"{path.name}: no '{_MAPS_GROUP}' group; not a tissue_inn map file")
        maps: dict[str, np.ndarray] = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                maps[_plain(obj.attrs.get("key", name))] = obj[()]

        fh[_MAPS_GROUP].visititems(visit)
        raw = {k: _plain(v) for k, v in fh.attrs.items()}
        json_keys = json.loads(raw.pop(_JSON_ATTRS_KEY, "[]"))
        raw.pop(_FORMAT_ATTR, None)
        for key in json_keys:
            if key in raw:
                raw[key] = json.loads(raw[key])
        mask = fh[_MASK_DATASET][()].astype(bool) if _MASK_DATASET in fh else None
    return maps, raw, mask


def read_map_units(path: str | os.PathLike) -> dict[str, str]:
    """``"<parameter>/<statistic>"`` → unit for a file written by :func:`write_maps_hdf5`."""
    import h5py

    units: dict[str, str] = {}
    try:
        with h5py.File(path, "r") as fh:

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    units[_plain(obj.attrs.get("key", name))] = _plain(obj.attrs.get("unit", ""))

            fh[_MAPS_GROUP].visititems(visit)
    except (OSError, KeyError) as exc:
        raise DataFileError(f"{path}: cannot read map units: {exc}") from exc
    return units


def write_maps_tiff(
    path: str | os.PathLike,
    maps: Mapping[str, np.ndarray],
    units: Mapping[str, str] | None = None,
    force: bool = False,
    *,
    mask: np.ndarray | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write maps as a float32 multi-page TIFF, one page per map, zlib-compressed.

    Each page carries PageName ``"<parameter>/<statistic>"`` and an ImageDescription JSON
    ``{"key", "parameter", "statistic", "unit", "page", "n_pages"}`` (plus ``extra`` on the first page).
    With ``mask`` a final page ``"mask"`` (1 = estimated) is added.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        TissueInnError: The folder cannot be written.
    """
    import tifffile

    arrays, m = _check_maps(maps, mask)
    pages: list[tuple[str, dict]] = []  # arrays fetched one page at a time (maps may live on disk)
    for key in arrays:
        parameter, statistic = split_map_key(key)
        pages.append((key, {"key": key, "parameter": parameter, "statistic": statistic, "unit": _unit_for(key, units)}))
    if m is not None:
        pages.append(("mask", {"key": "mask", "parameter": "mask", "statistic": "valid", "unit": ""}))
    try:
        with atomic_path(path, force=force) as tmp:
            with tifffile.TiffWriter(tmp) as tw:
                for i, (key, info) in enumerate(pages):
                    arr = m.astype(np.float32) if key == "mask" and m is not None else \
                        np.asarray(arrays[key]).astype(np.float32, copy=False)
                    info = dict(info, page=i, n_pages=len(pages))
                    if i == 0 and extra:
                        info["extra"] = json.loads(json.dumps(dict(extra), default=_json_default))
                    tw.write(
                        arr,
                        photometric="minisblack",
                        compression="zlib",
                        description=json.dumps(info),
                        metadata=None,
                        extratags=[(285, "s", 0, key, True)],  # 285 = PageName
                    )
    except TissueInnError:
        raise
    except OSError as exc:
        raise _wrap_os_errors(path, exc) from exc
    return Path(path)


def read_maps_tiff(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Read a TIFF written by :func:`write_maps_tiff`: ``(key → array, key → page info)``."""
    import tifffile

    maps: dict[str, np.ndarray] = {}
    infos: dict[str, dict] = {}
    try:
        with tifffile.TiffFile(path) as tif:
            for i, page in enumerate(tif.pages):
                try:
                    info = json.loads(page.description)
                except (json.JSONDecodeError, TypeError):
                    info = {}
                key = info.get("key") or (page.tags["PageName"].value if "PageName" in page.tags else f"page{i}")
                maps[key] = page.asarray()
                infos[key] = info
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise DataFileError(f"{path}: not a readable TIFF: {exc}") from exc
    return maps, infos


def write_map_png(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    title: str = "",
    unit: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    mask: np.ndarray | None = None,
    force: bool = False,
    dpi: int = 100,
) -> Path:
    """Colour-mapped PNG with a colour bar labelled with ``unit``; masked and NaN pixels transparent.

    Uses matplotlib's object API with the Agg canvas (no pyplot global state).

    Args:
        path: Output file.
        image: H × W values.
        title: Figure title.
        unit: Colour-bar label.
        vmin: Lower colour limit (None: 1st percentile of the shown pixels).
        vmax: Upper colour limit (None: 99th percentile).
        cmap: Matplotlib colour-map name.
        mask: H × W bool, True where pixels are shown (False → transparent).
        force: Replace an existing file.
        dpi: Resolution.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image has shape {img.shape}; expected H × W")
    hidden = ~np.isfinite(img)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != img.shape:
            raise ValueError(f"mask has shape {m.shape}, image is {img.shape}")
        hidden |= ~m
    shown = img[~hidden]
    if vmin is None:
        vmin = float(np.percentile(shown, 1)) if shown.size else 0.0
    if vmax is None:
        vmax = float(np.percentile(shown, 99)) if shown.size else 1.0
    if not vmax > vmin:
        vmax = vmin + (abs(vmin) * 1e-6 or 1e-6)
    try:
        colormap = matplotlib.colormaps[cmap].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    except KeyError as exc:
        raise ValueError(f"unknown colour map {cmap!r}") from exc
    data = np.ma.masked_array(img, mask=hidden)
    h, w = img.shape
    aspect = h / max(w, 1)
    fig_w = 6.0
    fig = Figure(figsize=(fig_w, max(2.0, fig_w * aspect * 0.85 + 0.8)), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.patch.set_alpha(0.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.patch.set_alpha(0.0)
    im = ax.imshow(data, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(unit)
    try:
        with atomic_path(path, force=force) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, transparent=True, bbox_inches="tight")
    except TissueInnError:
        raise
    except OSError as exc:
        raise _wrap_os_errors(path, exc) from exc
    return Path(path)


def write_csv(
    path: str | os.PathLike,
    rows: list[Mapping[str, Any]],
    force: bool = False,
    *,
    fieldnames: list[str] | None = None,
) -> Path:
    """Write rows as CSV; header = union of the rows' keys in first-seen order (or ``fieldnames``).

    Floats are written with full precision (``repr``); lists/dicts as JSON; missing cells empty.
    """
    if fieldnames is None:
        fieldnames = []
        seen: set[str] = set()
        for row in rows:
            for key in row:
                if key not in seen:
                    seen.add(key)
                    fieldnames.append(str(key))

    def cell(v: Any) -> Any:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, (list, tuple, dict, np.ndarray)):
            return json.dumps(v, default=_json_default)
        if isinstance(v, float):
            return repr(v)
        return "" if v is None else v

    try:
        with atomic_path(path, force=force) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                if fieldnames:
                    writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction="raise")
                    writer.writeheader()
                    for row in rows:
                        writer.writerow({k: cell(v) for k, v in row.items()})
    except TissueInnError:
        raise
    except OSError as exc:
        raise _wrap_os_errors(path, exc) from exc
    return Path(path)

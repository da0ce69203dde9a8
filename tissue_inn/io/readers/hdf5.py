"""HDF5 cubes: one 3-D dataset (chosen by name, or the only one, or ``reflectance``/``cube``).

Wavelengths come from an attribute of the dataset or the file (``wavelengths_nm`` …, units from the
key or a ``wavelength_units`` attribute) or a sibling dataset ``wavelengths_nm``; a group
``ground_truth`` of H × W maps travels along (simulated images).

A dataset whose header claims far more data than the file stores (an unwritten or hostile file,
e.g. 100000 × 100000 × 8 in a few KB) is refused before anything is allocated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.io.lazy import LazyCube
from tissue_inn.io.readers.base import RawCube, suffix_or_magic
from tissue_inn.io.wavelengths import WAVELENGTH_KEYS, jsonable, units_from_key, wavelengths_to_nm

__all__ = ["Hdf5Reader", "MAX_COMPRESSION_RATIO"]

_PREFERRED_DATASETS = ("reflectance", "cube")
# Deflate (gzip) cannot compress better than about 1032:1 (RFC 1951 maximal match length); used only
# when the HDF5 library cannot count written chunks.
MAX_COMPRESSION_RATIO = 1032.0


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{int(n)} bytes"


def _datasets(group, with_shapes: bool = False) -> list:
    import h5py

    found: list = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found.append((name, obj.shape) if with_shapes else name)

    group.visititems(visit)
    return found


def _check_storage(path: Path, ds) -> None:
    """Refuse a dataset whose claimed size the file does not hold (checked from the header only).

    Chunked datasets: fewer than half of the chunks written (unwritten chunks are not stored and
    would read as fill values) — counted, so any compression filter is fine. Contiguous datasets:
    less data stored than the shape claims. Either: more data than the file's size (truncated).
    """
    claimed = float(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
    if claimed == 0 or ds.external or ds.is_virtual:
        return
    stored = float(ds.id.get_storage_size())
    file_size = float(os.path.getsize(path))
    where = f"{path.name}:{ds.name}"
    shape = " × ".join(str(s) for s in ds.shape)
    if stored > file_size:
        raise DataFileError(f"{where}: the dataset needs {_gib(stored)} but the file has {_gib(file_size)} (truncated?)")
    if ds.chunks is not None:
        total = float(np.prod([-(-s // c) for s, c in zip(ds.shape, ds.chunks)], dtype=np.float64))
        try:
            written = float(ds.id.get_num_chunks())
        except (AttributeError, RuntimeError):  # HDF5 < 1.10.5: fall back to the deflate limit (~1032:1)
            written = total if stored * MAX_COMPRESSION_RATIO >= claimed else 0.0
        short = written < 0.5 * total
        detail = f"only {int(written)} of its {int(total)} chunks"
    else:
        short = stored < 0.5 * claimed
        detail = f"only {_gib(stored)} of its data"
    if short:
        raise DataFileError(
            f"{where}: the header claims a {shape} cube ({_gib(claimed)}) but the file stores {detail} "
            "(unwritten or corrupt); write the cube's data into the file, or give the right dataset name"
        )


class Hdf5Reader:
    name = "HDF5"
    suffixes = (".h5", ".hdf5", ".hdf", ".he5")
    description = "HDF5 (one H × W × bands dataset, wavelengths as attribute)"

    def can_read(self, path: Path) -> str | None:
        return suffix_or_magic(path, self.suffixes, (b"\x89HDF\r\n\x1a\n",), "HDF5")

    def read(self, path: Path, dataset: str | None = None) -> RawCube:
        import h5py

        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            raise DataFileError(f"{path.name}: not an HDF5 file (truncated or corrupt?): {exc}") from exc
        out = RawCube(data=None)
        with fh:
            ds = self._choose(fh, path, dataset)
            if ds.ndim != 3:
                raise DataFileError(f"{path.name}:{ds.name}: cube has {ds.ndim} dimensions, expected H × W × bands")
            if not (np.issubdtype(ds.dtype, np.number) or ds.dtype == np.bool_):
                raise DataFileError(f"{path.name}:{ds.name}: data type {ds.dtype} is not numeric")
            _check_storage(path, ds)
            ds_name, shape = ds.name, ds.shape
            out.metadata = {"format": "hdf5", "dataset": ds_name, "dtype": str(ds.dtype)}
            out.metadata["attrs"] = {k: jsonable(v) for k, v in ds.attrs.items() if k not in WAVELENGTH_KEYS}
            out.metadata["file_attrs"] = {k: jsonable(v) for k, v in fh.attrs.items() if k not in WAVELENGTH_KEYS}
            wl, units, source = self._wavelengths(fh, ds)
            if wl is not None:
                out.metadata["wavelength_source"] = source
                out.wavelengths_nm, out.wavelength_problem = wavelengths_to_nm(
                    wl, units, f"{path.name} ({source})", out.warnings
                )
            out.ground_truth = self._ground_truth(fh, shape, out.warnings)

        def reader(r0, r1, c0, c1):
            try:
                with h5py.File(path, "r") as f:
                    return f[ds_name][r0:r1, c0:c1, :]
            except OSError as exc:
                raise DataFileError(f"{path.name}:{ds_name}: cannot read rows {r0}:{r1} (file truncated?): {exc}") from exc

        out.data = LazyCube(shape, reader, description=f"{path.name}:{ds_name}")
        return out

    @staticmethod
    def _choose(fh, path: Path, dataset: str | None):
        import h5py

        if dataset is not None:
            if dataset not in fh:
                raise DataFileError(f"{path.name}: no dataset {dataset!r}; available: {_datasets(fh)}")
            obj = fh[dataset]
            if not isinstance(obj, h5py.Dataset):
                raise DataFileError(f"{path.name}: {dataset!r} is a group, not a dataset; available: {_datasets(fh)}")
            return obj
        cands = [n for n, s in _datasets(fh, with_shapes=True) if len(s) == 3 and not n.startswith("ground_truth/")]
        if not cands:
            raise DataFileError(f"{path.name}: no 3-D dataset (H × W × bands) found; datasets: {_datasets(fh)}")
        preferred = [n for n in cands if n.rsplit("/", 1)[-1].lower() in _PREFERRED_DATASETS]
        if len(cands) == 1:
            return fh[cands[0]]
        if len(preferred) == 1:
            return fh[preferred[0]]
        raise DataFileError(f"{path.name}: several 3-D datasets {cands}; choose one with --dataset")

    @staticmethod
    def _wavelengths(fh, ds):
        """Dataset attribute, file attribute, sibling dataset, root dataset: (values, units, source)."""
        import h5py

        for holder, label in ((ds.attrs, f"attribute of {ds.name}"), (fh.attrs, "file attribute")):
            for key in WAVELENGTH_KEYS:
                if key in holder:
                    units = units_from_key(key, holder.get("wavelength_units", holder.get("wavelengths_units")))
                    return holder[key], units, f"{label} {key!r}"
        parent = ds.parent
        for group in (parent, fh) if parent.name != "/" else (fh,):
            for key in WAVELENGTH_KEYS:
                if key in group and isinstance(group[key], h5py.Dataset):
                    wds = group[key]
                    units = units_from_key(key, wds.attrs.get("units", wds.attrs.get("unit")))
                    return wds[()], units, f"dataset {wds.name}"
        return None, None, None

    @staticmethod
    def _ground_truth(fh, shape, warnings_out: list[str]) -> dict | None:
        import h5py

        if "ground_truth" not in fh or not isinstance(fh["ground_truth"], h5py.Group):
            return None
        truth = {}
        for name, gshape in _datasets(fh["ground_truth"], with_shapes=True):
            if tuple(gshape) == tuple(shape[:2]):
                truth[name] = np.asarray(fh["ground_truth"][name][()])
            else:
                warnings_out.append(f"ground_truth/{name} has shape {gshape}, image is {tuple(shape[:2])}; ignored")
        return truth

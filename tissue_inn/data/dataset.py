"""Simulated datasets on disk (HDF5, schema in :mod:`tissue_inn.simulation.simulate`) as torch Datasets."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from tissue_inn.errors import DataFileError, TissueInnError

__all__ = ["SpectraDataset", "DatasetInfo", "read_dataset_info"]


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    n_samples: int
    parameter_names: tuple[str, ...]
    parameter_units: tuple[str, ...]
    band_centers_nm: tuple[float, ...]
    tissue: dict
    camera: dict
    solver: dict
    seed: int


def _attr_str(a) -> str:
    return a.decode() if isinstance(a, bytes) else str(a)


def read_dataset_info(path: str | os.PathLike) -> DatasetInfo:
    """Read and validate the attributes of a simulated dataset."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such dataset; make one with 'tissue-inn simulate'")
    try:
        with h5py.File(path, "r") as f:
            for key in ("x", "y"):
                if key not in f:
                    raise DataFileError(f"{path}: dataset '{key}' missing; not a tissue_inn simulation file")
            if "blocks_done" in f and not np.all(np.asarray(f["blocks_done"])):
                raise DataFileError(f"{path}: simulation unfinished; re-run its simulate command")
            a = f.attrs
            names = tuple(json.loads(_attr_str(a["parameter_names"])))
            info = DatasetInfo(
                path=path,
                n_samples=int(f["x"].shape[0]),
                parameter_names=names,
                parameter_units=tuple(json.loads(_attr_str(a["parameter_units"]))),
                band_centers_nm=tuple(float(v) for v in np.asarray(a["band_centers_nm"])),
                tissue=json.loads(_attr_str(a["tissue"])),
                camera=json.loads(_attr_str(a["camera"])),
                solver=json.loads(_attr_str(a["solver"])),
                seed=int(a["seed"]),
            )
            if f["x"].shape[1] != len(names) or f["y"].shape[1] != len(info.band_centers_nm):
                raise DataFileError(f"{path}: x/y columns do not match parameter_names/band_centers_nm")
            if f["x"].shape[0] != f["y"].shape[0]:
                raise DataFileError(f"{path}: x and y have different numbers of rows")
            return info
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read as HDF5 ({exc}); is the file complete?") from None
    except KeyError as exc:
        raise DataFileError(f"{path}: attribute {exc} missing; not a tissue_inn simulation file") from None


class SpectraDataset(torch.utils.data.Dataset):
    """All (x, y) pairs of a simulated dataset, held in memory as float32 tensors.

    Args:
        path: HDF5 file written by ``tissue-inn simulate``.
        limit: read only the first ``limit`` samples.
    """

    def __init__(self, path: str | os.PathLike, limit: int | None = None) -> None:
        self.info = read_dataset_info(path)
        with h5py.File(path, "r") as f:
            n = self.info.n_samples if limit is None else min(limit, self.info.n_samples)
            x = np.asarray(f["x"][:n], dtype=np.float64)
            y = np.asarray(f["y"][:n], dtype=np.float64)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise DataFileError(f"{path}: contains NaN/inf values; re-simulate it")
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def split(self, val_fraction: float, batch_size: int, generator: torch.Generator,
              val_max: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random (validation, training) index split drawn from ``generator``.

        The validation part is ``val_fraction`` of the samples (at least one, at most ``val_max``); the rest
        must hold at least one batch.
        """
        perm = torch.randperm(len(self), generator=generator)
        n_val = max(int(len(self) * val_fraction), 1)
        if val_max is not None:
            n_val = min(n_val, val_max)
        if len(self) - n_val < batch_size:
            raise TissueInnError(f"{self.info.path}: {len(self)} samples are too few for batch size {batch_size}")
        return perm[:n_val], perm[n_val:]

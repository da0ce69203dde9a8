"""Where the maps of one image live while they are computed: memory, or a scratch HDF5 file on disk.

:class:`MapStore` is a read-only mapping ``"<parameter>/<statistic>" → H × W float32`` (NaN where not
estimated). Small maps stay in one stacked in-memory array (``[K, H, W]``; every key is a view, so a
viewer sees rows the moment they are written). When ``K × H × W × 4`` bytes exceed the memory budget
(:data:`MEMORY_BUDGET_BYTES`, 512 MiB; e.g. all 11 statistics × 13 parameters of a 2048 × 2048 image
are 2.4 GB) the maps are streamed into a scratch HDF5 file instead, one row block at a time, and read
back per key on demand; the scratch folder is deleted when the store is closed or garbage-collected.

Writers ask for a row block (:meth:`MapStore.row_block`), fill it and hand it back
(:meth:`MapStore.commit`): in memory the block *is* the storage and commit does nothing.

Example:
    >>> store = MapStore(["sao2/median", "sao2/iqr"], (4, 3))
    >>> block = store.row_block(1, 3)
    >>> block[0, :, :] = 0.5
    >>> store.commit(1, 3, block)
    >>> store["sao2/median"][:, 0].tolist()
    [nan, 0.5, 0.5, nan]
    >>> store.on_disk, len(store)
    (False, 2)
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from tissue_inn.atomic import make_scratch_dir

__all__ = ["MapStore", "MEMORY_BUDGET_BYTES", "SCRATCH_PREFIX"]

MEMORY_BUDGET_BYTES = 512 * 2**20
"""Maps larger than this (all keys together) are streamed to a scratch file (environment override:
``TISSUE_INN_MAP_MEMORY_MB``)."""
SCRATCH_PREFIX = "tissue_inn_maps_"


def _budget() -> int:
    env = os.environ.get("TISSUE_INN_MAP_MEMORY_MB")
    if env:
        try:
            return int(float(env) * 2**20)
        except ValueError:
            pass
    return MEMORY_BUDGET_BYTES


def _remove(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class MapStore(Mapping):
    """Maps of one image (see the module docstring).

    Args:
        keys: map keys, in storage order.
        shape: ``(H, W)``.
        on_disk: force the choice (None: by the memory budget).
        scratch_dir: parent folder of the scratch file (default: the system's temporary folder).
    """

    def __init__(self, keys: Sequence[str], shape: tuple[int, int], on_disk: bool | None = None,
                 scratch_dir: str | os.PathLike | None = None) -> None:
        self.keys_ = tuple(keys)
        if len(set(self.keys_)) != len(self.keys_):
            raise ValueError("map keys must be unique")
        self.index = {k: i for i, k in enumerate(self.keys_)}
        self.shape = (int(shape[0]), int(shape[1]))
        nbytes = len(self.keys_) * self.shape[0] * self.shape[1] * 4
        self.on_disk = bool(nbytes > _budget()) if on_disk is None else bool(on_disk)
        self._stack: np.ndarray | None = None
        self._file = None
        self._folder: str | None = None
        if not self.on_disk:
            self._stack = np.full((len(self.keys_), *self.shape), np.nan, dtype=np.float32)
            return
        import h5py

        self._folder = str(make_scratch_dir(SCRATCH_PREFIX, scratch_dir))  # litter of killed runs is removed
        self._finalizer = weakref.finalize(self, _remove, self._folder)
        self._file = h5py.File(Path(self._folder) / "maps.h5", "w")
        h, w = self.shape
        chunk_rows = max(1, min(h, (1 << 18) // max(w, 1)))  # ≈ 1 MiB chunks of whole rows
        for i in range(len(self.keys_)):
            self._file.create_dataset(str(i), shape=self.shape, dtype=np.float32, chunks=(chunk_rows, w),
                                      fillvalue=np.float32(np.nan))

    # ------------------------------------------------------------------ writing
    def row_block(self, r0: int, r1: int) -> np.ndarray:
        """A writable ``[K, r1 − r0, W]`` block for rows ``r0:r1`` (the storage itself when in memory)."""
        if self._stack is not None:
            return self._stack[:, r0:r1, :]
        return np.full((len(self.keys_), r1 - r0, self.shape[1]), np.nan, dtype=np.float32)

    def commit(self, r0: int, r1: int, block: np.ndarray) -> None:
        """Store a block from :meth:`row_block` (nothing to do in memory)."""
        if self._file is None:
            return
        for i in range(len(self.keys_)):
            self._file[str(i)][r0:r1, :] = block[i]

    def clear_outside(self, mask: np.ndarray) -> None:
        """Set every map to NaN where ``mask`` is False (drops preview values of unfinished pixels)."""
        if self._stack is not None:
            self._stack[:, ~mask] = np.nan
            return
        for i in range(len(self.keys_)):
            ds = self._file[str(i)]
            for r0 in range(0, self.shape[0], 256):
                r1 = min(self.shape[0], r0 + 256)
                rows = ds[r0:r1, :]
                rows[~mask[r0:r1]] = np.nan
                ds[r0:r1, :] = rows

    # ------------------------------------------------------------------ reading (Mapping)
    def __getitem__(self, key: str) -> np.ndarray:
        i = self.index[key]
        if self._stack is not None:
            return self._stack[i]
        return self._file[str(i)][...]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)

    def close(self) -> None:
        """Release the scratch file (its values are gone; in-memory maps are kept)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._finalizer()

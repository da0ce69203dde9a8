"""A lazy H × W × B array: reads only the rows/columns that are sliced (float32 out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tissue_inn.errors import DataFileError

__all__ = ["LazyCube"]


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

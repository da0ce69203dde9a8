"""The files ``tissue-inn infer`` writes for one image: planned and checked before the inference starts,
written together at the end (all of them or none), never onto an input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.errors import TissueInnError

__all__ = ["OutputPlan", "input_files", "colour_range"]

#: Data files an ENVI header (``x.hdr``) may point at; they are inputs too.
_ENVI_DATA_SUFFIXES = ("", ".img", ".raw", ".dat", ".bin", ".bsq", ".bil", ".bip")


def input_files(image: Path, white: Any = None, dark: Any = None, snr: Any = None) -> dict[str, Path | None]:
    """Every file the command reads, labelled for messages (an ENVI header brings its data file along)."""
    out: dict[str, Path | None] = {"the input image": image}
    if image.suffix.lower() == ".hdr":
        for suffix in _ENVI_DATA_SUFFIXES:
            candidate = image.with_suffix(suffix)
            if candidate.exists():
                out[f"the input image's data file {candidate.name}"] = candidate
    for label, value in (("the --white reference", white), ("the --dark reference", dark),
                         ("the --snr map", snr)):
        if isinstance(value, str | Path) and Path(value).exists():
            out[label] = Path(value)
    return out


def colour_range(stat: str, bounds: np.ndarray | None) -> tuple[float | None, float | None]:
    """Fixed colour limits: the prior support for location stats of bounded parameters, [0, 1] for scores."""
    if stat in ("contraction", "multimodality"):
        return 0.0, 1.0
    if bounds is None:
        return None, None
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None, None
    if stat in ("mean", "median", "map", "q05", "q25", "q75", "q95"):
        return lo, hi
    if stat in ("std", "iqr"):
        return 0.0, (hi - lo) / 2.0
    return None, None


@dataclass
class OutputPlan:
    """The outputs of one image: HDF5 maps, and optionally TIFF, PNG files and a CSV of region statistics."""

    maps: Path
    tiff: Path | None = None
    csv: Path | None = None
    png: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def make(cls, maps: Path, tiff: Path | None, csv: Path | None, png_dir: Path | None,
             parameter_names, png_stats, predictive: bool) -> OutputPlan:
        png: dict[str, Path] = {}
        if png_dir is not None:
            png = {f"{n}/{s}": png_dir / f"{n}_{s}.png" for n in parameter_names for s in png_stats}
            if predictive:
                png["predictive/residual"] = png_dir / "predictive_residual.png"
        return cls(maps, tiff, csv, png)

    def labelled(self) -> dict[str, Path]:
        out = {"-o": self.maps}
        if self.tiff is not None:
            out["--tiff"] = self.tiff
        if self.csv is not None:
            out["--csv"] = self.csv
        for key, path in self.png.items():
            out[f"--png ({key})"] = path
        return out

    def paths(self) -> list[Path]:
        return list(self.labelled().values())

    def check(self, inputs: dict[str, Path | None], force: bool) -> None:
        """Before any work: outputs differ from each other and from every input, and can all be written."""
        from tissue_inn.atomic import check_not_inputs, check_writable

        paths = self.paths()
        if len({str(p.resolve()) for p in paths}) != len(paths):
            raise TissueInnError("output paths must differ")
        check_not_inputs(self.labelled(), inputs)
        for path in paths:
            check_writable(path, force=force)

    def write(self, res: Any, posterior: Any, force: bool, csv_rows=None) -> list[str]:
        """Write every planned output; they appear together at the end, or none does."""
        targets = self.paths()
        try:
            self._write_all(targets, res, posterior, force, csv_rows)
        except OSError as exc:
            raise TissueInnError(f"could not write the outputs ({exc.strerror or exc}); none was written "
                                 "(existing files are unchanged)") from exc
        return [str(p) for p in targets]

    def _write_all(self, targets: list[Path], res: Any, posterior: Any, force: bool, csv_rows) -> None:
        from tissue_inn.atomic import atomic_group
        from tissue_inn.io.maps import write_csv, write_map_png, write_maps_hdf5, write_maps_tiff

        with atomic_group(targets, force=force) as temps:
            tmp = dict(zip((str(p) for p in targets), temps))
            write_maps_hdf5(tmp[str(self.maps)], res.maps, attrs=res.attrs, mask=res.mask, units=res.units,
                            force=True)
            if self.tiff is not None:
                keys = ("model_name", "model_sha256", "source_path", "source_sha256", "n_draws", "seed", "device",
                        "created", "snr", "noise_level")
                extra = {k: res.attrs[k] for k in keys if k in res.attrs}
                write_maps_tiff(tmp[str(self.tiff)], res.maps, units=res.units, force=True, mask=res.mask,
                                extra=extra)
            if self.png:
                bounds = dict(zip(posterior.parameter_names, posterior.prior_bounds))
                for key, path in self.png.items():
                    param, stat = key.split("/", 1)
                    vmin, vmax = colour_range(stat, bounds.get(param))
                    if key == "predictive/residual":
                        vmin = 0.0
                    write_map_png(tmp[str(path)], res.maps[key], title=f"{param} — {stat}",
                                  unit=res.units.get(key, ""), vmin=vmin, vmax=vmax, mask=res.mask, force=True,
                                  cmap="magma" if stat in ("iqr", "std", "residual") else "viridis")
            if self.csv is not None:
                write_csv(tmp[str(self.csv)], csv_rows() if callable(csv_rows) else csv_rows, force=True)

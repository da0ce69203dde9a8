"""``tissue-inn infer``: posterior maps of a multispectral image .

Usage::

    tissue-inn infer IMAGE [--model M] [--draws N] [--seed S] [--roi x0,y0,x1,y1] [--dataset PATH]
                     [--wavelengths 470,480,...] [--white F --dark F] -o maps.h5 [--tiff maps.tif]
                     [--png DIR] [--csv stats.csv] [--predictive {median,none}] [--stats ...] [--force]
                     [--device auto|cpu|cuda]

``--roi`` is a rectangle in pixel coordinates, x = column, y = row, ``x1``/``y1`` exclusive. All
outputs are checked before the (long) inference starts: an existing file is only replaced with
``--force``. Every file is written atomically after the inference finished, so an interrupted run
(Ctrl-C) leaves no partial output.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from tissue_inn.cli.common import Command, drive
from tissue_inn.errors import TissueInnError

__all__ = ["COMMAND"]

_DEFAULT_PNG_STATS = ("median", "iqr")


def _parse_roi(text: str, h: int, w: int) -> np.ndarray:
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise TissueInnError(f"--roi {text!r}: expected four integers x0,y0,x1,y1 (columns x, rows y)") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise TissueInnError(f"--roi {text!r} lies outside the {w} × {h} (width × height) image or is empty")
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _parse_wavelengths(values: list[str] | None) -> list[float] | None:
    if not values:
        return None
    out: list[float] = []
    for v in values:
        for part in v.replace(",", " ").split():
            try:
                out.append(float(part))
            except ValueError:
                raise TissueInnError(f"--wavelengths: {part!r} is not a number") from None
    return out


def _colour_range(stat: str, key: str, bounds: np.ndarray | None) -> tuple[float | None, float | None]:
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image", type=Path, help="cube file: HDF5, .npy, TIFF or ENVI (.hdr); 'sample': the shipped sample image"
    )
    p.add_argument("--model", default=None, help="bundle folder or shipped model name (default: shipped default)")
    p.add_argument("--draws", type=int, default=1000, help="posterior draws per pixel (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (recorded in the output)")
    p.add_argument("--roi", default=None, help="rectangle x0,y0,x1,y1 (columns, rows; end exclusive)")
    p.add_argument("--dataset", default=None, help="HDF5 dataset path of the cube")
    p.add_argument("--wavelengths", nargs="+", default=None, help="band centres in nm (override the file's)")
    p.add_argument("--white", default=None, help="white reference file (raw → reflectance)")
    p.add_argument("--dark", default=None, help="dark reference file")
    p.add_argument("-o", "--output", required=True, type=Path, help="HDF5 map file to write")
    p.add_argument("--tiff", type=Path, default=None, help="also write a float32 multi-page TIFF")
    p.add_argument("--png", type=Path, default=None, help="folder for colour-mapped PNG maps")
    p.add_argument(
        "--png-stats",
        default=",".join(_DEFAULT_PNG_STATS),
        help="statistics drawn as PNG (comma list; default median,iqr)",
    )
    p.add_argument("--csv", type=Path, default=None, help="CSV of region statistics (ROI or all valid pixels)")
    p.add_argument("--stats", default=None, help="comma list of map statistics (default: all)")
    p.add_argument(
        "--predictive",
        choices=["median", "none"],
        default="median",
        help="re-simulate each pixel's posterior median (residual map; one forward solve per pixel)",
    )
    p.add_argument("--tile-pixels", type=int, default=65536, help="pixels read per strip (memory)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--force", action="store_true", help="replace existing outputs")


SAMPLE_NAME = "sample"


def resolve_image(path: Path) -> Path:
    """``sample`` (when no such file exists) names the shipped sample image; other paths are kept."""
    if str(path) == SAMPLE_NAME and not path.exists():
        from tissue_inn.config import resources_dir

        sample = resources_dir() / "samples" / "colon_sample.h5"
        if not sample.is_file():
            raise TissueInnError("the shipped sample image is missing from this installation; reinstall tissue_inn")
        return sample
    return path


def _png_paths(folder: Path, names, stats, predictive: bool) -> dict[str, Path]:
    out = {f"{n}/{s}": folder / f"{n}_{s}.png" for n in names for s in stats}
    if predictive:
        out["predictive/residual"] = folder / "predictive_residual.png"
    return out


def run(args: argparse.Namespace) -> int:
    from tissue_inn.atomic import check_writable
    from tissue_inn.inference.image import infer_image, region_statistics
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.inference.summaries import ALL_MAP_STATS
    from tissue_inn.io.cube import read_cube
    from tissue_inn.io.maps import write_csv, write_map_png, write_maps_hdf5, write_maps_tiff

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.draws < 2:
        raise TissueInnError("--draws must be ≥ 2")
    stats = tuple(s.strip() for s in args.stats.split(",") if s.strip()) if args.stats else ALL_MAP_STATS
    bad = set(stats) - set(ALL_MAP_STATS)
    if bad:
        raise TissueInnError(f"--stats: unknown {sorted(bad)}; choose from {','.join(ALL_MAP_STATS)}")
    png_stats = tuple(s.strip() for s in args.png_stats.split(",") if s.strip())
    bad = set(png_stats) - set(stats)
    if args.png is not None and bad:
        raise TissueInnError(f"--png-stats {sorted(bad)} are not among the computed --stats")
    predictive = None if args.predictive == "none" else "median"

    # check every output before the long run
    outputs = [args.output] + [p for p in (args.tiff, args.csv) if p is not None]
    if len({str(p.resolve()) for p in outputs}) != len(outputs):
        raise TissueInnError("output paths must differ")
    posterior = Posterior.from_bundle(args.model, device=args.device)
    png_files: dict[str, Path] = {}
    if args.png is not None:
        png_files = _png_paths(args.png, posterior.parameter_names, png_stats, predictive is not None)
        outputs += list(png_files.values())
    for path in outputs:
        check_writable(path, force=args.force)

    cube = read_cube(
        resolve_image(args.image),
        dataset=args.dataset,
        wavelengths_nm=_parse_wavelengths(args.wavelengths),
        white=args.white,
        dark=args.dark,
    )
    h, w, _ = cube.shape
    roi = _parse_roi(args.roi, h, w) if args.roi else None
    res = drive(
        infer_image(
            posterior,
            cube,
            n_draws=args.draws,
            seed=args.seed,
            roi_mask=roi,
            tile_pixels=args.tile_pixels,
            predictive=predictive,
            stats=stats,
        ),
        "infer",
        args.quiet,
        unit="px",
    )
    if roi is not None:
        res.attrs["roi_xyxy"] = args.roi
    res.attrs["command"] = "tissue-inn infer"

    write_maps_hdf5(args.output, res.maps, attrs=res.attrs, mask=res.mask, units=res.units, force=args.force)
    written = [str(args.output)]
    if args.tiff is not None:
        extra = {
            k: res.attrs[k]
            for k in (
                "model_name",
                "model_sha256",
                "source_path",
                "source_sha256",
                "n_draws",
                "seed",
                "device",
                "created",
            )
            if k in res.attrs
        }
        write_maps_tiff(args.tiff, res.maps, units=res.units, force=args.force, mask=res.mask, extra=extra)
        written.append(str(args.tiff))
    if png_files:
        bounds = dict(zip(posterior.parameter_names, posterior.prior_bounds))
        for key, path in png_files.items():
            param, stat = key.split("/", 1)
            vmin, vmax = _colour_range(stat, key, bounds.get(param))
            if key == "predictive/residual":
                vmin = 0.0
            unit = res.units.get(key, "")
            write_map_png(
                path,
                res.maps[key],
                title=f"{param} — {stat}",
                unit=unit,
                vmin=vmin,
                vmax=vmax,
                mask=res.mask,
                force=args.force,
                cmap="magma" if stat in ("iqr", "std", "residual") else "viridis",
            )
            written.append(str(path))
    if args.csv is not None:
        region = roi if roi is not None else np.ones((h, w), dtype=bool)
        rows = region_statistics(
            posterior,
            cube,
            {"roi" if roi is not None else "image": region},
            n_draws_per_pixel=min(64, args.draws),
            seed=args.seed,
            result=res,
        )
        write_csv(args.csv, rows, force=args.force)
        written.append(str(args.csv))
    print(
        json.dumps(
            {
                "outputs": written,
                "pixels_estimated": res.attrs["pixels_estimated"],
                "pixels_total": res.attrs["pixels_total"],
                "mask_reasons": res.mask_reasons,
                "seconds": res.attrs["seconds"],
                "device": res.attrs["device"],
            }
        )
    )
    return 0


COMMAND = Command("infer", "posterior maps of a multispectral image (HDF5/TIFF/PNG/CSV)", add_arguments, run)

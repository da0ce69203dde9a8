"""``tissue-inn infer``: posterior maps of a multispectral image, or of a whole study of images.

Usage::

    tissue-inn infer IMAGE [--model M] [--draws N] [--seed S] [--roi x0,y0,x1,y1] [--dataset PATH]
                     [--wavelengths 470,480,...] [--white F --dark F | --scale 0.01] -o maps.h5
                     [--tiff maps.tif] [--png DIR] [--csv stats.csv] [--predictive {median,none}]
                     [--stats ...] [--force] [--device auto|cpu|cuda]
    tissue-inn infer FOLDER | 'GLOB' | IMAGE IMAGE ... -o OUTDIR [--workers N] [...]

``--roi`` is a rectangle in pixel coordinates, x = column, y = row, ``x1``/``y1`` exclusive. All
outputs are checked before the (long) inference starts: an existing file is only replaced with
``--force``, and an input is never an output (not even with ``--force``). The files of one image
are written together after its inference finished, so an interrupted run (Ctrl-C) leaves no partial
output. Several images (a study) go to :mod:`tissue_inn.cli.infer_study`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.cli.common import Command, drive
from tissue_inn.errors import TissueInnError

__all__ = ["COMMAND", "resolve_image", "InferSettings"]

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image", type=Path, nargs="+",
        help="cube file (HDF5, .npy, TIFF or ENVI .hdr); 'sample': the shipped sample image. Several files, a "
        "folder or a quoted glob ('data/*.h5') make a study: one map file per image in the -o folder",
    )
    p.add_argument("--model", default=None, help="bundle folder or shipped model name (default: shipped default)")
    p.add_argument("--draws", type=int, default=256,
                   help="posterior draws per pixel of --kind exact (default 256). Cost grows with the draws: on 2 "
                   "idle CPU cores ≈ 0.3 ms/pixel at 64, 1.1 at 256, 4.2 at 1000 (the 256 × 256 sample image: "
                   "≈ 20 s, 75 s, 5 min; this command's OMP_WAIT_POLICY=PASSIVE, which keeps a shared machine "
                   "responsive, adds ≈ 30 %%: set OMP_WAIT_POLICY=ACTIVE on an idle one; a GPU is far faster)"),
    p.add_argument("--seed", type=int, default=0, help="random seed (recorded in the output)")
    p.add_argument("--roi", default=None, help="rectangle x0,y0,x1,y1 (columns, rows; end exclusive)")
    p.add_argument("--dataset", default=None, help="HDF5 dataset path of the cube")
    p.add_argument("--wavelengths", nargs="+", default=None, help="band centres in nm (override the file's)")
    p.add_argument("--white", default=None, help="white reference file (raw counts → reflectance)")
    p.add_argument("--dark", default=None, help="dark reference file (with --white)")
    p.add_argument("--scale", type=float, default=None,
                   help="factor turning the stored values into reflectance, e.g. 0.01 for percent")
    p.add_argument("--snr", default=None,
                   help="the measurement's signal-to-noise ratio: a number (20), one per band (20,25,...) or a "
                   "per-pixel SNR map file (.npy/.h5/.tif). Default: estimated from the data (repeated frames in "
                   "the file, else the image itself), reported with its uncertainty")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="HDF5 map file to write (a study: the folder for the map files and study_summary.csv)")
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
        help="re-simulate each pixel's posterior median (residual map and, with a misfit gate in the card, the "
        "'not explained' verdict). With the gate's surrogate ≈ +0.1 ms/pixel (≈ +5 s on the sample image); "
        "without a gate one forward solve per pixel, ≈ +2 ms/pixel (idle 2 cores)",
    )
    p.add_argument(
        "--kind", choices=["exact", "amortised"], default="exact",
        help="exact: statistics of the INN's --draws per pixel (the truth; cost grows with --draws, and the "
        "residual re-simulates each pixel); amortised: the bundle's quantile network, median and 5/25/75/95 %% "
        "quantiles in one pass (≈ 0.2 s for the sample image, 0.5 s for a 640 × 480 frame on 2 idle cores; "
        "no residual)",
    )
    p.add_argument("--tile-pixels", type=int, default=65536, help="pixels read per strip (memory)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workers", type=int, default=1,
                   help="a study: images analysed in parallel by this many processes (default 1). Under "
                   "torchrun each rank k takes images k, k+N, ...")
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


class InferSettings:
    """The checked settings of one ``infer`` run (shared by every image of a study)."""

    def __init__(self, args: argparse.Namespace):
        from tissue_inn.inference.summaries import ALL_MAP_STATS

        if args.draws < 2:
            raise TissueInnError("--draws must be ≥ 2")
        if args.scale is not None and not (np.isfinite(args.scale) and args.scale > 0):
            raise TissueInnError(f"--scale {args.scale}: must be a positive number (0.01 for percent)")
        if args.scale is not None and args.white is not None:
            raise TissueInnError("give either --scale or --white/--dark, not both")
        if args.dark is not None and args.white is None:
            raise TissueInnError("--dark needs --white (the white reference)")
        self.stats = tuple(s.strip() for s in args.stats.split(",") if s.strip()) if args.stats else ALL_MAP_STATS
        bad = set(self.stats) - set(ALL_MAP_STATS)
        if bad or not self.stats:
            raise TissueInnError(f"--stats: unknown {sorted(bad)}; choose from {','.join(ALL_MAP_STATS)}")
        if args.kind == "amortised":
            from tissue_inn.inference.map_result import AMORTISED_STATS

            if not args.stats:
                self.stats = AMORTISED_STATS
            elif set(self.stats) - set(AMORTISED_STATS):
                raise TissueInnError(f"--kind amortised makes only {','.join(AMORTISED_STATS)}; "
                                     f"{sorted(set(self.stats) - set(AMORTISED_STATS))} need --kind exact")
        self.png_stats = tuple(s.strip() for s in args.png_stats.split(",") if s.strip())
        bad = set(self.png_stats) - set(self.stats)
        if args.png is not None and bad:
            raise TissueInnError(f"--png-stats {sorted(bad)} are not among the computed --stats")
        # the residual re-simulates the median of each pixel's draws: exact maps only
        self.predictive = None if args.predictive == "none" or args.kind == "amortised" else "median"
        self.snr = None
        if args.snr is not None:
            from tissue_inn.inference.noise import parse_snr

            self.snr = parse_snr(args.snr, "--snr")
        self.wavelengths = _parse_wavelengths(args.wavelengths)
        self.args = args

    def fingerprint(self) -> dict[str, Any]:
        """What makes two runs' maps of one image the same (a study skips images done with these)."""
        a = self.args
        return {"draws": a.draws, "seed": a.seed, "roi": a.roi, "dataset": a.dataset, "wavelengths": self.wavelengths,
                "white": a.white, "dark": a.dark, "scale": a.scale, "stats": list(self.stats),
                "predictive": self.predictive, "snr": a.snr, "kind": a.kind}

    def read(self, image: Path):
        from tissue_inn.io.cube import read_cube

        a = self.args
        return read_cube(image, dataset=a.dataset, wavelengths_nm=self.wavelengths, white=a.white, dark=a.dark,
                         scale=a.scale)


def say_trust(model: Any) -> None:
    """Before a model's numbers are used: how far its intervals can be trusted (from its card's evaluation)."""
    import sys

    from tissue_inn.inference.trust import calibration_verdict
    from tissue_inn.io.bundle import read_card, resolve_model

    verdict = calibration_verdict(read_card(resolve_model(model)))
    if verdict.level != "ok":
        print(f"{'note' if verdict.level == 'unknown' else 'warning'}: {verdict.message}", file=sys.stderr)


def noise_level(posterior, image: Path, cube, settings: InferSettings, say) -> Any:
    """The SNR to analyse ``cube`` at: the one given (checked against the image), else estimated from the data
    (said so, with its uncertainty); a warning when it lies outside the model's trained range."""
    from tissue_inn.errors import SnrError
    from tissue_inn.inference.noise import check_snr_range, estimate_measurement_snr, parse_snr

    h, w, b = cube.shape
    spec = settings.snr
    if spec is not None:
        spec.check_shape(h, w, b)
    else:
        try:
            spec = estimate_measurement_snr(image, cube)
            say(f"note: no --snr given; {spec.describe()}" + (" (pass --snr to set it)" if spec.flags else ""))
        except SnrError as exc:  # e.g. a tiny image: fall back to the model's nominal SNR, and say so
            nominal = posterior.nominal_snr or 20.0
            spec = parse_snr(nominal, f"the model's nominal SNR (not estimated: {exc})")
            say(f"warning: no --snr given and the noise level cannot be estimated ({exc}); analysing at the "
                f"model's nominal SNR {nominal:g}; pass --snr to set it")
    problem = check_snr_range(spec, posterior.card, posterior.model_name)
    if problem is not None:
        say(f"warning: {problem}")
    return spec


def analyse(posterior, image: Path, settings: InferSettings, outputs, quiet: bool,
            before_write=None, say=None) -> tuple[Any, list[str]]:
    """Infer the maps of one image and write its outputs (checked by the caller); → (result, files).

    ``before_write(result)`` may add attributes to the result before the files are written; ``say(line)``
    reports notes and warnings (default: stderr).
    """
    import sys

    from tissue_inn.inference.image import infer_image, region_statistics

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    a = settings.args
    cube = settings.read(image)
    h, w, _ = cube.shape
    roi = _parse_roi(a.roi, h, w) if a.roi else None
    spec = noise_level(posterior, image, cube, settings, say)
    snr = spec.per_pixel(h, w) if spec.kind == "map" else spec.scalar()
    res = drive(
        infer_image(posterior, cube, n_draws=a.draws, seed=a.seed, roi_mask=roi, tile_pixels=a.tile_pixels,
                    predictive=settings.predictive, stats=settings.stats, snr=snr, kind=a.kind),
        "infer", quiet, unit="px",
    )
    from tissue_inn.inference.misfit import map_summary_line
    from tissue_inn.io.pixels import require_usable_pixels

    # never write an empty map: an image (or ROI) without one usable pixel is an error
    require_usable_pixels(res.mask_reasons, int(res.attrs["pixels_estimated"]),
                          name=f"{image}" + (f" (--roi {a.roi})" if a.roi else ""))

    verdict = map_summary_line(res.maps, res.attrs)  # "38 % of pixels are not explained by …"
    if verdict is not None:
        say(verdict)
    res.attrs["noise_level"] = spec.to_dict()  # where the SNR came from (given / estimated ± stderr / nominal)
    res.attrs["noise_level_text"] = spec.describe()
    if roi is not None:
        res.attrs["roi_xyxy"] = a.roi
    res.attrs["command"] = "tissue-inn infer"
    res.attrs["infer_settings"] = settings.fingerprint()
    if a.scale is not None:
        res.attrs["scale"] = a.scale

    if before_write is not None:
        before_write(res)

    def csv_rows():
        region = roi if roi is not None else np.ones((h, w), dtype=bool)
        return region_statistics(posterior, cube, {"roi" if roi is not None else "image": region},
                                 n_draws_per_pixel=min(64, a.draws), seed=a.seed, result=res)

    written = outputs.write(res, posterior, force=a.force, csv_rows=csv_rows if outputs.csv is not None else None)
    return res, written


def run(args: argparse.Namespace) -> int:
    from tissue_inn.cli.infer_outputs import OutputPlan, input_files
    from tissue_inn.cli.infer_study import is_study, run_study

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = InferSettings(args)
    if is_study(args.image):
        return run_study(args, settings)
    if args.workers != 1:
        raise TissueInnError("--workers spreads the images of a study; give a folder, a glob or several images")
    from tissue_inn.inference.posterior import Posterior

    image = resolve_image(args.image[0])
    posterior = Posterior.from_bundle(args.model, device=args.device)
    outputs = OutputPlan.make(args.output, args.tiff, args.csv, args.png, posterior.parameter_names,
                              settings.png_stats, settings.predictive is not None)
    outputs.check(input_files(image, args.white, args.dark, args.snr), force=args.force)  # before the long run
    say_trust(args.model)
    res, written = analyse(posterior, image, settings, outputs, args.quiet)
    print(
        json.dumps(
            {
                "outputs": written,
                "pixels_estimated": res.attrs["pixels_estimated"],
                "pixels_total": res.attrs["pixels_total"],
                "mask_reasons": res.mask_reasons,
                "seconds": res.attrs["seconds"],
                "device": res.attrs["device"],
                "snr": res.attrs["noise_level"],
                "pixels_not_explained": (res.attrs.get("misfit_gate") or {}).get("pixels_not_explained"),
            }
        )
    )
    return 0


COMMAND = Command("infer", "posterior maps of a multispectral image or a study (HDF5/TIFF/PNG/CSV)", add_arguments,
                  run)

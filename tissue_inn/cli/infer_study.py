"""``tissue-inn infer`` on a study: a folder, a glob or a list of images → one map file per image and a summary.

- Each image ``NAME.ext`` gets ``OUTDIR/NAME.maps.h5`` (written atomically, with full provenance).
- Resumable per image: an image whose map file exists and was made from the same image bytes, model and
  settings (the ``study_key`` attribute) is skipped; one made otherwise is only redone with ``--force``.
- ``OUTDIR/study_summary.csv``: one row per image (status, pixels, usable pixels, pixels flagged by the
  misfit gate when the model has one, and the distribution of each parameter's median map over the
  usable pixels); rebuilt from the map files at the end of every run.
- ``--workers N`` analyses N images at once in separate processes; under ``torchrun`` (``RANK`` and
  ``WORLD_SIZE`` set) rank k takes images k, k + N, …; with several GPUs each process takes one (local rank
  or worker k → GPU k mod n, see :func:`spread_device`). Every rank rebuilds the summary when it ends
  (the last to end writes the complete one; a rerun with the same arguments rebuilds it at no cost).
- A failing image does not stop the study: it is reported in the summary and the exit status is 2.
"""

from __future__ import annotations

import argparse
import functools
import glob
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.errors import TissueInnError

__all__ = ["is_study", "collect_images", "run_study", "SUMMARY_NAME"]

SUMMARY_NAME = "study_summary.csv"
MAPS_SUFFIX = ".maps.h5"
_GLOB_CHARS = set("*?[")


def _is_glob(spec: Path) -> bool:
    return not spec.exists() and bool(_GLOB_CHARS & set(str(spec)))


def is_study(specs: list[Path]) -> bool:
    """Several images, a folder or a glob pattern (rather than one image file)."""
    return len(specs) > 1 or specs[0].is_dir() or _is_glob(specs[0])


def _image_suffixes() -> set[str]:
    from tissue_inn.io.readers.registry import supported_suffixes

    return {s.lower() for suffixes in supported_suffixes().values() for s in suffixes}


def collect_images(specs: list[Path], exclude_folder: Path | None = None) -> list[Path]:
    """The image files named by ``specs`` (files, folders (their image files, not recursive), globs),
    in order, each once; files inside ``exclude_folder`` (the output folder) are left out."""
    suffixes = _image_suffixes()
    found: list[Path] = []
    for spec in specs:
        if spec.is_dir():
            found += sorted(p for p in spec.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                            and not p.name.endswith(MAPS_SUFFIX))
        elif _is_glob(spec):
            matches = sorted(Path(m) for m in glob.glob(str(spec), recursive=True))
            if not matches:
                raise TissueInnError(f"no file matches {str(spec)!r}")
            found += [m for m in matches if m.is_file() and not m.name.endswith(MAPS_SUFFIX)]
        elif spec.exists():
            found.append(spec)
        else:
            raise TissueInnError(f"{spec}: no such file or folder")
    excluded = os.path.realpath(exclude_folder) if exclude_folder is not None else None
    seen: set[str] = set()
    out: list[Path] = []
    for p in found:
        real = os.path.realpath(p)
        if real in seen or (excluded is not None and Path(real).is_relative_to(excluded)):
            continue
        seen.add(real)
        out.append(p)
    if not out:
        raise TissueInnError(f"no images found in {', '.join(map(str, specs))} (image files: {sorted(suffixes)})")
    return out


def map_paths(images: list[Path], outdir: Path) -> list[Path]:
    """``OUTDIR/<stem>.maps.h5``; stems that occur twice get a short hash of their path."""
    stems = [p.stem for p in images]
    out = []
    for p, stem in zip(images, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}_{hashlib.sha256(os.path.realpath(p).encode()).hexdigest()[:8]}"
        out.append(outdir / f"{stem}{MAPS_SUFFIX}")
    return out


def _file_sha(path: Any) -> str | None:
    if not isinstance(path, str | Path) or not Path(path).is_file():
        return None
    from tissue_inn.hashing import file_sha256

    return file_sha256(path)


def study_key(image: Path, model_sha256: str | None, settings: Any) -> str:
    """What makes a map file of ``image`` current: the image's bytes, the model, the settings."""
    a = settings.args
    parts = {"image": _file_sha(image), "model": model_sha256, "settings": settings.fingerprint(),
             "white": _file_sha(a.white), "dark": _file_sha(a.dark)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _read_study_attrs(path: Path) -> tuple[str | None, dict | None]:
    """The ``study_key`` and ``study_row`` of a map file (None, None when unreadable)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            key, row = fh.attrs.get("study_key"), fh.attrs.get("study_row")
    except (OSError, ValueError):
        return None, None
    key = key.decode() if isinstance(key, bytes) else key
    row = row.decode() if isinstance(row, bytes) else row
    try:
        return (str(key) if key is not None else None), (json.loads(row) if row else None)
    except ValueError:
        return str(key), None


def summary_row(res: Any) -> dict[str, Any]:
    """Per image: pixel counts, flagged pixels (misfit gate), each parameter's median map over usable pixels."""
    mask = np.asarray(res.mask, dtype=bool)
    row: dict[str, Any] = {"pixels": int(mask.size), "usable_pixels": int(mask.sum()),
                           "masked_pixels": int(mask.size - mask.sum()), "flagged_pixels": None}
    explained = next((k for k in res.maps if k.split("/")[-1] == "explained"), None)
    if explained is not None:
        row["flagged_pixels"] = int((mask & (np.asarray(res.maps[explained]) < 0.5)).sum())
    elif "pixels_flagged" in res.attrs:
        row["flagged_pixels"] = res.attrs["pixels_flagged"]
    snr = res.attrs.get("noise_level") or {}
    row["snr"] = snr.get("effective_snr")
    row["snr_stderr"] = snr.get("stderr")
    row["snr_source"] = snr.get("source")
    for name in res.parameter_names:
        values = res.maps.get(f"{name}/median")
        if values is None:
            continue
        v = np.asarray(values)[mask]
        v = v[np.isfinite(v)]
        q = np.quantile(v, [0.25, 0.5, 0.75]) if v.size else [np.nan] * 3
        row[f"{name}_median_q25"], row[f"{name}_median_median"], row[f"{name}_median_q75"] = (float(x) for x in q)
    return row


# ----------------------------------------------------------------------------------------- one image
@functools.lru_cache(maxsize=2)
def _posterior(model: str | None, device: str):
    from tissue_inn.inference.posterior import Posterior

    return Posterior.from_bundle(model, device=device)


def _analyse_one(image: str, out: str, args: argparse.Namespace) -> dict[str, Any]:
    """Analyse one image of the study (in this process or a worker); → a status record."""
    from tissue_inn.cli.infer import InferSettings, analyse
    from tissue_inn.cli.infer_outputs import OutputPlan, input_files

    t0 = time.monotonic()
    image_p, out_p = Path(image), Path(out)
    try:
        settings = InferSettings(args)
        posterior = _posterior(args.model, _process_device(args.device))
        key = study_key(image_p, posterior.model_sha256, settings)
        if out_p.exists():
            old_key, old_row = _read_study_attrs(out_p)
            if old_key == key and old_row is not None:
                return {"image": image, "status": "skipped (done before)", "row": old_row}
            if not args.force:
                raise TissueInnError(f"{out_p} exists but was made from another image, model or settings; "
                                     "pass --force to redo it")
        outputs = OutputPlan(out_p)
        outputs.check(input_files(image_p, args.white, args.dark, args.snr), force=True)

        def before_write(res):
            res.attrs["study_key"] = key
            res.attrs["study_row"] = summary_row(res)

        notes: list[str] = []
        res, _ = analyse(posterior, image_p, settings, outputs, quiet=True, before_write=before_write,
                         say=notes.append)
        return {"image": image, "status": "done", "row": res.attrs["study_row"],
                "seconds": round(time.monotonic() - t0, 2), "notes": notes}
    except (TissueInnError, OSError, ValueError) as exc:  # one bad image does not stop an unattended study
        return {"image": image, "status": "failed", "error": str(exc) or type(exc).__name__}


def spread_device(requested: str, n_gpus: int, local_rank: str | None = None, worker_index: int | None = None) -> str:
    """The device of one process of a study: with several GPUs, torchrun's local rank k (or worker k of the
    pool) takes GPU k mod n; a device given explicitly (``cpu``, ``cuda:1``) is kept.

    >>> spread_device("auto", 2, local_rank="3"), spread_device("cuda", 4, worker_index=1)
    ('cuda:1', 'cuda:1')
    >>> spread_device("auto", 0, local_rank="3"), spread_device("cpu", 2, worker_index=1)
    ('auto', 'cpu')
    """
    if requested not in ("auto", "cuda") or n_gpus < 1:
        return requested
    if local_rank is not None and local_rank.strip().isdigit():
        return f"cuda:{int(local_rank) % n_gpus}"
    if worker_index is not None:
        return f"cuda:{worker_index % n_gpus}"
    return requested


_WORKER_DEVICE_ENV = "TISSUE_INN_STUDY_DEVICE"


def _process_device(requested: str) -> str:
    """This process's device: the one its pool worker was given, else the torchrun rank's, else ``requested``."""
    given = os.environ.get(_WORKER_DEVICE_ENV)
    if given:
        return given
    if requested in ("auto", "cuda") and os.environ.get("LOCAL_RANK") is not None:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return spread_device(requested, n, local_rank=os.environ.get("LOCAL_RANK"))
    return requested


def _worker_init(threads: int, counter, requested: str) -> None:
    import torch

    torch.set_num_threads(threads)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    os.environ[_WORKER_DEVICE_ENV] = spread_device(requested, n, worker_index=index)


def make_pool(workers: int, threads: int, device: str = "auto"):
    """Worker processes (spawned: a fresh interpreter each, safe with torch's threads), ``threads`` torch
    threads each; with several GPUs worker k uses GPU k mod n."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(threads, ctx.Value("i", 0), device))


# ----------------------------------------------------------------------------------------- the study
def _rank_world() -> tuple[int, int]:
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 and 0 <= rank < world else (0, 1)


def run_study(args: argparse.Namespace, settings: Any) -> int:
    from tissue_inn.io.maps import write_csv

    for flag in ("tiff", "png", "csv"):
        if getattr(args, flag) is not None:
            raise TissueInnError(f"--{flag} is for one image; a study writes one map file per image into the -o "
                                 "folder and a summary table (study_summary.csv)")
    if args.workers < 1:
        raise TissueInnError("--workers must be ≥ 1")
    outdir = args.output
    if outdir.exists() and not outdir.is_dir():
        raise TissueInnError(f"-o {outdir}: a study needs an output folder, and this is a file")
    images = collect_images(list(args.image), exclude_folder=outdir)
    outs = map_paths(images, outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if not os.access(outdir, os.W_OK):
        raise TissueInnError(f"cannot write to folder {outdir}: permission denied; choose another output folder")
    from tissue_inn.cli.infer import say_trust

    say_trust(args.model)
    rank, world = _rank_world()
    mine = list(range(rank, len(images), world))
    say = (lambda *_: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    say(f"study: {len(images)} images → {outdir}" + (f" (rank {rank} of {world}: {len(mine)})" if world > 1 else ""))
    records: dict[int, dict[str, Any]] = {}

    def report(i: int, rec: dict[str, Any]) -> None:
        records[i] = rec
        detail = rec.get("error") or (f"{rec['row']['usable_pixels']} of {rec['row']['pixels']} pixels"
                                      + (f", {rec['seconds']} s" if "seconds" in rec else ""))
        say(f"[{len(records)}/{len(mine)}] {images[i]}: {rec['status']} ({detail})")
        for note in rec.get("notes", []):
            say(f"  {note}")

    if args.workers == 1 or len(mine) <= 1:
        for i in mine:
            report(i, _analyse_one(str(images[i]), str(outs[i]), args))
    else:
        from concurrent.futures import as_completed

        threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
        clean = argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.startswith("_")})
        pool = make_pool(args.workers, threads, args.device)
        try:
            futures = {pool.submit(_analyse_one, str(images[i]), str(outs[i]), clean): i for i in mine}
            for fut in as_completed(futures):
                report(futures[fut], fut.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()

    rows = []
    for i, (image, out) in enumerate(zip(images, outs)):
        rec = records.get(i)
        if rec is None:  # another rank's image, or not reached: whatever its map file says
            _key, row = _read_study_attrs(out) if out.exists() else (None, None)
            rec = {"status": "done" if row else "pending", "row": row or {}}
        rows.append({"image": str(image), "map_file": str(out) if rec.get("row") else "",
                     "status": rec["status"], "error": rec.get("error", ""), **(rec.get("row") or {})})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = [{c: r.get(c, "") for c in columns} for r in rows]
    summary = outdir / SUMMARY_NAME
    write_csv(summary, table, force=True)
    failed = [r for r in rows if r["status"] == "failed"]
    done = sum(1 for r in rows if r["status"] != "failed" and r["status"] != "pending")
    print(json.dumps({"summary": str(summary), "images": len(images), "done": done, "failed": len(failed),
                      "analysed_now": sum(1 for r in records.values() if r["status"] == "done")}))
    if failed:
        raise TissueInnError(f"{len(failed)} of {len(images)} images failed (first: {failed[0]['image']}: "
                             f"{failed[0]['error']}); the others are done, see {summary}")
    return 0

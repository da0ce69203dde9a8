"""Seeded, resumable, shardable generation of simulated training data.

The ``n`` samples are cut into fixed blocks of ``block_size``; block ``b`` draws its parameters
from a generator seeded by ``(seed, b)`` (NumPy ``SeedSequence``), so a dataset is identical
whether it is made in one run, resumed after an interruption, or made as shards on several
machines and merged.

HDF5 schema (one file per run or shard)::

    x   [N, D] float64   parameters in physical units (tissue parameter order)
    y   [N, B] float32   noise-free band reflectance (noise belongs to training)
    attrs: parameter_names, parameter_units, band_centers_nm, tissue (JSON), camera (JSON),
           solver (JSON), seed, n_total, block_size, sample_start, sample_stop, shard,
           package_version, created
    blocks_done [n_blocks] uint8   (resume bookkeeping; all ones in a finished file)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from tissue_inn import __version__
from tissue_inn.atomic import check_writable
from tissue_inn.config import Camera, TissueModel
from tissue_inn.errors import Cancelled, DataFileError, OutputExistsError, TissueInnError
from tissue_inn.optics.forward import ForwardModel, SolverSettings
from tissue_inn.progress import Progress, RateEstimator, ShouldStop

__all__ = ["block_generator", "simulate_dataset", "merge_shards", "parse_shard", "SimulationResult"]

DEFAULT_BLOCK_SIZE = 1024


@dataclass(frozen=True)
class SimulationResult:
    path: Path
    n_samples: int
    seconds: float
    resumed_from: int


def block_generator(seed: int, block: int) -> torch.Generator:
    """The generator that draws block ``block`` of a dataset with seed ``seed``."""
    state = np.random.SeedSequence([int(seed), int(block)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"k/n"`` → (k, n), 0 ≤ k < n. ``None`` → (0, 1)."""
    if text is None:
        return (0, 1)
    try:
        k_str, n_str = text.split("/")
        k, n = int(k_str), int(n_str)
    except ValueError:
        raise TissueInnError(f"--shard must look like k/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise TissueInnError(f"--shard {text}: need 0 <= k < n")
    return (k, n)


def _block_range(n_total: int, block_size: int, shard: tuple[int, int]) -> tuple[int, int]:
    n_blocks = -(-n_total // block_size)
    k, n = shard
    return (k * n_blocks // n, (k + 1) * n_blocks // n)


def _attrs(tissue: TissueModel, camera: Camera, settings: SolverSettings, seed: int, n_total: int,
           block_size: int, shard: tuple[int, int], start: int, stop: int) -> dict:
    return {
        "parameter_names": json.dumps(list(tissue.parameter_names)),
        "parameter_units": json.dumps(list(tissue.parameter_units)),
        "band_centers_nm": np.asarray(camera.band_centers_nm, dtype=np.float64),
        "tissue": json.dumps(tissue.to_dict()),
        "camera": json.dumps(camera.to_dict()),
        "solver": json.dumps(settings.to_dict()),
        "seed": int(seed),
        "n_total": int(n_total),
        "block_size": int(block_size),
        "sample_start": int(start),
        "sample_stop": int(stop),
        "shard": f"{shard[0]}/{shard[1]}",
        "package_version": __version__,
    }


_IDENTITY_KEYS = ("tissue", "camera", "solver", "seed", "n_total", "block_size", "sample_start", "sample_stop")


def simulate_dataset(
    tissue: TissueModel,
    camera: Camera,
    n_total: int,
    seed: int,
    out_path: str | os.PathLike,
    *,
    shard: tuple[int, int] = (0, 1),
    settings: SolverSettings | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    force: bool = False,
    device: str = "cpu",
    should_stop: ShouldStop = None,
) -> Generator[Progress, None, SimulationResult]:
    """Simulate ``n_total`` (or this shard's part of them) prior draws and write them to HDF5.

    Work goes to ``<out>.partial``; re-running the same command resumes from the blocks already
    done; the finished file is renamed into place. Yields :class:`Progress`, returns
    :class:`SimulationResult`.
    """
    if n_total <= 0:
        raise TissueInnError(f"-n must be positive, got {n_total}")
    settings = settings or SolverSettings()
    out_path = Path(out_path)
    if out_path.exists() and not force:
        raise OutputExistsError(f"{out_path} already exists; pass --force to replace it")
    check_writable(out_path, force=True)
    partial = out_path.with_name(out_path.name + ".partial")
    b0, b1 = _block_range(n_total, block_size, shard)
    if b1 <= b0:
        total = -(-n_total // block_size)
        raise TissueInnError(
            f"shard {shard[0]}/{shard[1]} gets no samples: {n_total} samples make {total} block(s) of "
            f"{block_size}, fewer than the {shard[1]} shards; use at most {total} shard(s) or more samples"
        )
    start, stop = b0 * block_size, min(b1 * block_size, n_total)
    n_local = max(stop - start, 0)
    attrs = _attrs(tissue, camera, settings, seed, n_total, block_size, shard, start, stop)
    n_blocks = b1 - b0

    resumed_from = 0
    if partial.exists():
        try:
            with h5py.File(partial, "r") as f:
                same = all(_same(f.attrs.get(k), attrs[k]) for k in _IDENTITY_KEYS)
                done = int(np.asarray(f["blocks_done"]).sum()) if same else 0
        except (OSError, KeyError):
            same = False
        if not same:
            partial.unlink()  # a leftover from a different command: start over
        else:
            resumed_from = done
    if not partial.exists():
        with h5py.File(partial, "w") as f:
            for k, v in attrs.items():
                f.attrs[k] = v
            d, b = len(tissue.parameter_names), camera.n_bands
            chunk = (min(block_size, max(n_local, 1)),)
            f.create_dataset("x", (n_local, d), dtype="f8", chunks=chunk + (d,), compression="gzip", shuffle=True)
            f.create_dataset("y", (n_local, b), dtype="f4", chunks=chunk + (b,), compression="gzip", shuffle=True)
            f.create_dataset("blocks_done", (n_blocks,), dtype="u1")

    forward = ForwardModel(tissue, camera, settings, device=device)
    t0 = time.monotonic()
    with h5py.File(partial, "r+") as f:
        blocks_done = np.asarray(f["blocks_done"])
        done_samples = int(sum(min(block_size, stop - (b0 + i) * block_size) for i in np.flatnonzero(blocks_done)))
        clock = RateEstimator(n_local, already_done=done_samples)
        yield Progress("simulate", done_samples, n_local, "resuming" if done_samples else "starting")
        for i in range(n_blocks):
            if blocks_done[i]:
                continue
            if should_stop is not None and should_stop():
                raise Cancelled(f"simulation stopped; re-run the same command to resume from {partial}")
            b = b0 + i
            lo = b * block_size
            hi = min(lo + block_size, n_total)
            gen = block_generator(seed, b)
            x = tissue.sample_prior(hi - lo, gen)
            with torch.inference_mode():
                y = forward.bands(x).cpu().numpy()
            if not np.all(np.isfinite(y)):
                raise TissueInnError(f"forward model produced non-finite reflectance in block {b}; report this bug")
            f["x"][lo - start:hi - start] = x.numpy()
            f["y"][lo - start:hi - start] = y.astype(np.float32)
            f["blocks_done"][i] = 1
            f.flush()
            done_samples += hi - lo
            rate = clock.rate(done_samples)
            yield Progress("simulate", done_samples, n_local, f"{rate:.0f} spectra/s", {"rate": rate})
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if out_path.exists() and force:
        out_path.unlink()
    os.replace(partial, out_path)
    return SimulationResult(out_path, n_local, time.monotonic() - t0, resumed_from)


def _same(a, b) -> bool:
    if a is None:
        return False
    if isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), b)
    if isinstance(a, bytes):
        a = a.decode()
    return a == b


def merge_shards(paths: list[str | os.PathLike], out_path: str | os.PathLike, force: bool = False) -> Path:
    """Join shards of one simulation (same tissue, camera, solver, seed, size) into one file."""
    from tissue_inn.atomic import atomic_path

    if not paths:
        raise TissueInnError("merge needs at least one shard file")
    infos = []
    for p in paths:
        try:
            with h5py.File(p, "r") as f:
                a = {k: f.attrs[k] for k in f.attrs}
                if "blocks_done" in f and not np.all(np.asarray(f["blocks_done"])):
                    raise DataFileError(f"{p}: shard is unfinished; re-run its simulate command first")
                infos.append((int(a["sample_start"]), int(a["sample_stop"]), Path(p), a))
        except OSError as exc:
            raise DataFileError(f"{p}: cannot read as HDF5 ({exc})") from None
        except KeyError as exc:
            raise DataFileError(f"{p}: not a tissue_inn simulation file (missing {exc})") from None
    infos.sort(key=lambda t: t[0])
    ref = infos[0][3]
    for _, _, p, a in infos[1:]:
        for key in ("tissue", "camera", "solver", "seed", "n_total", "block_size"):
            if not _same(a.get(key), ref[key]):
                raise DataFileError(f"{p}: '{key}' differs from {infos[0][2]}; shards must come from one simulation")
    pos = 0
    for s, e, p, _ in infos:
        if s != pos:
            raise DataFileError(f"shards do not tile the sample range: expected a shard starting at {pos}, "
                                f"found {p} starting at {s}")
        pos = e
    n_total = int(ref["n_total"])
    if pos != n_total:
        raise DataFileError(f"shards cover samples 0..{pos} of {n_total}; the rest is missing")
    with atomic_path(out_path, force=force) as tmp:
        with h5py.File(tmp, "w") as out:
            for k, v in ref.items():
                out.attrs[k] = v
            out.attrs["sample_start"] = 0
            out.attrs["sample_stop"] = n_total
            out.attrs["shard"] = "0/1"
            out.attrs["merged_from"] = json.dumps([str(p) for _, _, p, _ in infos])
            xs, ys = [], []
            for _, _, p, _ in infos:
                with h5py.File(p, "r") as f:
                    xs.append(np.asarray(f["x"]))
                    ys.append(np.asarray(f["y"]))
            x, y = np.concatenate(xs), np.concatenate(ys)
            bs = int(ref["block_size"])
            out.create_dataset("x", data=x, chunks=(min(bs, len(x)), x.shape[1]), compression="gzip", shuffle=True)
            out.create_dataset("y", data=y, chunks=(min(bs, len(y)), y.shape[1]), compression="gzip", shuffle=True)
            out.create_dataset("blocks_done", data=np.ones(-(-n_total // bs), dtype=np.uint8))
    return Path(out_path)

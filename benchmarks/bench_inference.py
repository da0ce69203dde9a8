"""Inference benchmark: click latency, map throughput, matmul efficiency, streaming memory, map accuracy.

Usage:
    python benchmarks/bench_inference.py [--model models/colon_default] [--quick] [--threads 2]
                                         [--big-size 2048] [--big-draws 8] [--device cpu]

Prints (and ends with one JSON line):
    click latency     ``Posterior.pixel(y, n_draws=4096, predictive_draws=0)``, median over ≥ 50 calls
                      (target ≤ 30 ms on 2 CPU cores); the sampling-only part is shown too.
    throughput        posterior samples/s while mapping the shipped sample image at 256 draws/pixel
                      (all statistics, no predictive re-simulation).
    matmul fraction   the throughput divided by that of a plain chain of ``torch.matmul`` with the
                      network's own linear-layer shapes at the same batch size (same threads): how
                      close the engine gets to the machine's dense-math speed for this network.
    peak RSS          of a subprocess that streams a synthetic 2048 × 2048 × 8 ``.npy`` memmap through
                      ``infer_image`` (``--big-draws`` draws, statistics median/iqr/map; target ≤ 2 GB).
    MAE               per parameter, posterior-median map vs ground truth on the sample image (valid
                      pixels), next to the MAE of always answering the prior median (the no-skill level).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[1]


def _linear_shapes(module: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def _matmul_chain_rate(shapes: list[tuple[int, int]], batch: int, repeats: int) -> float:
    """Rows/s of a chain of float32 matmuls + bias (the network's linear layers) at ``batch`` rows."""
    gen = torch.Generator().manual_seed(0)
    ws = [torch.randn(i, o, generator=gen) * (1.0 / i**0.5) for i, o in shapes]
    bs = [torch.zeros(o) for _, o in shapes]
    xs = {i: torch.randn(batch, i, generator=gen) for i, _ in shapes}
    with torch.inference_mode():
        for w, b, (i, _) in zip(ws, bs, shapes):
            torch.addmm(b, xs[i], w)
        t0 = time.perf_counter()
        for _ in range(repeats):
            for w, b, (i, _) in zip(ws, bs, shapes):
                torch.addmm(b, xs[i], w)
        dt = time.perf_counter() - t0
    return batch * repeats / dt


def _write_big_cube(path: Path, size: int) -> None:
    """A synthetic ``size × size × 8`` float32 .npy memmap of plausible spectra, written in row blocks."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(size, size, 8))
    base = np.linspace(0.05, 0.5, 8, dtype=np.float32)
    rng = np.random.default_rng(0)
    for r0 in range(0, size, 256):
        r1 = min(size, r0 + 256)
        arr[r0:r1] = base * rng.uniform(0.6, 1.4, size=(r1 - r0, size, 1)).astype(np.float32)
    arr.flush()
    del arr


def _big_run(model: str, cube_path: str, draws: int, device: str, threads: int) -> None:
    """Child process: stream the cube through ``infer_image``; print peak RSS (JSON)."""
    import resource

    from tissue_inn.inference.image import infer_image
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.io.cube import read_cube
    from tissue_inn.progress import run_to_completion

    torch.set_num_threads(threads)
    post = Posterior.from_bundle(model, device=device)
    cube = read_cube(cube_path, wavelengths_nm=list(post.band_centers_nm))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = run_to_completion(infer_image(post, cube, n_draws=draws, predictive=None, stats=("median", "iqr", "map")))
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak, 1),
                "rss_before_mb": round(rss_before, 1),
                "seconds": round(dt, 1),
                "pixels": int(res.mask.sum()),
                "draws": draws,
                "size": cube.shape[0],
            }
        )
    )


def _big(args, big_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        _write_big_cube(path, big_size)
        cmd = [
            sys.executable,
            __file__,
            "--_big-child",
            str(path),
            "--model",
            args.model,
            "--big-draws",
            str(args.big_draws),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"error": proc.stderr[-300:]}
    big = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"peak RSS streaming {big_size}×{big_size}×8 ({args.big_draws} draws, median/iqr/map maps): "
        f"{big['peak_rss_mb']:.0f} MB (after loading, before mapping {big['rss_before_mb']:.0f} MB; "
        f"{big['seconds']} s; target ≤ 2048 MB)"
    )
    return big


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "colon_default"))
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller big cube (512²)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (target figures: 2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample", default=str(ROOT / "resources" / "samples" / "colon_sample.h5"))
    p.add_argument("--big-size", type=int, default=None, help="side of the synthetic cube (default 2048; quick 512)")
    p.add_argument("--big-draws", type=int, default=8)
    p.add_argument("--skip-big", action="store_true", help="skip the big-cube memory run")
    p.add_argument("--only-big", action="store_true", help="run only the big-cube memory run")
    p.add_argument("--_big-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    big_size = args.big_size or (512 if args.quick else 2048)
    if args._big_child:
        _big_run(args.model, args._big_child, args.big_draws, args.device, args.threads)
        return 0
    if args.only_big:
        print(json.dumps({"big": _big(args, big_size)}))
        return 0

    from tissue_inn.inference.image import infer_image
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.io.cube import read_cube
    from tissue_inn.progress import run_to_completion

    torch.set_num_threads(args.threads)
    post = Posterior.from_bundle(args.model, device=args.device)
    out: dict = {
        "model": args.model,
        "device": post.device,
        "threads": args.threads,
        "quick": args.quick,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    print(f"model {args.model} on {post.device}, {args.threads} threads")

    cube = read_cube(args.sample)
    h, w, _ = cube.shape
    y = cube.tile(h // 2, h // 2 + 1, w // 4, w // 4 + 1)[0, 0].astype(np.float64)

    # 1. click latency
    n_calls = 20 if args.quick else 60
    for _ in range(3):
        post.pixel(y, n_draws=4096, predictive_draws=0)
    t_pixel, t_sample = [], []
    for i in range(n_calls):
        t0 = time.perf_counter()
        post.pixel(y, n_draws=4096, seed=i, predictive_draws=0)
        t_pixel.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        post.sample(y, 4096, seed=i)
        t_sample.append(time.perf_counter() - t0)
    out["click_latency_ms_median"] = round(1e3 * statistics.median(t_pixel), 2)
    out["click_sampling_only_ms_median"] = round(1e3 * statistics.median(t_sample), 2)
    print(
        f"click latency (4096 draws, summaries, median of {n_calls}): {out['click_latency_ms_median']} ms "
        f"(sampling alone {out['click_sampling_only_ms_median']} ms; target ≤ 30 ms on 2 cores)"
    )

    # 2. throughput over the sample image at 256 draws/pixel
    draws = 256
    t0 = time.perf_counter()
    res = run_to_completion(infer_image(post, cube, n_draws=draws, predictive=None))
    dt = time.perf_counter() - t0
    n_samples = int(res.mask.sum()) * draws
    out["throughput_samples_per_s"] = round(n_samples / dt)
    out["throughput_network_reduce_samples_per_s"] = round(res.attrs["samples_per_second"] or 0)
    out["map_seconds"] = round(dt, 2)
    print(
        f"throughput (sample image {h}×{w}, {draws} draws/pixel, all stats): {out['throughput_samples_per_s']:,} "
        f"samples/s end to end ({dt:.1f} s)"
    )

    # 3. same as a fraction of a plain matmul chain with the network's layer shapes
    shapes = _linear_shapes(post.estimator.net)
    batch = post.unit_pixels(draws) * draws
    mm_rate = _matmul_chain_rate(shapes, batch, 5 if args.quick else 20)
    out["matmul_chain_rows_per_s"] = round(mm_rate)
    out["throughput_fraction_of_matmul"] = round(n_samples / dt / mm_rate, 3)
    out["linear_layers"] = len(shapes)
    print(
        f"matmul chain of the network's {len(shapes)} linear layers at batch {batch}: {mm_rate:,.0f} rows/s → "
        f"engine reaches {out['throughput_fraction_of_matmul']:.1%} of it"
    )

    # 4. accuracy on the sample image
    mae, mae_prior = {}, {}
    gt = cube.ground_truth or {}
    prior_median: dict[str, float] = {}
    from tissue_inn.config import TissueModel

    tissue = TissueModel.from_dict(post.card["tissue"]) if post.card.get("tissue") else None
    for d, name in enumerate(post.parameter_names):
        if name not in gt:
            continue
        m = res.mask
        mae[name] = float(np.mean(np.abs(res.maps[f"{name}/median"][m] - gt[name][m])))
        if tissue is not None:
            prior = tissue.parameters[d].prior
            draws_p = prior.sample(20000, torch.Generator().manual_seed(0)).numpy()
            prior_median[name] = float(np.median(draws_p))
            mae_prior[name] = float(np.mean(np.abs(prior_median[name] - gt[name][m])))
    out["median_map_mae"] = {k: round(v, 5) for k, v in mae.items()}
    out["prior_median_mae"] = {k: round(v, 5) for k, v in mae_prior.items()}
    print("median-map MAE vs ground truth (prior-median MAE = no skill):")
    for name in mae:
        print(
            f"  {name:8s} {mae[name]:10.4g}   (no skill {mae_prior.get(name, float('nan')):10.4g}) [{post.units[name]}]"
        )

    # 5. peak RSS while streaming a big cube (subprocess for a clean peak)
    if not args.skip_big:
        out["big"] = _big(args, big_size)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Inference benchmark: click latency, exact maps against the machine's matmul rate, amortised VGA maps,
streaming memory, the cost of the defaults, map accuracy.

Usage:
    python benchmarks/bench_inference.py [--model colon_default] [--threads 2] [--repeats 5] [--quick]
        [--skip-big | --only-big] [--big-size 2048] [--big-draws 8] [--device cpu]
        [--defaults] [--vga-exact] [--draws 256]

The machine may be shared: every figure is the median of ``--repeats`` runs with its min–max spread,
and the load average (``uptime``) is printed before and after. Ratios are measured back to back.
Run it without ``OMP_WAIT_POLICY=PASSIVE`` (it makes multi-threaded runs 3× slower, see the note it prints).

    click latency     ``Posterior.pixel(y, n_draws=4096, predictive_draws=0)`` (summaries and, when
                      the card has one, the misfit verdict), median of ≥ 30 calls; target ≤ 30 ms on an
                      idle 2-core machine.
    engine/matmul     posterior samples/s of an exact map (rows of the sample image, 256 draws, all
                      statistics, no residual) divided by the rows/s of a plain chain of the network's
                      own linear layers (``F.linear`` with its weights, same rows; the faster of the
                      network's chunking and 1,024-row chunks), each repeat measuring both back to back;
                      target ≥ 70 %. The network alone (sampling, no statistics) is shown too.
    amortised VGA     a 640 × 480 × 8 cube through the amortised quantile network (median, IQR and
                      the 5/25/75/95 % maps of every parameter), end to end; target ≤ 3 s on 2 cores.
    peak RSS          subprocess streaming a synthetic 2048 × 2048 × 8 ``.npy`` through ``infer_image``
                      with the CLI's default statistics (all 11), ``--big-draws`` draws, no residual;
                      target ≤ 2 GB.
    cancel            seconds from ``should_stop()`` turning True to the partial result; target ≤ 1 s.
    --defaults        seconds to a first map of the sample image: amortised, preview, exact at
                      32/64/128/256/1000 draws, and the per-pixel cost of the residual (solver; the misfit
                      gate's surrogate when the card has one): the figures behind ``infer --help``.
    --vga-exact       VGA × ``--draws`` exact map end to end on ``--device`` (the GPU figure; target ≤ 2 s).
    MAE               per parameter, median map vs ground truth on the sample image.
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


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _spread(values: list[float], scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    v = sorted(x * scale for x in values)
    return f"{fmt.format(statistics.median(v))} (min {fmt.format(v[0])}, max {fmt.format(v[-1])}, n={len(v)})"


def _matmul_chain_seconds(net: torch.nn.Module, rows: int, chunk: int) -> float:
    """Seconds for ``rows`` rows through every linear layer of ``net`` (its own weights), ``chunk`` rows at a time."""
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    gen = torch.Generator().manual_seed(0)
    xs = {m.in_features: torch.randn(chunk, m.in_features, generator=gen) for m in linears}
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(max(1, rows // chunk)):
            for m in linears:
                torch.nn.functional.linear(xs[m.in_features], m.weight, m.bias)
        return time.perf_counter() - t0


def _vga_cube(cube, h: int = 480, w: int = 640) -> np.ndarray:
    """A VGA cube tiled from the sample image's spectra (realistic values)."""
    src = np.asarray(cube.tile(0, cube.shape[0], 0, cube.shape[1]), dtype=np.float32)
    reps = (-(-h // src.shape[0]), -(-w // src.shape[1]), 1)
    return np.ascontiguousarray(np.tile(src, reps)[:h, :w])


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
    """Child process: stream the cube through ``infer_image`` (the CLI's default statistics); print peak RSS."""
    import resource

    from tissue_inn.inference.image import infer_image
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.inference.summaries import ALL_MAP_STATS
    from tissue_inn.io.cube import read_cube
    from tissue_inn.progress import run_to_completion

    torch.set_num_threads(threads)
    post = Posterior.from_bundle(model, device=device)
    cube = read_cube(cube_path, wavelengths_nm=list(post.band_centers_nm))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = run_to_completion(infer_image(post, cube, n_draws=draws, predictive=None, stats=ALL_MAP_STATS))
    with tempfile.TemporaryDirectory() as tmp:
        res.save_hdf5(Path(tmp) / "maps.h5")
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss_before, 1), "seconds": round(dt, 1),
                      "pixels": int(res.mask.sum()), "draws": draws, "size": cube.shape[0],
                      "maps": len(res.maps), "on_disk": res.attrs["maps_on_disk_while_computing"]}))


def _big(args, big_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        _write_big_cube(path, big_size)
        cmd = [sys.executable, __file__, "--_big-child", str(path), "--model", args.model, "--big-draws",
               str(args.big_draws), "--device", args.device, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"error": proc.stderr[-300:]}
    big = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"peak RSS mapping {big_size}×{big_size}×8 ({args.big_draws} draws, the CLI's default statistics: "
          f"{big['maps']} maps, streamed to disk: {big['on_disk']}, then written to HDF5): {big['peak_rss_mb']:.0f} MB "
          f"(after loading {big['rss_before_mb']:.0f} MB; {big['seconds']} s; target ≤ 2048 MB)")
    return big


def _click(post, y, n_calls: int) -> dict:
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
    print(f"click latency (4096 draws, summaries{', misfit verdict' if 'misfit_gate' in post.card else ''}): "
          f"{_spread(t_pixel, 1e3)} ms; sampling alone {_spread(t_sample, 1e3)} ms (target ≤ 30 ms, idle 2 cores)")
    return {"click_ms": round(1e3 * statistics.median(t_pixel), 2),
            "click_ms_min_max": [round(1e3 * min(t_pixel), 2), round(1e3 * max(t_pixel), 2)],
            "click_sampling_ms": round(1e3 * statistics.median(t_sample), 2)}


def _engine_vs_matmul(post, cube, draws: int, repeats: int, rows_strip: int) -> dict:
    from tissue_inn.inference.image import infer_image
    from tissue_inn.inn.network import EVAL_CHUNK_ROWS, eval_chunk_rows
    from tissue_inn.progress import run_to_completion

    def matmul_seconds(n_rows: int) -> float:
        # The faster of the network's own chunking and the one-thread L2-sized chunks: the reference
        # is the machine's best matmul rate for these layer shapes, not one the chunking slowed down.
        return min(_matmul_chain_seconds(net, n_rows, chunk) for chunk in {EVAL_CHUNK_ROWS, net_chunk})

    strip = np.asarray(cube.tile(0, rows_strip, 0, cube.shape[1]), dtype=np.float32)
    net = post.estimator.net
    net_chunk = eval_chunk_rows(net.network.dim // 2)
    y = torch.as_tensor(strip.reshape(-1, strip.shape[-1])[:64], dtype=torch.float64)
    r_map, r_net = [], []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        res = run_to_completion(infer_image(post, strip, n_draws=draws, predictive=None))
        t_map = time.perf_counter() - t0
        n_samples = int(res.mask.sum()) * draws
        t_mm = matmul_seconds(n_samples)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for _ in range(max(1, n_samples // (64 * draws))):
                post.estimator.sample(y, draws, generator=torch.Generator().manual_seed(k))
        t_net = time.perf_counter() - t0
        t_mm2 = matmul_seconds(max(1, n_samples // (64 * draws)) * 64 * draws)
        if k:  # the first round warms up
            r_map.append(t_mm / t_map)
            r_net.append(t_mm2 / t_net)
    mm_rate = n_samples / t_mm
    print(f"exact map ({rows_strip} rows of the sample image, {draws} draws, all statistics) vs the network's matmul "
          f"chain ({len(list(m for m in net.modules() if isinstance(m, torch.nn.Linear)))} layers, "
          f"best of {EVAL_CHUNK_ROWS}- and {net_chunk}-row chunks, ≈ {mm_rate:,.0f} rows/s): {_spread(r_map, 100, '{:.1f}')} %; "
          f"network alone: {_spread(r_net, 100, '{:.1f}')} % (target ≥ 70 %)")
    return {"engine_fraction_of_matmul": round(statistics.median(r_map), 3),
            "engine_fraction_min_max": [round(min(r_map), 3), round(max(r_map), 3)],
            "network_fraction_of_matmul": round(statistics.median(r_net), 3),
            "matmul_rows_per_s_last": round(mm_rate)}


def _cancel_latency(post, cube, repeats: int) -> dict:
    """Seconds from pressing Cancel (``should_stop`` turning True mid-map) to the generator raising."""
    from tissue_inn.errors import Cancelled
    from tissue_inn.inference.image import infer_image

    def make_stop(after_s: float, pressed: dict):
        t_start = time.perf_counter()

        def stop() -> bool:
            if "t" not in pressed and time.perf_counter() - t_start > after_s:
                pressed["t"] = time.perf_counter()
            return "t" in pressed

        return stop

    lat, kept = [], 0
    for k in range(repeats):
        pressed: dict = {}
        stop = make_stop(1.0 + 0.3 * k, pressed)
        try:
            for _ in infer_image(post, cube, n_draws=256, predictive="median", should_stop=stop, preview=True):
                pass
        except Cancelled as exc:
            lat.append(time.perf_counter() - pressed["t"])
            kept = int(exc.partial.mask.sum())
    print(f"cancel → partial result (256 draws, residual on, preview): {_spread(lat, 1, '{:.2f}')} s "
          f"({kept} finished pixels kept; target ≤ 1 s)")
    return {"cancel_s": round(statistics.median(lat), 3), "cancel_s_max": round(max(lat), 3)}


def _amortised_vga(post, cube, repeats: int) -> dict:
    from tissue_inn.inference.image import infer_image
    from tissue_inn.progress import run_to_completion

    if not post.has_amortised:
        print("amortised VGA: this model has no amortised network (scripts/add_amortised.py adds one)")
        return {}
    vga = _vga_cube(cube)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        res = run_to_completion(infer_image(post, vga, kind="amortised", stats=("median", "iqr")))
        times.append(time.perf_counter() - t0)
    times = times[1:]
    print(f"amortised VGA 640×480×8 (median + IQR of all {post.n_parameters} parameters, {int(res.mask.sum())} "
          f"pixels): {_spread(times, 1, '{:.2f}')} s (target ≤ 3 s on 2 cores)")
    return {"amortised_vga_s": round(statistics.median(times), 3), "amortised_vga_min_max": [round(min(times), 3),
                                                                                              round(max(times), 3)]}


def _defaults(post, cube) -> dict:
    """Seconds to a first map of the sample image, and the per-pixel cost of each choice."""
    from tissue_inn.inference.image import infer_image
    from tissue_inn.progress import run_to_completion

    out: dict = {}
    h, w, _ = cube.shape
    n_px = h * w
    if post.has_amortised:
        t0 = time.perf_counter()
        run_to_completion(infer_image(post, cube, kind="amortised"))
        out["amortised_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    gen = infer_image(post, cube, n_draws=64, predictive=None, preview=True)
    for p in gen:
        if p.extra.get("pass") == "exact":
            out["preview_then_first_exact_rows_s"] = round(time.perf_counter() - t0, 2)
            gen.close()
            break
    strip = np.asarray(cube.tile(0, 8, 0, w), dtype=np.float32)
    for draws in (32, 64, 128, 256, 1000):
        t0 = time.perf_counter()
        res = run_to_completion(infer_image(post, strip, n_draws=draws, predictive=None))
        per_px = (time.perf_counter() - t0) / max(1, int(res.mask.sum()))
        out[f"exact_{draws}_draws_ms_per_px"] = round(1e3 * per_px, 3)
        out[f"exact_{draws}_draws_sample_image_s"] = round(per_px * n_px, 1)
    t0 = time.perf_counter()
    res = run_to_completion(infer_image(post, strip[:2], n_draws=64, predictive="median", gate=None))
    per_px_res = (time.perf_counter() - t0) / max(1, int(res.mask.sum())) - out["exact_64_draws_ms_per_px"] / 1e3
    out["residual_solver_ms_per_px"] = round(1e3 * per_px_res, 3)
    if "misfit_gate" in post.card:
        t0 = time.perf_counter()
        res = run_to_completion(infer_image(post, strip, n_draws=64, predictive="median"))
        per_px_g = (time.perf_counter() - t0) / max(1, int(res.mask.sum())) - out["exact_64_draws_ms_per_px"] / 1e3
        out["residual_gate_ms_per_px"] = round(1e3 * per_px_g, 3)
    print(f"defaults, sample image {h}×{w}: " + json.dumps(out))
    return {"defaults": out}


def _vga_exact(post, cube, draws: int) -> dict:
    from tissue_inn.inference.image import infer_image
    from tissue_inn.progress import run_to_completion

    vga = _vga_cube(cube)
    run_to_completion(infer_image(post, vga[:8], n_draws=draws, predictive=None))  # warm-up (CUDA context, kernels)
    if post.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = run_to_completion(infer_image(post, vga, n_draws=draws, predictive=None, stats=("median", "iqr")))
    if post.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"exact VGA × {draws} draws on {post.device} (median + IQR): {dt:.2f} s "
          f"({int(res.mask.sum()) * draws / dt:,.0f} samples/s; GPU target ≤ 2 s)")
    return {"vga_exact_s": round(dt, 2), "vga_exact_draws": draws, "vga_exact_device": post.device}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "colon_default"))
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller big cube (512²)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (target figures: 2)")
    p.add_argument("--repeats", type=int, default=5, help="repeats of every timed figure (median and spread)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample", default=str(ROOT / "resources" / "samples" / "colon_sample.h5"))
    p.add_argument("--big-size", type=int, default=None, help="side of the synthetic cube (default 2048; quick 512)")
    p.add_argument("--big-draws", type=int, default=8)
    p.add_argument("--skip-big", action="store_true", help="skip the big-cube memory run")
    p.add_argument("--only-big", action="store_true", help="run only the big-cube memory run")
    p.add_argument("--defaults", action="store_true", help="also time the choices behind infer's defaults")
    p.add_argument("--vga-exact", action="store_true", help="also time an exact VGA map (use with --device cuda)")
    p.add_argument("--draws", type=int, default=256, help="draws of the exact VGA map and the engine ratio")
    p.add_argument("--_big-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    big_size = args.big_size or (512 if args.quick else 2048)
    if args._big_child:
        _big_run(args.model, args._big_child, args.big_draws, args.device, args.threads)
        return 0
    print(f"before: {_load()}; {os.cpu_count()} CPUs; torch {torch.__version__}, {args.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}")
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" and args.threads > 1:
        print("note: OMP_WAIT_POLICY=PASSIVE puts the worker threads to sleep after every parallel region; with "
              "several threads the many small element-wise ops of the network then wait for wake-ups (measured "
              "here: 38k instead of 119k samples/s). Unset it for speed figures.")
    if args.only_big:
        print(json.dumps({"big": _big(args, big_size), "after": _load()}))
        return 0

    from tissue_inn.inference.image import infer_image
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.io.cube import read_cube
    from tissue_inn.progress import run_to_completion

    torch.set_num_threads(args.threads)
    post = Posterior.from_bundle(args.model, device=args.device)
    out: dict = {"model": args.model, "device": post.device, "threads": args.threads, "torch": torch.__version__,
                 "cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    cube = read_cube(args.sample)
    h, w, _ = cube.shape
    y = cube.tile(h // 2, h // 2 + 1, w // 4, w // 4 + 1)[0, 0].astype(np.float64)
    repeats = 3 if args.quick else args.repeats

    out.update(_click(post, y, 20 if args.quick else 40))
    out.update(_engine_vs_matmul(post, cube, args.draws, repeats, 4 if args.quick else 16))
    out.update(_amortised_vga(post, cube, repeats))
    out.update(_cancel_latency(post, cube, repeats))
    if args.defaults:
        out.update(_defaults(post, cube))
    if args.vga_exact:
        out.update(_vga_exact(post, cube, args.draws))

    # accuracy of the exact median map on the sample image (64 draws: the map, not the timing)
    res = run_to_completion(infer_image(post, cube, n_draws=64, predictive=None, stats=("median",)))
    gt = cube.ground_truth or {}
    mae = {n: float(np.mean(np.abs(np.asarray(res.maps[f"{n}/median"])[res.mask] - gt[n][res.mask])))
           for n in post.parameter_names if n in gt}
    out["median_map_mae_64_draws"] = {k: round(v, 5) for k, v in mae.items()}
    print("median-map MAE vs ground truth (64 draws): " + ", ".join(f"{k} {v:.4g}" for k, v in mae.items()))
    if not args.skip_big:
        out["big"] = _big(args, big_size)
    out["load_after"] = os.getloadavg()
    print(f"after: {_load()}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The misfit gate: false alarms on fresh in-distribution simulations, detection of tissue the model does not cover,
the forward surrogate's accuracy against the solver and its speed.

Usage:
    python benchmarks/bench_misfit.py [--model colon_default] [--n 1000] [--snr 10 20 50] [--draws 256]
                                      [--seed 11] [--threads 2] [--cases blood_layer melanin_top ...]
    python benchmarks/bench_misfit.py --attach --train data/colon_100k.h5 --test data/colon_test.h5
                                      [--epochs 60] [--hidden 256] [--layers 3]   # (re)build the model's gate

Fresh spectra are simulated here (seeded; the adding-doubling solver at the settings of the model's
training data), noise is applied at each SNR, the posterior is drawn at that SNR and every spectrum is
scored by the model's calibrated gate (tissue_inn.inference.misfit). Figures are shares of spectra
flagged "not explained", with a 95 % Wilson interval, split by which tell-tale fired. The SNR
"logU" row draws each spectrum's SNR log-uniformly over the gate's calibrated range.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import torch

from tissue_inn.inference.misfit import MisfitGate, gate_section_summary
from tissue_inn.inference.misfit_calibrate import noisy_statistics
from tissue_inn.inference.misfit_cases import CASES, simulate_case
from tissue_inn.inference.posterior import PREDICTIVE_N_QUAD, Posterior
from tissue_inn.optics.forward import ForwardModel, SolverSettings
from tissue_inn.progress import run_to_completion


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def score_set(post: Posterior, gate: MisfitGate, y_clean: np.ndarray, snr: float | np.ndarray, draws: int,
              seed: int):
    """Noise at ``snr`` (scalar or per spectrum), posterior at that SNR, gate verdicts."""
    r, e = run_to_completion(noisy_statistics(post, gate, y_clean, snr, draws, seed))
    return gate.verdict(r, e, np.broadcast_to(np.asarray(snr, np.float64), r.shape))


def line(label: str, v) -> str:
    n = v.explained.size
    k = int((~v.explained).sum())
    lo, hi = wilson(k, n)
    by_r = float(np.mean(v.residual > v.residual_threshold))
    by_e = float(np.mean(v.edge > v.edge_threshold))
    return (f"{label:28s} {100 * k / n:6.1f} %  [{100 * lo:5.1f}, {100 * hi:5.1f}]  residual {100 * by_r:5.1f} %  "
            f"edge {100 * by_e:5.1f} %  median residual {np.median(v.residual):.4f}  n={n}")


def check_surrogate(post: Posterior, n: int, seed: int, repeats: int) -> None:
    from tissue_inn.inference.gate_store import load_surrogate

    sur = load_surrogate(post.card)
    if sur is None:
        print("model has no forward surrogate")
        return
    solver = SolverSettings(**post.card.get("dataset", {}).get("solver", {})) if post.card.get("dataset") else \
        SolverSettings()
    fm = ForwardModel(post.tissue, post.camera, solver)
    x = post.tissue.sample_prior(n, torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    y = fm.bands(x)
    t_solver16 = time.perf_counter() - t0
    with torch.inference_mode():
        rel = (sur.bands(x) / y - 1).abs().flatten().numpy()
    snr_max = float(post.card.get("noise_model", {}).get("snr_max", 50.0))
    print(f"surrogate vs adding-doubling ({solver.n_quad} quadrature points, {solver.nodes_per_band} nodes/band), "
          f"{n} fresh prior draws (seed {seed}): band relative error median {100 * np.median(rel):.3f} %, "
          f"p99 {100 * np.quantile(rel, 0.99):.3f} %, max {100 * rel.max():.2f} %; noise 1/SNR_max = "
          f"{100 / snr_max:.1f} % (p99 = {np.quantile(rel, 0.99) * snr_max:.2f} × 1/SNR_max)")
    card_val = post.card["surrogate"].get("validation", {}).get("band_rel_error")
    if card_val:
        print(f"  (card, held-out test set: median {100 * card_val['median']:.3f} %, p99 {100 * card_val['p99']:.3f} %)")
    big = post.tissue.sample_prior(8192, torch.Generator().manual_seed(seed + 1))
    fm8 = ForwardModel(post.tissue, post.camera, SolverSettings(n_quad=PREDICTIVE_N_QUAD))
    rates_s, rates_8 = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            sur.bands(big)
        rates_s.append(big.shape[0] / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        fm8.bands(big[:512])
        rates_8.append(512 / (time.perf_counter() - t0))
    rs, r8 = statistics.median(rates_s), statistics.median(rates_8)
    print(f"speed, {torch.get_num_threads()} threads, batches of 8192 / 512: surrogate {rs:,.0f} spectra/s "
          f"(range {min(rates_s):,.0f}–{max(rates_s):,.0f}); solver n_quad {PREDICTIVE_N_QUAD} (the predictive "
          f"check's) {r8:,.0f} /s (range {min(rates_8):,.0f}–{max(rates_8):,.0f}); n_quad {solver.n_quad} "
          f"{n / t_solver16:,.0f} /s; ratio {rs / r8:,.0f}× (median of {repeats})")


def cost(post: Posterior, draws: int, crop: int, repeats: int) -> None:
    """Seconds to map a crop of the sample image with and without the residual/gate (same draws, seed)."""
    from tissue_inn.config import resources_dir
    from tissue_inn.inference.image import infer_image
    from tissue_inn.io.cube import read_cube

    cube = read_cube(resources_dir() / "samples" / "colon_sample.h5")
    data = np.asarray(cube.data[:crop, :crop, :], dtype=np.float32)
    times: dict[str, list[float]] = {"none": [], "median": []}
    for _ in range(repeats):
        for mode in ("none", "median"):
            t0 = time.perf_counter()
            res = run_to_completion(infer_image(post, data, n_draws=draws, seed=0, stats=("median", "iqr"),
                                                predictive=None if mode == "none" else mode))
            times[mode].append(time.perf_counter() - t0)
    a, b = statistics.median(times["none"]), statistics.median(times["median"])
    print(f"map cost, sample image {crop}×{crop}, {draws} draws, median+iqr: without residual {a:.2f} s "
          f"(range {min(times['none']):.2f}–{max(times['none']):.2f}), with residual + gate {b:.2f} s "
          f"(range {min(times['median']):.2f}–{max(times['median']):.2f}): ×{b / a:.3f} "
          f"(predictive part {res.attrs.get('seconds_predictive')} s of the last run; median of {repeats})")


def attach(args) -> None:
    from tissue_inn.inference.gate_build import build_gate

    def show(p):
        if p.total and (p.done == p.total or p.done % max(1, p.total // 10) == 0):
            print(f"  {p.stage}: {p.done}/{p.total} {p.message}", flush=True)

    out = run_to_completion(build_gate(args.model, args.train, args.test, n_train=args.n_train, n_test=args.n_test,
                                       epochs=args.epochs, hidden=args.hidden, n_hidden_layers=args.layers,
                                       seed=args.gate_seed, n_draws=args.draws,
                                       surrogate_from=args.surrogate_from), show)
    val = out["surrogate"]["validation"]
    print("surrogate held-out:", val["band_rel_error"], "residual:", val["residual"], "speed:", val["speed"])
    print(gate_section_summary(out["misfit_gate"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="colon_default")
    ap.add_argument("--n", type=int, default=1000, help="spectra per set")
    ap.add_argument("--snr", type=float, nargs="+", default=[10.0, 20.0, 50.0])
    ap.add_argument("--draws", type=int, default=256, help="posterior draws per spectrum")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=["blood_layer", "melanin_top", "skin", "fat_layer", "blood_layer_2"],
                    choices=CASES)
    ap.add_argument("--repeats", type=int, default=5, help="speed measurements")
    ap.add_argument("--map-draws", type=int, default=256, help="draws per pixel of the map-cost measurement")
    ap.add_argument("--crop", type=int, default=64, help="square crop of the sample image for the map cost")
    ap.add_argument("--attach", action="store_true", help="train, check, calibrate and store the model's gate")
    ap.add_argument("--train", default="data/colon_100k.h5")
    ap.add_argument("--test", default="data/colon_test.h5")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--gate-seed", type=int, default=0)
    ap.add_argument("--surrogate-from", default=None, help="with --attach: reuse this bundle's surrogate")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bench_misfit: model {args.model}, threads {args.threads}, load {os.getloadavg()[0]:.2f} "
          f"(1-min average at start)")
    if args.attach:
        attach(args)
        return
    post = Posterior.from_bundle(args.model, device="cpu")
    gate = MisfitGate.from_posterior(post)
    if gate is None:
        raise SystemExit(f"{args.model} has no calibrated misfit gate; run this script with --attach first")
    print(gate_section_summary(post.card["misfit_gate"]))
    check_surrogate(post, 256, args.seed, args.repeats)
    cost(post, args.map_draws, args.crop, 3)
    t0 = time.time()
    sets = {"in-distribution": _in_distribution(post, args.n, args.seed)}
    for case in args.cases:
        sets[case] = simulate_case(post.tissue, post.camera, case, args.n, args.seed + 1)[0]
    print(f"simulated {len(sets)} sets of {args.n} in {time.time() - t0:.0f} s")
    lo, hi = gate.snr_range
    for name, y in sets.items():
        print(f"--- {name}: share flagged 'not explained' [95 % interval], {args.draws} draws")
        for k, snr in enumerate(args.snr):
            print(line(f"  SNR {snr:g}", score_set(post, gate, y, snr, args.draws, args.seed * 100 + k)))
        snr_u = np.exp(np.random.default_rng(args.seed).uniform(math.log(lo), math.log(hi), y.shape[0]))
        print(line(f"  SNR logU {lo:g}–{hi:g}", score_set(post, gate, y, snr_u, args.draws, args.seed * 100 + 99)))
    print(f"load {os.getloadavg()[0]:.2f} at the end")


def _in_distribution(post: Posterior, n: int, seed: int) -> np.ndarray:
    solver = SolverSettings(**post.card.get("dataset", {}).get("solver", {})) if post.card.get("dataset") else \
        SolverSettings()
    x = post.tissue.sample_prior(n, torch.Generator().manual_seed(seed))
    return ForwardModel(post.tissue, post.camera, solver).bands(x).numpy()


if __name__ == "__main__":
    main()

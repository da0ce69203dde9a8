"""Forward-model benchmark: band-integrated spectra per second and the accuracy they buy.

Usage: python benchmarks/bench_forward.py [--n 2000] [--threads 2] [--device cpu|cuda]

Prints, for the colon tissue and the spectrocam8 camera: spectra/s at the default setting, at the
accurate setting (n_quad 32), and their band-value error against a dense 1 nm band integration at
n_quad 32 (median and max relative error over prior samples).
"""

from __future__ import annotations

import argparse
import time

import torch

from tissue_inn.config import load_camera, load_tissue
from tissue_inn.optics.forward import ForwardModel, SolverSettings


def rate(fm: ForwardModel, x: torch.Tensor, repeats: int = 1) -> float:
    fm.bands(x[:64])  # warm-up
    if fm.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fm.bands(x)
    if fm.device.type == "cuda":
        torch.cuda.synchronize()
    return repeats * x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-accuracy", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tissue, camera = load_tissue("colon"), load_camera("spectrocam8")
    x = tissue.sample_prior(args.n, torch.Generator().manual_seed(args.seed))
    xa = x[: args.n_accuracy]
    ref = ForwardModel(tissue, camera, SolverSettings(n_quad=32, band_mode="dense"), device=args.device).bands(xa)
    print(f"device={args.device} threads={args.threads} n={args.n} (colon / spectrocam8)")
    print(f"{'setting':42s} {'spectra/s':>10s} {'median err %':>13s} {'max err %':>10s}")
    default = SolverSettings()
    for label, s in [
        ("default " + str(default.to_dict()), default),
        ("float32 default", SolverSettings(dtype="float32")),
        ("accurate n_quad=32", SolverSettings(n_quad=32)),
        ("one wavelength per band (centre)", SolverSettings(band_mode="center")),
    ]:
        fm = ForwardModel(tissue, camera, s, device=args.device)
        r = rate(fm, x.to(fm.dtype))
        y = fm.bands(xa.to(fm.dtype)).double()
        err = ((y - ref) / ref).abs()
        print(f"{label[:42]:42s} {r:10.0f} {100 * err.median().item():13.3f} {100 * err.max().item():10.3f}")
    t200k = 200_000 / rate(ForwardModel(tissue, camera, default, device=args.device), x)
    print(f"time for the 200k default training set at the default setting: {t200k / 60:.1f} min")


if __name__ == "__main__":
    main()

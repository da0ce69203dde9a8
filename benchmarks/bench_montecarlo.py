"""Throughput of the Monte Carlo reference (tissue_inn.optics.montecarlo).

Reports photon events (interactions + boundary hits) per second and photons per second for a
colon-like 3-layer stack simulated at several wavelengths at once, on CPU (1 and 2 threads by
default) and on CUDA when present.

Usage:
    .venv/bin/python benchmarks/bench_montecarlo.py [--photons 100000] [--problems 8] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from tissue_inn.optics.montecarlo import mc_reflectance

__all__ = ["colon_like_problem", "main"]


def colon_like_problem(n_problems: int) -> dict[str, torch.Tensor]:
    """A fixed colon-like 3-layer stack at ``n_problems`` wavelengths (mu_a rising, mu_s' falling)."""
    f64 = torch.float64
    frac = torch.linspace(0.0, 1.0, n_problems, dtype=f64)[:, None]
    lam_nm = 470.0 + 230.0 * frac
    mu_a = torch.tensor([[2.0, 5.0, 1.0]], dtype=f64) * (0.2 + 4.0 * frac)
    g = torch.tensor([0.9, 0.85, 0.88], dtype=f64)
    mus_red = torch.tensor([[20.0, 15.0, 25.0]], dtype=f64) * (lam_nm / 500.0) ** -1.286
    return {
        "mu_a_per_cm": mu_a,
        "mu_s_per_cm": mus_red / (1.0 - g),
        "g": g.expand(n_problems, -1),
        "thickness_cm": torch.tensor([0.08, 0.06, 0.05], dtype=f64).expand(n_problems, -1),
        "n_layers": torch.tensor([1.36, 1.36, 1.38], dtype=f64),
    }


def _run(problem, n_photons, device, dtype) -> tuple[float, int]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = mc_reflectance(**problem, n_photons=n_photons, seed=0, device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, res.n_steps


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photons", type=int, default=100_000, help="photons per problem")
    parser.add_argument("--problems", type=int, default=8, help="wavelengths simulated together")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to try")
    args = parser.parse_args(argv)
    problem = colon_like_problem(args.problems)
    total_photons = args.photons * args.problems
    configs = [("cpu", t, dt) for t in args.threads for dt in (torch.float64, torch.float32)]
    if torch.cuda.is_available():
        configs += [("cuda", None, torch.float64), ("cuda", None, torch.float32)]
    for dev_name, threads, dtype in configs:
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        device = torch.device(dev_name)
        _run(colon_like_problem(1), 2000, device, dtype)  # warm-up
        seconds, steps = _run(problem, args.photons, device, dtype)
        torch.set_num_threads(before)
        label = f"{dev_name}{'' if threads is None else f' {threads} thr'} {str(dtype).removeprefix('torch.')}"
        print(
            f"{label:22s} {args.problems} x {args.photons} photons: {seconds:7.2f} s, "
            f"{steps / seconds / 1e6:6.2f} M photon-steps/s, {total_photons / seconds:9.0f} photons/s, "
            f"{steps / total_photons:6.1f} steps/photon"
        )


if __name__ == "__main__":
    main()

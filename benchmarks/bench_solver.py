"""Speed and quadrature-order accuracy of the adding-doubling solver on colon-like 3-layer stacks.

Usage:
    .venv/bin/python benchmarks/bench_solver.py [--batch 1000] [--threads 2] [--repeats 3]

Prints spectra/s (8 wavelengths x 3 layers per spectrum) at n_quad 16 and 32, in float64 and
float32 inputs (the solver computes in float64 internally), and the relative error of 16 (and 24)
against 32 quadrature points (median, p95, max).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads must sleep rather than spin: on a shared 2-core machine spinning made the
# 2-thread run 5-10x slower than the 1-thread run (measured). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tissue_inn.optics.adding_doubling import stack_reflectance  # noqa: E402

__all__ = ["colon_like_batch", "main"]


def colon_like_batch(
    n_spectra: int, n_wavelengths: int = 8, seed: int = 0, dtype: torch.dtype = torch.float64
) -> dict[str, torch.Tensor | float]:
    """Random 3-layer colon-like optical properties.

    mu_a log-uniform in 0.05-20 /cm, mu_s' log-uniform in 5-50 /cm (mu_s = mu_s' / (1 - g)),
    g uniform 0.8-0.95, thickness uniform 0.04-0.1 cm, n = 1.36, air above and below.

    Args:
        n_spectra: number of spectra (samples).
        n_wavelengths: wavelengths per spectrum.
        seed: seed of the torch.Generator.
        dtype: dtype of the tensors.

    Returns:
        Keyword arguments for :func:`stack_reflectance`.
    """
    gen = torch.Generator().manual_seed(seed)
    n_layers = 3
    shape = (n_spectra, n_wavelengths, n_layers)

    def log_uniform(lo: float, hi: float, size: tuple[int, ...]) -> torch.Tensor:
        u = torch.rand(size, generator=gen, dtype=torch.float64)
        return torch.exp(torch.log(torch.tensor(lo)) + u * (torch.log(torch.tensor(hi / lo))))

    g = 0.8 + 0.15 * torch.rand((n_spectra, n_layers), generator=gen, dtype=torch.float64)
    mu_a = log_uniform(0.05, 20.0, shape)
    mu_s_reduced = log_uniform(5.0, 50.0, shape)
    mu_s = mu_s_reduced / (1.0 - g[:, None, :])
    thickness = 0.04 + 0.06 * torch.rand((n_spectra, n_layers), generator=gen, dtype=torch.float64)
    return {
        "mu_a_per_cm": mu_a.to(dtype),
        "mu_s_per_cm": mu_s.to(dtype),
        "g": g.to(dtype),
        "thickness_cm": thickness.to(dtype),
        "n_tissue": 1.36,
    }


def _time(kwargs: dict, n_quad: int, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Best wall time, best process CPU time, result."""
    best_wall = best_cpu = float("inf")
    out = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = stack_reflectance(**kwargs, n_quad=n_quad)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def main() -> None:
    """Run the benchmark and print a small table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kwargs = colon_like_batch(args.batch, seed=args.seed)
    results = {}
    print(f"batch {args.batch} spectra x 8 wavelengths x 3 layers, torch threads {torch.get_num_threads()}")
    print(f"load average before: {os.getloadavg()[0]:.1f} (wall-clock figures suffer when other jobs share the cores)")
    stack_reflectance(**colon_like_batch(4, seed=args.seed + 1))  # warm-up
    for n_quad in (16, 24, 32):
        wall, cpu, refl = _time(kwargs, n_quad, args.repeats)
        results[n_quad] = refl
        print(
            f"n_quad {n_quad:2d}: wall {wall:7.3f} s = {args.batch / wall:7.1f} spectra/s;"
            f"  CPU {cpu:7.3f} s = {args.batch / cpu:7.1f} spectra per CPU-second"
        )
    kwargs32 = colon_like_batch(args.batch, seed=args.seed, dtype=torch.float32)
    wall, cpu, refl32 = _time(kwargs32, 16, args.repeats)
    print(f"n_quad 16, float32 in/out (float64 inside): wall {wall:7.3f} s = {args.batch / wall:7.1f} spectra/s")
    ref = results[32]
    for n_quad in (16, 24):
        rel = ((results[n_quad] - ref) / ref).abs().flatten()
        print(
            f"|R{n_quad} / R32 - 1|: median {rel.median().item():.2e}  p95 {torch.quantile(rel, 0.95).item():.2e}  "
            f"max {rel.max().item():.2e}   (R range {ref.min().item():.4f}-{ref.max().item():.4f})"
        )
    rel32 = ((refl32.double() - results[16]) / results[16]).abs().max().item()
    print(f"float32 vs float64 inputs at n_quad 16: max rel diff {rel32:.2e}")


if __name__ == "__main__":
    main()

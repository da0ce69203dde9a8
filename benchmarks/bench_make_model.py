"""Predicted time of ``tissue-inn make-model`` at the default size, from measured solver and training rates.

Prints, per tissue, the estimate of :func:`tissue_inn.training.make_model.estimate_cost` repeated
``--repeats`` times (median and spread, because the machine may be shared), the load average, and
the targets of issue 12 (≤ 60 min on 2 CPU cores, ≤ 5 min on an H100/H200). The estimate counts
simulation (``--size`` + test spectra, in ``--processes`` processes), training (``--epochs`` epochs)
and evaluation (2 SNRs × 2000 spectra × 1024 draws, predictive check, misfit gate).

    python benchmarks/bench_make_model.py                       # skin and colon, spectrocam8, CPU
    python benchmarks/bench_make_model.py --device cuda         # on a GPU machine
"""

from __future__ import annotations

import argparse
import os
import statistics

from tissue_inn.training.make_model import MakeModelRequest, estimate_cost


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tissue", action="append", help="tissue(s) (default: skin and colon)")
    p.add_argument("--camera", default="spectrocam8")
    p.add_argument("--size", type=int, default=MakeModelRequest.size)
    p.add_argument("--epochs", type=int, default=MakeModelRequest.epochs)
    p.add_argument("--device", default="auto")
    p.add_argument("--processes", type=int, default=None, help="simulation processes (default: CPU cores)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}; CPU cores: {os.cpu_count()}")
    for tissue in args.tissue or ["skin", "colon"]:
        req = MakeModelRequest(tissue, args.camera, "models/_bench", size=args.size, epochs=args.epochs,
                               device=args.device, processes=args.processes)
        costs = [estimate_cost(req) for _ in range(args.repeats)]
        tot = sorted(c.total_s / 60 for c in costs)
        rates = sorted(c.solver_spectra_per_s for c in costs)
        trates = sorted(c.train_samples_per_s for c in costs)
        print(f"{tissue}/{args.camera}, size {args.size:,}, {args.epochs} epochs, {costs[0].processes} process(es) "
              f"on {costs[0].device}: estimated {statistics.median(tot):.1f} min (range {tot[0]:.1f}–{tot[-1]:.1f}); "
              f"solver {statistics.median(rates):.0f} spectra/s per process ({rates[0]:.0f}–{rates[-1]:.0f}), "
              f"training {statistics.median(trates):.0f} samples/s")
        c = costs[len(costs) // 2]
        print(f"    simulate {c.simulate_s / 60:.1f} min, train {c.train_s / 60:.1f} min, "
              f"evaluate {c.evaluate_s / 60:.1f} min")
    print(f"load average after: {os.getloadavg()}")
    print("targets (issue 12): <= 60 min on 2 CPU cores; <= 5 min on an H100/H200")


if __name__ == "__main__":
    main()

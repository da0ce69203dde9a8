"""``tissue-inn make-model``: simulate, train, evaluate and bundle a model in one step (resumable)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tissue_inn.cli.common import Command, drive

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tissue", default="colon", help="shipped tissue (colon, generic, skin) or a .toml path")
    p.add_argument("--camera", default="spectrocam8",
                   help="shipped camera (spectrocam8, generic_vis16, hyperspectral100) or a .toml path")
    p.add_argument("-o", "--output", required=True, type=Path, help="bundle folder to write (models/NAME)")
    p.add_argument("--size", type=int, default=100_000, help="simulated training spectra (default 100000)")
    p.add_argument("--test-size", type=int, default=2000, help="held-out spectra for the evaluation (default 2000)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation, training and evaluation")
    p.add_argument("--processes", type=int, help="simulation processes on the CPU (default: one per core)")
    p.add_argument("--config", default="train_cinn", help="training config (shipped name or .toml; default train_cinn)")
    p.add_argument("--eval-snr", type=float, action="append", help="evaluation SNR (repeatable; default 20 and 10)")
    p.add_argument("--draws", type=int, default=1024, help="posterior draws per test spectrum (default 1024)")
    p.add_argument("--no-gate", action="store_true", help="skip the misfit-gate calibration")
    p.add_argument("--threads", type=int, help="torch CPU threads for training")
    p.add_argument("--description", default="", help="one line for the model card")
    p.add_argument("--estimate-only", action="store_true", help="print the cost estimate and stop")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.training.make_model import MakeModelRequest, estimate_cost, make_model

    request = MakeModelRequest(
        tissue=args.tissue, camera=args.camera, output=str(args.output), size=args.size, test_size=args.test_size,
        epochs=args.epochs, device=args.device, seed=args.seed, processes=args.processes, train_config=args.config,
        eval_snrs=tuple(args.eval_snr or (20.0, 10.0)), eval_draws=args.draws, gate=not args.no_gate,
        threads=args.threads, description=args.description, force=args.force,
    )
    if args.output.exists() and not args.force and not args.estimate_only:
        from tissue_inn.errors import OutputExistsError

        raise OutputExistsError(f"{args.output} already exists; pass --force to replace it")
    cost = estimate_cost(request)
    print(cost.text, file=sys.stderr, flush=True)
    if args.estimate_only:
        print(json.dumps({"estimated_seconds": round(cost.total_s, 1), "simulate_s": round(cost.simulate_s, 1),
                          "train_s": round(cost.train_s, 1), "evaluate_s": round(cost.evaluate_s, 1)}))
        return 0
    made = drive(make_model(request), "make-model", args.quiet, bar_per_stage=True,
                 interrupted_hint=f"stopped; run the same command again to resume from {args.output}.work")
    summary = made.card.get("evaluation", {}).get("summary", {})
    print(json.dumps({"output": str(made.path), "seconds": round(made.seconds, 1), "stages": made.stage_seconds,
                      "evaluation": {k: {m: v.get(m) for m in ("sao2_mae", "sao2_median_abs_ecal",
                                                                "worst_median_abs_ecal", "worst_parameter")}
                                     for k, v in summary.items()}}))
    return 0


COMMAND = Command("make-model", "simulate, train, evaluate and bundle a model for a tissue and camera in one step",
                  add_arguments, run)

"""``tissue-inn baseline``: train a baseline (the regression MLP, with optional MC dropout)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from tissue_inn.cli.common import Command, drive
from tissue_inn.errors import TissueInnError

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["regression"], help="baseline to train")
    p.add_argument("--data", required=True, type=Path, help="training dataset (HDF5 from 'simulate')")
    p.add_argument("-o", "--output", required=True, type=Path, help="baseline folder to write")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout rate (0: no MC dropout; default 0.1)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--iterations-per-epoch", type=int)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--n-hidden-layers", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--snr-min", type=float, help="lowest training SNR (default: the camera's)")
    p.add_argument("--snr-max", type=float, help="highest training SNR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-samples", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--force", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.inference.regression import RegressionSettings, save_regression, train_regression

    if args.output.exists() and not args.force:
        raise TissueInnError(f"{args.output} already exists; pass --force to replace it")
    settings = RegressionSettings(
        hidden=args.hidden,
        n_hidden_layers=args.n_hidden_layers,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        iterations_per_epoch=args.iterations_per_epoch,
        lr=args.lr,
        seed=args.seed,
        snr_min=args.snr_min,
        snr_max=args.snr_max,
        limit_samples=args.limit_samples,
        threads=args.threads,
    )
    res = drive(train_regression(args.data, settings), "baseline regression", args.quiet, unit="epoch")
    extra = {
        **res.info,
        "training": {
            "best_epoch": res.best_epoch,
            "best_val_loss": res.best_val_loss,
            "seconds": round(res.seconds, 1),
            "history": res.history,
        },
    }
    save_regression(res.model, args.output, force=args.force, extra=extra)
    print(
        json.dumps(
            {
                "output": str(args.output),
                "best_epoch": res.best_epoch,
                "best_val_loss": round(res.best_val_loss, 5) if math.isfinite(res.best_val_loss) else None,
                "seconds": round(res.seconds, 1),
            }
        )
    )
    return 0


COMMAND = Command("baseline", "train a baseline (regression MLP with optional MC dropout)", add_arguments, run)

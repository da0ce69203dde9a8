"""``tissue-inn train``: train a posterior model (inn or cinn) on a simulated dataset."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from tissue_inn.cli.common import Command, drive
from tissue_inn.errors import ConfigError, TissueInnError

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="training dataset (HDF5 from 'simulate')")
    p.add_argument("--family", default=None,
                   help="model family (default cinn; the paper's INN: inn; any family of tissue_inn/inn/registry.py)")
    p.add_argument("-o", "--output", required=True, type=Path, help="bundle folder to write (models/NAME)")
    p.add_argument("--config", type=Path, help="TOML file or shipped config name (tissue-inn config lists them); flags override it")
    p.add_argument("--epochs", type=int)
    p.add_argument("--iterations-per-epoch", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--n-blocks", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--clamp", type=float)
    p.add_argument("--snr-min", type=float, help="lowest SNR of the training noise (default: the camera's)")
    p.add_argument("--snr-max", type=float, help="highest SNR of the training noise")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--limit-samples", type=int, help="use only the first N samples")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")


def run(args: argparse.Namespace) -> int:
    import time

    from tissue_inn.io.bundle import save_bundle
    from tissue_inn.training.trainer import TrainSettings, train

    settings_d: dict = {}
    if args.config and not args.config.exists():
        from tissue_inn.cli.config import shipped_config

        args.config = shipped_config(str(args.config))
    if args.config:
        try:
            settings_d.update(tomllib.loads(args.config.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{args.config}: cannot read training settings ({exc})") from None
    for flag in ("family", "epochs", "iterations_per_epoch", "batch_size", "lr", "n_blocks", "hidden", "clamp",
                 "snr_min", "snr_max", "seed", "device", "threads", "limit_samples"):
        v = getattr(args, flag)
        if v is not None:
            settings_d[flag] = v
    settings = TrainSettings.from_dict(settings_d, where=str(args.config or "flags"))
    if args.output.exists() and not args.force:
        raise TissueInnError(f"{args.output} already exists; pass --force to replace it")
    from tissue_inn.atomic import check_not_inputs

    check_not_inputs({}, {"the training data": args.data, "the --config file": args.config},
                     replaced_folders=[args.output])
    ckpt = args.output.with_name(args.output.name + ".checkpoint")
    res = drive(train(args.data, settings, checkpoint_dir=ckpt, resume=not args.no_resume),
                 f"train {settings.family}", args.quiet, unit="epoch")
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return 0  # rank 0 writes the bundle
    card = {"name": args.output.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    card.update(res.card_sections())
    from tissue_inn.config import TissueModel

    card["parameters"] = TissueModel.from_dict(res.tissue).parameter_card()  # clinical labels, display units
    save_bundle(res.estimator, card, args.output, force=args.force)
    import shutil

    shutil.rmtree(ckpt, ignore_errors=True)
    print(json.dumps({"output": str(args.output), "best_epoch": res.best_epoch,
                      "best_val_loss": round(res.best_val_loss, 5), "seconds": round(res.seconds, 1)}))
    return 0


COMMAND = Command("train", "train a posterior model (inn or cinn) on a simulated dataset", add_arguments, run)

"""Train the amortised quantile network of a bundle, check it against the INN, and add it to the bundle.

Usage (the shipped default model; about 5–10 min on 2 CPU cores):

    OMP_NUM_THREADS=2 python scripts/add_amortised.py --model models/colon_default \
        --data data/colon_100k.h5 --test data/colon_test.h5 [--epochs 60] [--seed 0]

The network's weights go into ``amortised.safetensors`` beside the model's weights (which stay
untouched); the card gets an ``amortised`` section: file, sha256, tensor shapes, config, training
facts (data sha256, noise model, seed, loss history) and the held-out checks at SNR 20 and 10
(:func:`tissue_inn.inference.amortised.check_amortised`). The INN's draws remain the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from tissue_inn.config import NoiseModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.estimators.quantile_net import CARD_SECTION, save_quantile_net
from tissue_inn.hashing import file_sha256
from tissue_inn.inference.amortised import check_amortised
from tissue_inn.io.bundle import load_bundle, resolve_model, update_card
from tissue_inn.progress import run_to_completion
from tissue_inn.training.amortised import AmortisedSettings, train_amortised


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="colon_default")
    p.add_argument("--data", type=Path, required=True, help="training simulations (noise-free y)")
    p.add_argument("--test", type=Path, required=True, help="held-out simulations (noise-free y)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--draws", type=int, default=1024, help="INN draws per held-out spectrum for the check")
    p.add_argument("--snrs", default="20,10")
    args = p.parse_args(argv)

    folder = resolve_model(args.model)
    est, card = load_bundle(folder)
    weights_sha = file_sha256(folder / card["weights"]["file"])
    noise = NoiseModel(**card["noise_model"])
    settings = AmortisedSettings(hidden=args.hidden, n_hidden_layers=args.layers, epochs=args.epochs, seed=args.seed)
    qnet, facts = run_to_completion(train_amortised(args.data, est, noise, settings),
                                    lambda pr: print(pr.extra.get("log_line", pr.message), flush=True))
    test = SpectraDataset(args.test, limit=args.n_test)
    checks = {}
    for snr in (float(s) for s in args.snrs.split(",")):
        checks[f"snr{snr:g}"] = check_amortised(est, qnet, test.x, test.y, snr, n_draws=args.draws, seed=1,
                                                noise=noise)
        print(json.dumps(checks[f"snr{snr:g}"]["summary"]), flush=True)
    facts["history"] = [{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()}
                        for h in facts["history"]]
    evaluation = {"test_set": str(args.test), "test_sha256": file_sha256(args.test), **checks}
    section = save_quantile_net(qnet, folder, extra={"training": facts, "evaluation": evaluation,
                                                     "use": "instant maps of medians and 5/25/75/95 % quantiles; "
                                                            "the INN's draws stay the reference"})
    update_card(folder, {CARD_SECTION: section})
    if file_sha256(folder / card["weights"]["file"]) != weights_sha:
        print("the model's weights changed; this must not happen", file=sys.stderr)
        return 1
    print(f"added {section['file']} ({section['sha256'][:12]}…) to {folder}")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raise SystemExit(main())

"""``tissue-inn info``: print a model bundle's card."""

from __future__ import annotations

import argparse
import json
import sys

from tissue_inn.cli.common import Command

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help="bundle folder or shipped model name (default model)")
    p.add_argument("--json", action="store_true", help="print the raw card JSON")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.io.bundle import format_card, load_bundle

    _, card = load_bundle(args.model)
    if args.json:
        json.dump(card, sys.stdout, indent=2)
        print()
    else:
        from tissue_inn.inference.trust import calibration_verdict

        print(format_card(card))
        verdict = calibration_verdict(card)
        print(f"calibration  : {verdict.level} — {verdict.message}")
        if isinstance(card.get("misfit_gate"), dict):
            from tissue_inn.inference.misfit import gate_section_summary

            print(gate_section_summary(card["misfit_gate"]))
    return 0


COMMAND = Command("info", "print a model bundle's card", add_arguments, run)

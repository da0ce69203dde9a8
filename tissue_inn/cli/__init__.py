"""``tissue-inn``: the command-line interface (a thin layer over the core).

Progress goes to stderr, results to stdout or files. A bad input ends with one line
``error: ...`` naming the problem and exit status 2; ``--debug`` shows the traceback.

One module per command; each exposes ``COMMAND`` (:class:`~tissue_inn.cli.common.Command`). To add a
command, write ``tissue_inn/cli/NAME.py`` and add it to :data:`COMMANDS` below.
"""

from __future__ import annotations

import argparse
import sys

from tissue_inn import __version__
from tissue_inn.cli import baseline, config, evaluate, gui, infer, info, make_model, merge, simulate, train
from tissue_inn.cli.common import Command, run_command

__all__ = ["COMMANDS", "main", "build_parser"]

#: Every ``tissue-inn`` command, in the order ``--help`` lists them.
COMMANDS: list[Command] = [
    simulate.COMMAND,
    merge.COMMAND,
    train.COMMAND,
    info.COMMAND,
    evaluate.COMMAND,
    make_model.COMMAND,
    baseline.COMMAND,
    infer.COMMAND,
    config.COMMAND,
    gui.COMMAND,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tissue-inn",
        description="Posterior estimation of tissue parameters from multispectral images with invertible "
        "neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"tissue-inn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return run_command(args._command, args)

"""What every command shares: the :class:`Command` record, the progress bar driver, the error policy.

A command module defines ``add_arguments(parser)`` and ``run(args) -> int`` and exposes them as one
``COMMAND = Command(...)``; :mod:`tissue_inn.cli` lists the commands. Heavy imports (torch, the core)
stay inside ``run`` so that ``tissue-inn --help`` and the GUI start quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from tissue_inn.errors import TissueInnError
from tissue_inn.progress import Progress

__all__ = ["Command", "drive", "run_command", "warn"]


@dataclass(frozen=True)
class Command:
    """One ``tissue-inn`` sub-command."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def drive(gen: Generator[Progress, None, Any], desc: str, quiet: bool = False, unit: str = "it",
          bar_per_stage: bool = False, interrupted_hint: str | None = None) -> Any:
    """Run a progress generator with a tqdm bar on stderr; return its result.

    ``bar_per_stage``: a new bar (named after ``Progress.stage``) whenever the stage changes, for pipelines
    such as make-model. ``interrupted_hint`` is printed on Ctrl-C (e.g. how to resume).
    """
    from tqdm import tqdm

    bar, stage = None, None
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if quiet:
                continue
            if bar_per_stage and p.stage != stage and bar is not None:
                bar.close()
                bar = None
            if bar is None:
                stage = p.stage
                bar = tqdm(total=p.total or None, desc=p.stage if bar_per_stage else desc, unit=unit,
                           file=sys.stderr, dynamic_ncols=True, initial=p.done)
            bar.n = p.done
            if p.total and bar.total != p.total:
                bar.total = p.total
            if p.message:
                bar.set_postfix_str(p.message, refresh=False)
            bar.refresh()
            if p.extra.get("log_line"):
                bar.write(p.extra["log_line"], file=sys.stderr)
    except KeyboardInterrupt:
        gen.close()
        if interrupted_hint:
            print(interrupted_hint, file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()


def warn(message: str) -> None:
    """A warning for the user: one ``warning: ...`` line on stderr (results stay on stdout)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Run ``command``: a bad input is one ``error: ...`` line and exit status 2 (``--debug``: traceback)."""
    debug = bool(getattr(args, "debug", False))
    try:
        return command.run(args)
    except TissueInnError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; partial work is kept where the command can resume it", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tissue-inn info | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if debug:
            raise
        print(f"error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2

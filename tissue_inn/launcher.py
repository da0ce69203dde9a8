"""The ``tissue-inn`` console entry point: process settings, then the CLI (:mod:`tissue_inn.cli`).

``tissue-inn gui`` is a CLI command like the others; it imports the GUI only when it runs.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP threads spin by default; on a shared 2-core machine that made the solver 5-10x slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    from tissue_inn.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

"""The ``tissue-inn`` console entry point: ``gui`` opens the desktop app, every other command is the CLI.

Kept outside the layered core so that :mod:`tissue_inn.cli` never imports the GUI.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP threads spin by default; on a shared 2-core machine that made the solver 5-10x slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "gui":
        from tissue_inn.gui.app import main as gui_main

        return gui_main(argv[1:])
    from tissue_inn.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

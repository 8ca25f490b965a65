"""``pet-mta`` command line: one sub-command per module in :mod:`pet_mta.commands`.

Every error is one line on stderr, ``pet-mta COMMAND: error: ...``, naming the bad
argument or file, and a non-zero exit status: 2 for a bad argument (found while
parsing, before any work), 1 for a failure while running. ``PET_MTA_TRACEBACK=1``
in the environment shows the full traceback instead.
"""

import argparse
import importlib
import os
import sys
from typing import List, NoReturn, Optional

import torch

from .commands.inputs import one_line

# each module defines ``add_parser(subparsers)`` that registers its sub-command and
# sets ``func`` (called with the parsed arguments, returns an exit code)
COMMANDS = [
    "pet_mta.commands.md",
    "pet_mta.commands.errors",
    "pet_mta.commands.ensemble",
    "pet_mta.commands.symmetrize",
    "pet_mta.commands.restart",
]

# failures of a command that are the input's fault, reported as one line
# (torch.jit.Error: an exception raised inside an exported model)
INPUT_ERRORS = (ValueError, OSError, RuntimeError, torch.jit.Error)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after every option with a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None or action.default is False or action.required:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser with one-line errors and defaults in its help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    from . import __version__

    parser = Parser(
        prog="pet-mta",
        description="Point Edge Transformer tools for metatomic",
        epilog="Errors are one line; set PET_MTA_TRACEBACK=1 to see tracebacks.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``pet-mta`` with ``argv`` (default: the process arguments).

    :return: the exit status (0 on success)
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument (printed)
        return int(stop.code or 0)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"pet-mta {args.command}: interrupted", file=sys.stderr)
        return 130
    except INPUT_ERRORS as error:
        if os.environ.get("PET_MTA_TRACEBACK"):
            raise
        print(f"pet-mta {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``pet-mta`` command line: one sub-command per module in :mod:`pet_mta.commands`."""

import argparse
import importlib
import sys
from typing import List, Optional

# each module defines ``add_parser(subparsers)`` that registers its sub-command and
# sets ``func`` (called with the parsed arguments, returns an exit code)
COMMANDS = [
    "pet_mta.commands.md",
    "pet_mta.commands.errors",
    "pet_mta.commands.ensemble",
    "pet_mta.commands.symmetrize",
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pet-mta", description="Point Edge Transformer tools for metatomic"
    )
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

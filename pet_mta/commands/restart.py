"""``pet-mta restart [DIR]``: the newest pet_mta checkpoint in DIR that loads.

``mtt train --restart auto`` takes the newest ``.ckpt`` file and fails if it does
not load. pet_mta writes checkpoints atomically, so its own are never truncated,
but a disk error or a copied file can still leave a broken one. This command prints
the newest checkpoint that loads (and, on stderr, every newer one it skipped and
why), for ``mtt train options.yaml --restart "$(pet-mta restart)"``.
"""

import argparse
import sys

from .arguments import add_command, input_directory


def add_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "restart",
        run,
        help="print the newest pet_mta checkpoint that loads (for mtt --restart)",
        description=__doc__,
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=".",
        type=input_directory,
        help="where `mtt train` ran (its outputs/ folder is searched)",
    )


def run(args: argparse.Namespace) -> int:
    from ..metatrain.checkpoints import newest_loadable

    path, skipped = newest_loadable(args.directory)
    for bad, reason in skipped:
        print(f"skipped '{bad}': {reason}", file=sys.stderr)
    if path is None:
        raise ValueError(f"no pet_mta checkpoint in '{args.directory}' loads")
    if skipped:
        print(f"restarting from the newest one that loads: '{path}'", file=sys.stderr)
    print(path)
    return 0

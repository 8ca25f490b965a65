"""Argument types of the ``pet-mta`` sub-commands, and the parser parts several of
them share. Values are checked while parsing, before any model is loaded, so a bad
one costs nothing and gets a one-line error."""

import argparse
import os
from typing import Any, Callable

from ase.io.formats import string2index

from .. import checks


def _typed(
    parse: Callable[[str], Any], check: Callable[[str, Any], Any], expected: str
) -> Callable[[str], Any]:
    """An argument type: ``parse`` the text, then ``check`` the value (one of the
    shared checks of :mod:`pet_mta.checks`, so that the command line and the
    Python API accept the same values)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {expected}, got '{text}'"
            ) from None
        try:
            return check("value", value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _non_negative_number(name: str, value: Any) -> float:
    number = checks.finite_number(name, value)
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return number


positive_int = _typed(int, checks.positive_int, "an integer")
"""An integer >= 1 (step counts, batch sizes, grid orders)."""
positive_float = _typed(float, checks.positive_number, "a number")
"""A finite number > 0 (time steps, cutoffs)."""
non_negative_float = _typed(float, _non_negative_number, "a number")
"""A finite number >= 0 (temperatures, tolerances)."""


def frame_selection(text: str) -> str:
    """One frame (``0``, ``-1``) or a slice (``:``, ``10:20``, ``::5``) of a file, in
    ASE's ``index`` syntax (kept as text, so that messages show it as typed)."""
    if not isinstance(string2index(text), (int, slice)):
        raise argparse.ArgumentTypeError(
            f"expected a frame number or a slice like '0:10', got '{text}'"
        )
    return text


def input_file(path: str) -> str:
    """An existing file."""
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"no such file: '{path}'")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"'{path}' is a directory, not a file")
    return path


def input_directory(path: str) -> str:
    """An existing directory."""
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"no such directory: '{path}'")
    return path


def output_file(path: str) -> str:
    """A file that can be created (or replaced) in an existing, writable directory."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"'{path}' is a directory, not a file")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"directory '{directory}' does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in directory '{directory}'")
    return path


# the parts of a sub-command's parser that several commands share, declared once


def add_command(
    subparsers,
    name: str,
    run: Callable[[argparse.Namespace], int],
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Register the sub-command ``name``: ``help`` in the command list,
    ``description`` on its ``--help``, ``run(args) -> exit status`` what it does."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=run)
    return parser


def add_model_on_structures(
    parser: argparse.ArgumentParser, structures: str, help: str
) -> None:
    """The positional ``model`` (an exported model file) and ``structures`` (a file
    ASE reads, described by ``help``), and ``--device``: the arguments of a command
    running a model on structures through ASE
    (:func:`pet_mta.commands.inputs.ase_calculator`)."""
    parser.add_argument("model", type=input_file, help="exported model (.pt)")
    parser.add_argument(structures, type=input_file, help=help)
    parser.add_argument(
        "--device", default=None, help="torch device (default: the model's first)"
    )


def add_output(
    parser: argparse.ArgumentParser, help: str = "file to write (.pt)"
) -> None:
    """The required ``-o/--output``: a file that can be written."""
    parser.add_argument("-o", "--output", required=True, type=output_file, help=help)


def add_extensions(
    parser: argparse.ArgumentParser,
    help: str = "directory of the TorchScript extensions the models need",
) -> None:
    """``--extensions``: an existing directory of TorchScript extensions."""
    parser.add_argument("--extensions", type=input_directory, default=None, help=help)

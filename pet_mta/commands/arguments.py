"""Argument types of the ``pet-mta`` sub-commands: values are checked while parsing,
before any model is loaded, so a bad one costs nothing and gets a one-line error."""

import argparse
import math
import os

from ase.io.formats import string2index


def positive_int(text: str) -> int:
    """An integer >= 1 (step counts, batch sizes, grid orders)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (time steps, cutoffs)."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (temperatures, tolerances)."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


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

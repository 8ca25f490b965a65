"""Argument checks shared by the model, the wrappers and the command line.

Every check raises a one-line ``ValueError`` that names the argument and the value
it got, and returns the value in its plain Python type. Wrappers run them before
building anything, so that nothing is saved from a bad argument.
"""

import math
import numbers
from typing import Any

from metatomic.torch import ModelOutput


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is an integer ``>= 1`` (``bool`` is not)."""
    return _integer_at_least(name, value, 1, "a positive integer")


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is an integer ``>= 0`` (``bool`` is not)."""
    return _integer_at_least(name, value, 0, "a non-negative integer")


def _integer_at_least(name: str, value: Any, minimum: int, what: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < minimum
    ):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def finite_number(name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is a finite real number (``bool`` is not)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive_number(name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is finite and ``> 0``."""
    number = finite_number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number


def flag(name: str, value: Any) -> bool:
    """``value`` if it is a ``bool`` (``0``, ``"no"`` and the like are refused)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def per_atom(output: ModelOutput) -> bool:
    """Whether a declared output can be computed per atom."""
    return output.sample_kind == "atom"

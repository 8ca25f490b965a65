"""Structures read and models written by ``pet-mta`` commands, and errors as one line.

Models are read with :func:`pet_mta.wrappers.loading.load_file` (a one-line
``ValueError`` naming the file when it does not load).
"""

import re
from typing import TYPE_CHECKING, List, Optional, Union

import ase

from ..files import atomic_write
from ..wrappers.loading import first_line

if TYPE_CHECKING:
    from metatomic.torch import AtomisticModel
    from metatomic_ase import MetatomicCalculator

# "builtins.ValueError: ..." closes the message of an error raised inside TorchScript
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception): (.+)$")


def one_line(error: BaseException) -> str:
    """The gist of ``error`` on one line.

    An error raised inside TorchScript (an exported model) carries the script's
    traceback and ends with the original exception (``builtins.ValueError: ...``):
    that message is kept. Other errors give their first line
    (:func:`pet_mta.wrappers.loading.first_line`).
    """
    for line in reversed(str(error).splitlines()):
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return match.group(2)
    return first_line(error)


def read_structures(path: str, index: Union[int, slice, str] = ":") -> List[ase.Atoms]:
    """Read structures with ASE, always as a list.

    :param index: one frame or a slice (ASE's ``index``)
    :raises ValueError: naming ``path`` when it cannot be read or ``index`` selects
        nothing
    """
    import ase.io

    try:
        selected = ase.io.read(path, index=index)
    except (StopIteration, IndexError):
        raise ValueError(f"'{path}' has no frame {index}") from None
    except Exception as error:
        raise ValueError(f"cannot read '{path}': {one_line(error)}") from error
    frames = [selected] if isinstance(selected, ase.Atoms) else list(selected)
    if not frames:
        raise ValueError(f"index '{index}' selects no structure of '{path}'")
    return frames


def ase_calculator(path: str, device: Optional[str] = None) -> "MetatomicCalculator":
    """An ASE calculator running the exported model saved at ``path``.

    :param device: torch device (``None``: the model's first supported one)
    :raises ValueError: naming ``path`` when the model does not load
    """
    from metatomic_ase import MetatomicCalculator

    from ..wrappers.loading import load_file

    return MetatomicCalculator(load_file(path), device=device)


def save_model(model: "AtomisticModel", path: str) -> None:
    """Save an exported model to ``path`` atomically (never a truncated file)."""
    atomic_write(path, lambda temporary: model.save(temporary, collect_extensions=None))

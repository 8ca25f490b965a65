"""Models and structures read and written by ``pet-mta`` commands; every failure is a
one-line ``ValueError`` naming the file."""

import re
from typing import TYPE_CHECKING, List, Optional, Union

import ase

from ..files import atomic_write

if TYPE_CHECKING:
    from metatomic.torch import AtomisticModel

# "ValueError: ...", "builtins.RuntimeError: ..." (last line of TorchScript errors)
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception): (.+)$")


def one_line(error: BaseException, limit: int = 300) -> str:
    """The gist of ``error`` on one line of at most about ``limit`` characters.

    TorchScript errors carry a script traceback and end with the original exception
    (``builtins.ValueError: ...``): that last line is kept. Long messages are cut
    after their first sentence.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    message = lines[0]
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line)
        if match:
            message = match.group(2)
            break
    if len(message) > limit:
        end = message.find(". ")
        message = message[: end + 1] if 0 < end < limit else message[:limit] + "..."
    return message


def load_model(path: str, extensions: Optional[str] = None) -> "AtomisticModel":
    """Load an exported metatomic model.

    :raises ValueError: naming ``path`` when it is not a loadable model
    """
    from metatomic.torch import load_atomistic_model

    try:
        return load_atomistic_model(path, extensions)
    except Exception as error:
        raise ValueError(
            f"cannot load the model '{path}': {one_line(error)}"
        ) from error


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


def save_model(model: "AtomisticModel", path: str) -> None:
    """Save an exported model to ``path`` atomically (never a truncated file)."""
    atomic_write(path, lambda temporary: model.save(temporary, collect_extensions=None))

"""Files written whole or not at all."""

import os
import uuid
from typing import Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Create or replace ``path`` atomically: ``write`` fills a temporary file in the
    same directory, which is then renamed over ``path``.

    A crash or an error inside ``write`` leaves the previous file (or no file), never a
    truncated one; the temporary file is removed on error.

    :param path: final location of the file
    :param write: called with the temporary path; must create that file
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise

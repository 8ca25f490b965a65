"""Print the CMAKE_PREFIX_PATH that finds torch, metatensor and metatomic-torch.

Every directory comes from the installed Python wheels.
"""

import metatensor.torch.utils
import metatensor.utils
import metatomic.torch.utils
import torch.utils


def prefix_path() -> str:
    """``;``-separated CMake prefix path of the four packages."""
    return ";".join(
        [
            torch.utils.cmake_prefix_path,
            metatensor.utils.cmake_prefix_path,
            metatensor.torch.utils.cmake_prefix_path,
            metatomic.torch.utils.cmake_prefix_path,
        ]
    )


if __name__ == "__main__":
    print(prefix_path())

"""Ship ``pet_mta_metatrain.pth`` at the top of site-packages (wheel and editable).

Everything else is configured in ``pyproject.toml``. The ``.pth`` file imports
``_pet_mta_metatrain_bridge``, which lets metatrain find the ``pet_mta`` architecture.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "pet_mta_metatrain.pth"
SOURCE = Path(__file__).parent / PTH


class build_py_with_pth(build_py):
    """Also copy the ``.pth`` file to the root of the build (= site-packages)."""

    def run(self):
        super().run()
        self.copy_file(str(SOURCE), str(Path(self.build_lib) / PTH))

    def get_outputs(self, include_bytecode=True):
        return [
            *super().get_outputs(include_bytecode),
            str(Path(self.build_lib) / PTH),
        ]


class editable_wheel_with_pth(editable_wheel):
    """Editable installs: put the ``.pth`` file in the wheel root as well.

    setuptools writes everything in the unpacked-wheel folder to site-packages; the
    namespace hook is the one place where that folder is handed to a command.
    """

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copy(SOURCE, Path(installation_dir) / PTH)


setup(
    cmdclass={"build_py": build_py_with_pth, "editable_wheel": editable_wheel_with_pth}
)

"""Make ``pet_mta`` visible to metatrain as the architecture ``pet_mta``.

metatrain 2026.4 finds architectures only as modules named ``metatrain.<name>``
and only lists the folders of its own install in ``find_all_architectures()``.
This stdlib-only module, imported at interpreter start by ``pet_mta_metatrain.pth``,
bridges both without touching metatrain's files:

- a ``sys.meta_path`` finder answers ``metatrain.pet_mta[.sub]`` with the module
  object of ``pet_mta.metatrain[.sub]`` (the same object under both names, so
  classes keep their ``pet_mta.*`` identity);
- once ``metatrain.utils.architectures`` has executed, ``find_all_architectures``
  is wrapped so that it also lists ``pet_mta`` (checkpoint loading checks this).

Nothing is imported until someone imports metatrain, so the start-up cost is a few
microseconds. Delete this module and the ``.pth`` file the day metatrain discovers
external architectures through entry points.
"""

import sys

ALIAS = "metatrain.pet_mta"
REAL = "pet_mta.metatrain"
ARCHITECTURES = "metatrain.utils.architectures"
NAME = "pet_mta"


class _AliasLoader:
    """Load ``metatrain.pet_mta...`` by importing the real module."""

    def __init__(self, real_name):
        self.real_name = real_name

    def create_module(self, spec):
        import importlib

        module = importlib.import_module(self.real_name)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module):
        """The real module already executed: only give its own ``__spec__`` back."""
        module.__spec__ = self.real_spec


class _PatchingLoader:
    """Run the real loader of ``metatrain.utils.architectures``, then patch it."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        patch_architectures(module)


def patch_architectures(module) -> None:
    """Make ``module.find_all_architectures()`` include ``pet_mta`` (idempotent)."""
    import functools

    original = module.find_all_architectures
    if getattr(original, "_pet_mta_bridge", False):
        return

    @functools.wraps(original)
    def find_all_architectures():
        names = original()
        if NAME not in names:
            names.append(NAME)
        return names

    find_all_architectures._pet_mta_bridge = True
    module.find_all_architectures = find_all_architectures


class MetatrainBridgeFinder:
    """``sys.meta_path`` finder implementing the two bridges described above."""

    def find_spec(self, fullname, path=None, target=None):
        # nothing may be imported here before the name checks: this method sees
        # every import, including those of the modules it would import
        if fullname == ALIAS or fullname.startswith(ALIAS + "."):
            import importlib.machinery
            import importlib.util

            real_name = REAL + fullname[len(ALIAS) :]
            try:
                real_spec = importlib.util.find_spec(real_name)
            except ModuleNotFoundError:
                return None
            if real_spec is None:
                return None
            spec = importlib.machinery.ModuleSpec(
                fullname,
                _AliasLoader(real_name),
                is_package=real_spec.submodule_search_locations is not None,
            )
            return spec
        if fullname == ARCHITECTURES:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None:
                        spec.loader = _PatchingLoader(spec.loader)
                    return spec
        return None


def install() -> None:
    """Register the finder once; patch metatrain if it is already imported."""
    if not any(isinstance(f, MetatrainBridgeFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MetatrainBridgeFinder())
    module = sys.modules.get(ARCHITECTURES)
    if module is not None:
        patch_architectures(module)


install()

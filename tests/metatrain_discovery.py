"""Check, in a fresh interpreter, that metatrain finds pet_mta by itself.

Run as ``python metatrain_discovery.py [SITE_PACKAGES]`` by test_metatrain_cli.py
(the test environment) and test_metatrain_install.py (fresh wheel and editable
installs); with SITE_PACKAGES, metatrain must be the one installed there. metatrain
is imported before pet_mta on purpose: the order must not matter.
"""

import sys
from pathlib import Path


def main(site_packages=None) -> None:
    import metatrain.utils.io as io
    from metatrain import PACKAGE_ROOT
    from metatrain.utils.architectures import (
        check_architecture_options,
        find_all_architectures,
        get_architecture_path,
        get_default_hypers,
        import_architecture,
        preload_documentation_module,
    )
    from metatrain.utils.pydantic import get_train_json_schema

    assert "pet_mta" not in sys.modules, "pet_mta imported before metatrain asked"
    if site_packages is not None:
        assert PACKAGE_ROOT == Path(site_packages).resolve() / "metatrain", PACKAGE_ROOT

    # a real folder of metatrain's package, found by metatrain's own listing (the
    # copy in metatrain.utils.io, which checks checkpoints, included)
    assert "pet_mta" in find_all_architectures()
    assert "pet_mta" in io.find_all_architectures()
    path = get_architecture_path("pet_mta")
    assert path == PACKAGE_ROOT / "pet_mta", path
    assert (path / "__init__.py").is_file()
    assert (path / "documentation.py").is_file()

    # documentation.py loaded by file path: the hypers of pet_mta.metatrain
    doc = preload_documentation_module("pet_mta")
    import pet_mta.metatrain as real
    import pet_mta.metatrain.documentation as real_doc

    assert doc.ModelHypers is real_doc.ModelHypers
    assert doc.TrainerHypers is real_doc.TrainerHypers
    assert doc.__doc__ == real_doc.__doc__
    check_architecture_options(name="pet_mta", options=get_default_hypers("pet_mta"))
    # loops over every architecture with preload_documentation_module
    assert "pet_mtaArchitecture" in str(get_train_json_schema(True))

    module = import_architecture("pet_mta")
    assert module.__name__ == "metatrain.pet_mta"
    assert module.__model__ is real.PETModel
    assert module.__trainer__ is real.Trainer

    # no import hook of ours
    ours = [f for f in sys.meta_path if "pet_mta" in type(f).__module__]
    assert not ours, ours
    print("metatrain finds pet_mta in", path)


if __name__ == "__main__":
    main(*sys.argv[1:])

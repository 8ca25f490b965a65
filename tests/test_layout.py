"""The import rules of docs/src/layout.rst, read from the source with ``ast``.

The core (the model, its building blocks in ``modules/`` and the other top-level
modules) imports neither the metatrain adapter, nor the wrappers, nor the command
line; wrappers and the metatrain adapter do not import each other; only
``pet_mta.metatrain`` imports the ``metatrain`` package (an optional extra).
Imports inside functions count too.
"""

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pet_mta"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(path: Path) -> Set[str]:
    """Every module ``path`` imports, as absolute dotted names (``from X import a``
    is ``X.a`` when ``a`` is a sub-module of ours, ``X`` otherwise)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if is_module(full) else base)
    return names


def layer(module: str) -> str:
    """``core``, ``wrappers``, ``metatrain``, ``commands`` (``cli`` included), the
    public face ``pet_mta`` (the package ``__init__``), or ``external``."""
    parts = module.split(".")
    if parts[0] != "pet_mta":
        return "external"
    if len(parts) == 1:
        return "pet_mta"
    if parts[1] in ("wrappers", "metatrain", "commands"):
        return parts[1]
    return "commands" if parts[1] == "cli" else "core"


IMPORTS: Dict[str, Set[str]] = {
    module_name(path): imported(path) for path in sorted(PACKAGE.rglob("*.py"))
}

FORBIDDEN = {
    "core": {"wrappers", "metatrain", "commands", "pet_mta"},
    "wrappers": {"metatrain", "commands", "pet_mta"},
    "metatrain": {"wrappers", "commands", "pet_mta"},
}


def test_the_source_was_read():
    assert "pet_mta.model" in IMPORTS and "pet_mta.modules.gnn_layer" in IMPORTS
    assert "pet_mta.modules.gnn_layer" in IMPORTS["pet_mta.model"]
    assert "pet_mta.wrappers.loading" in IMPORTS["pet_mta.wrappers.ensemble"]
    assert "pet_mta.checks" in IMPORTS["pet_mta.commands.arguments"]  # from .. import
    assert layer("pet_mta.modules.graph") == "core"
    assert layer("pet_mta.cli") == "commands"


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_no_upward_imports(importer):
    wrong = []
    for module, names in IMPORTS.items():
        if layer(module) != importer:
            continue
        for name in names:
            if layer(name) in FORBIDDEN[importer]:
                wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_only_the_adapter_imports_metatrain():
    importers = {
        module
        for module, names in IMPORTS.items()
        if any(name.split(".")[0] == "metatrain" for name in names)
    }
    assert importers  # the adapter does
    assert {layer(module) for module in importers} == {"metatrain"}

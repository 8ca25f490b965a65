"""One hyper-parameter table (:data:`pet_mta.hypers.MODEL_HYPERS`): metatrain's
``ModelHypers`` is built from it and agrees with it field by field, and every value
the table accepts passes ``mtt train``'s own option checking."""

import ast
import typing
from pathlib import Path

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from metatrain.utils.architectures import (  # noqa: E402
    check_architecture_options,
    get_default_hypers,
    preload_documentation_module,
)
from metatrain.utils.hypers import init_with_defaults  # noqa: E402
from metatrain.utils.pydantic import get_train_json_schema  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    TINY_MODEL,
    emt_frames,
    mtt_train,
    run_mtt,
    write_frames,
)
from omegaconf import OmegaConf  # noqa: E402

import pet_mta  # noqa: E402
from pet_mta.hypers import DEFAULT_MODEL_HYPERS, MODEL_HYPERS, resolve_hypers  # noqa: E402
from pet_mta.metatrain.documentation import METATRAIN_FORMS, ModelHypers  # noqa: E402

STRING_CHOICES = [h for h in MODEL_HYPERS if h.type is str and h.choices]


def _field(name: str):
    """(type, pydantic FieldInfo) of ``name`` in ModelHypers."""
    annotation = ModelHypers.__annotations__[name]
    assert typing.get_origin(annotation) is typing.Annotated, name
    kind, *metadata = typing.get_args(annotation)
    (info,) = metadata
    return kind, info


def _options(**model) -> dict:
    """Architecture options as ``mtt train`` builds them: defaults, then ours."""
    merged = OmegaConf.merge(
        get_default_hypers("pet_mta"), {"name": "pet_mta", "model": model}
    )
    return OmegaConf.to_container(merged, resolve=True)


def test_metatrain_view_agrees_with_the_table_field_by_field():
    names = [h.name for h in MODEL_HYPERS]
    assert list(ModelHypers.__annotations__) == names
    assert list(get_default_hypers("pet_mta")["model"]) == names
    defaults = init_with_defaults(ModelHypers)
    for h in MODEL_HYPERS:
        kind, info = _field(h.name)
        assert h.doc and h.doc in info.description, h.name
        if h.name in METATRAIN_FORMS:
            continue
        assert defaults[h.name] == h.default, h.name
        if h in STRING_CHOICES:
            assert typing.get_origin(kind) is typing.Literal, h.name
            assert set(typing.get_args(kind)) == set(h.choices), h.name
        else:
            assert kind == h.type, h.name
    # metatrain's forms of the keys kept for `pet` files mean the table's default
    assert set(METATRAIN_FORMS) == {"long_range"}
    assert resolve_hypers(**defaults) == {
        **DEFAULT_MODEL_HYPERS,
        "long_range": defaults["long_range"],
    }


def test_metatrain_reads_the_same_table_by_file_path():
    """What metatrain's schema and docs tools load (documentation.py by path)."""
    documentation = preload_documentation_module("pet_mta")
    assert documentation.ModelHypers is ModelHypers
    schema = get_train_json_schema(True)["$defs"]
    (key,) = [
        k
        for k in schema
        if k.endswith("pet_mta__metatrain__documentation__ModelHypers")
    ]
    properties = schema[key]["properties"]
    assert list(properties) == [h.name for h in MODEL_HYPERS]
    for h in MODEL_HYPERS:
        assert h.doc in properties[h.name]["description"], h.name
    assert properties["edge_embedding"]["enum"] == ["cartesian", "distance"]
    assert properties["edge_embedding"]["default"] == "cartesian"


@pytest.mark.parametrize(
    "name, value", [(h.name, c) for h in STRING_CHOICES for c in h.choices]
)
def test_every_choice_passes_metatrain_and_the_core(name, value):
    check_architecture_options(name="pet_mta", options=_options(**{name: value}))
    assert resolve_hypers(**{name: value})[name] == value


@pytest.mark.parametrize("name", [h.name for h in STRING_CHOICES])
def test_a_bad_choice_is_refused_by_both_naming_it(name):
    with pytest.raises(Exception, match=f"model.{name}"):
        check_architecture_options(name="pet_mta", options=_options(**{name: "bad"}))
    with pytest.raises(ValueError, match=f"'{name}'"):
        resolve_hypers(**{name: "bad"})


def test_a_new_table_entry_reaches_metatrain():
    """The metatrain view is built from the table, not written beside it."""
    from pet_mta.hypers import Hyper
    from pet_mta.metatrain.documentation import model_hypers_class

    extra = Hyper("made_up", 3, int, "", "a hyper-parameter for this test")
    rebuilt = model_hypers_class([*MODEL_HYPERS, extra])
    assert init_with_defaults(rebuilt) == {
        **init_with_defaults(ModelHypers),
        "made_up": 3,
    }
    kind, info = typing.get_args(rebuilt.__annotations__["made_up"])
    assert kind is int and info.description == "a hyper-parameter for this test"


def _rotated(atoms, seed: int):
    rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T
    turned.cell = atoms.cell.array @ rotation.T
    return turned


def test_mtt_train_and_export_with_edge_embedding(tmp_path):
    """``edge_embedding: distance`` passes ``mtt train`` and reaches the model
    (energies exactly rotation-invariant, float64); ``mtt train`` and ``mtt export``
    print no deprecation of ``ModelOutput.quantity``."""
    from metatomic_ase import MetatomicCalculator

    frames = emt_frames(6)
    data = write_frames(tmp_path / "data.xyz", frames)
    options = {
        "seed": 0,
        "base_precision": 64,
        "architecture": {
            "name": "pet_mta",
            "model": {**TINY_MODEL, "edge_embedding": "distance"},
            "training": {"batch_size": 3, "num_epochs": 1, "num_workers": 0},
        },
        "training_set": {
            "systems": {"read_from": data, "length_unit": "angstrom"},
            "targets": {"energy": {"key": "energy", "unit": "eV"}},
        },
        "validation_set": 0.34,
        "test_set": 0.0,
    }
    logs = [
        mtt_train(options, tmp_path),
        run_mtt(tmp_path, "export", "model.ckpt", "-o", "exported.pt"),
    ]
    for log in logs:
        assert "quantity is deprecated" not in log
        assert "ModelOutput(quantity" not in log

    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["model_data"]["model_hypers"]["edge_embedding"] == "distance"
    calculator = MetatomicCalculator(str(tmp_path / "exported.pt"))
    energies = []
    for atoms in (frames[0], _rotated(frames[0], 1), _rotated(frames[0], 2)):
        atoms = atoms.copy()
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
    assert np.ptp(energies) < 1e-9 * max(1.0, abs(energies[0]))


def test_export_does_not_import_the_package_init():
    """export.py takes the version from pet_mta._version, not the package."""
    source = Path(pet_mta.export.__file__).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert not (node.level == 1 and node.module is None), "from . import"
            assert node.module != "pet_mta", "from pet_mta import"
        if isinstance(node, ast.Import):
            assert all(a.name != "pet_mta" for a in node.names), "import pet_mta"
    assert pet_mta._version.__version__ == pet_mta.__version__
    assert f"v{pet_mta.__version__}" in pet_mta.export.default_metadata().name

"""Every ``pet-mta`` error is one line on stderr naming the argument or file, with a
non-zero exit status and no traceback; outputs are written atomically."""

import os

import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from conftest import tiny_pet, triclinic_alloy
from metatomic.torch import ModelOutput, load_atomistic_model

from pet_mta.cli import main
from pet_mta.commands.inputs import one_line
from pet_mta.files import atomic_write
from pet_mta.neighbors import systems_from_ase

TYPES = (13, 29)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny exported model and structure files, good and bad (paths by name)."""
    root = tmp_path_factory.mktemp("cli")
    paths = {name: str(root / name) for name in FILE_NAMES}
    tiny_pet(TYPES).export().save(paths["model.pt"])
    tiny_pet(TYPES, seed=1).export().save(paths["other.pt"])
    bare = triclinic_alloy()
    ase.io.write(paths["bare.xyz"], bare)
    labelled = triclinic_alloy()
    labelled.calc = EMT()
    labelled.get_potential_energy()
    ase.io.write(paths["labelled.xyz"], labelled)
    broken = labelled.copy()
    broken.positions[0, 0] = np.nan
    ase.io.write(paths["nan.xyz"], [labelled, broken])
    gold = bare.copy()
    gold.numbers[0] = 79
    ase.io.write(paths["gold.xyz"], gold)
    with open(paths["corrupt.pt"], "w") as file:
        file.write("not a model")
    with open(paths["corrupt.xyz"], "w") as file:
        file.write("garbage\nmore garbage\n")
    paths["dir"] = str(root)
    paths["missing-dir/out.pt"] = str(root / "missing-dir" / "out.pt")
    paths["out.pt"] = str(root / "out.pt")
    return paths


FILE_NAMES = [
    "model.pt",
    "other.pt",
    "bare.xyz",
    "labelled.xyz",
    "nan.xyz",
    "gold.xyz",
    "corrupt.pt",
    "corrupt.xyz",
]

# (arguments, text the message must contain); file names are replaced by paths
BAD_CALLS = [
    ([], "required: command"),
    (["fly"], "invalid choice: 'fly'"),
    # md
    (["md", "missing.pt", "labelled.xyz"], "argument model: no such file"),
    (["md", "model.pt", "missing.xyz"], "argument structure: no such file"),
    (["md", "corrupt.pt", "labelled.xyz"], "cannot load model '{corrupt.pt}'"),
    (["md", "labelled.xyz", "labelled.xyz"], "cannot load model"),
    (["md", "model.pt", "corrupt.xyz"], "cannot read '{corrupt.xyz}'"),
    (["md", "model.pt", "labelled.xyz", "--steps", "-5"], "argument --steps"),
    (["md", "model.pt", "labelled.xyz", "--steps", "1.5"], "argument --steps"),
    (["md", "model.pt", "labelled.xyz", "--temperature", "-100"], "--temperature"),
    (["md", "model.pt", "labelled.xyz", "--temperature", "nan"], "--temperature"),
    (["md", "model.pt", "labelled.xyz", "--timestep", "0"], "argument --timestep"),
    (["md", "model.pt", "labelled.xyz", "--timestep", "inf"], "argument --timestep"),
    (["md", "model.pt", "labelled.xyz", "--max-drift", "-1"], "--max-drift"),
    (["md", "model.pt", "labelled.xyz", "--index", "999"], "has no frame 999"),
    (["md", "model.pt", "labelled.xyz", "--index", "x"], "argument --index"),
    (["md", "model.pt", "nan.xyz", "--index", "1"], "NaN or infinite atomic pos"),
    (["md", "model.pt", "gold.xyz", "--steps", "1"], "'79'"),
    # errors
    (["errors", "model.pt", "bare.xyz"], "'{bare.xyz}': none of the 1 structures"),
    (["errors", "model.pt", "corrupt.xyz"], "cannot read '{corrupt.xyz}'"),
    (["errors", "corrupt.pt", "labelled.xyz"], "cannot load model"),
    (["errors", "model.pt", "missing.xyz"], "argument data: no such file"),
    (["errors", "model.pt", "labelled.xyz", "--index", "abc"], "argument --index"),
    (["errors", "model.pt", "labelled.xyz", "--index", "5:"], "selects no struct"),
    (["errors", "model.pt", "nan.xyz"], "'{nan.xyz}': structure 1 has NaN"),
    # ensemble
    (
        ["ensemble", "model.pt", "other.pt", "corrupt.pt", "-o", "out.pt"],
        "cannot load model '{corrupt.pt}'",
    ),
    (["ensemble", "model.pt", "-o", "out.pt"], "at least two"),
    (["ensemble", "model.pt", "missing.pt", "-o", "out.pt"], "no such file"),
    (
        ["ensemble", "model.pt", "other.pt", "-o", "missing-dir/out.pt"],
        "argument -o/--output: directory",
    ),
    (["ensemble", "model.pt", "other.pt", "-o", "dir"], "is a directory"),
    (["ensemble", "model.pt", "other.pt"], "required: -o/--output"),
    (
        ["ensemble", "model.pt", "other.pt", "-o", "out.pt", "--extensions", "nope"],
        "argument --extensions: no such directory",
    ),
    # symmetrize
    (["symmetrize", "model.pt", "-o", "out.pt", "--batch-size", "0"], "--batch-size"),
    (["symmetrize", "model.pt", "-o", "out.pt", "--outer-cutoff", "-1"], "--outer-c"),
    (["symmetrize", "model.pt", "-o", "out.pt", "--aux-grid", "0"], "--aux-grid"),
    (["symmetrize", "model.pt", "-o", "out.pt", "--mode", "global"], "--mode"),
    (["symmetrize", "model.pt", "-o", "out.pt", "--beta", "x"], "argument --beta"),
    (
        ["symmetrize", "model.pt", "-o", "out.pt", "--auxiliary", "missing.pt"],
        "argument --auxiliary: no such file",
    ),
    (
        ["symmetrize", "model.pt", "-o", "out.pt", "--auxiliary", "corrupt.pt"],
        "cannot load model '{corrupt.pt}'",
    ),
    (["symmetrize", "corrupt.pt", "-o", "out.pt"], "cannot load model"),
    (["symmetrize", "model.pt", "-o", "missing-dir/out.pt"], "does not exist"),
    (["restart", "missing-dir"], "argument directory: no such directory"),
    (["restart", "model.pt"], "argument directory: no such directory"),
]


def resolve(files, text: str) -> str:
    """``name`` or ``{name}`` of a prepared file -> its path."""
    for name, path in files.items():
        text = text.replace("{" + name + "}", path)
    return files.get(text, text)


@pytest.mark.parametrize("argv, expected", BAD_CALLS)
def test_bad_call_is_one_line(files, capsys, argv, expected):
    status = main([resolve(files, arg) for arg in argv])
    captured = capsys.readouterr()
    assert status != 0
    message = captured.err.strip()
    assert "\n" not in message, message
    assert "Traceback" not in message
    assert message.startswith("pet-mta")
    assert resolve(files, expected) in message
    assert len(message) < 400
    # nothing written on a failure
    assert not os.path.exists(files["out.pt"])


def test_bad_arguments_fail_before_any_work(files, capsys, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("pet_mta.wrappers.loading.load_file", no_loading)
    for argv in (
        ["ensemble", "model.pt", "other.pt", "-o", "missing-dir/out.pt"],
        ["symmetrize", "model.pt", "-o", "out.pt", "--batch-size", "0"],
        ["md", "model.pt", "labelled.xyz", "--timestep", "0"],
    ):
        assert main([resolve(files, arg) for arg in argv]) == 2
        assert "argument" in capsys.readouterr().err


def test_traceback_escape_hatch(files, monkeypatch):
    monkeypatch.setenv("PET_MTA_TRACEBACK", "1")
    with pytest.raises(ValueError, match="none of the 1 structures"):
        main(["errors", files["model.pt"], files["bare.xyz"]])


def test_help_shows_defaults(capsys):
    assert main(["md", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 200)" in text
    assert "(default: 300.0)" in text
    assert main(["symmetrize", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 32)" in text and "(default: rotation-average)" in text


def test_ensemble_says_where_it_saved(files, capsys, tmp_path):
    output = tmp_path / "ensemble.pt"
    output.write_text("previous file")
    argv = ["ensemble", files["model.pt"], files["other.pt"], "-o", str(output)]
    assert main(argv) == 0
    assert f"saved the ensemble of 2 models to {output}" in capsys.readouterr().out
    assert (
        "energy_uncertainty" in load_atomistic_model(str(output)).capabilities().outputs
    )
    assert os.listdir(tmp_path) == ["ensemble.pt"]  # no temporary file left


def test_errors_on_labelled_data(files, capsys):
    assert main(["errors", files["model.pt"], files["labelled.xyz"]]) == 0
    out = capsys.readouterr().out
    assert "1 structures from" in out and "forces" in out


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("old")

    def failing(temporary: str):
        with open(temporary, "w") as file:
            file.write("half a mod")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.pt"]

    def writing(temporary: str):
        assert os.path.dirname(temporary) == str(tmp_path)
        with open(temporary, "w") as file:
            file.write("new")

    atomic_write(path, writing)
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_one_line_keeps_the_torchscript_message():
    model = tiny_pet(TYPES)
    systems = systems_from_ase([triclinic_alloy()], model, dtype=torch.float32)
    with pytest.raises(torch.jit.Error) as error:
        torch.jit.script(model)(systems, {"energy": ModelOutput()}, None)
    assert "\n" in str(error.value)
    assert one_line(error.value) == (
        "system 0 has dtype torch.float32 but the model uses torch.float64"
    )


def test_one_line_cuts_long_messages():
    message = one_line(RuntimeError("first sentence. " + "x" * 500 + "\nmore"))
    assert message == "first sentence."
    assert one_line(StopIteration()) == "StopIteration"

"""Every bad hyper-parameter gives a one-line ValueError that names it."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_pet, triclinic_alloy
from metatomic.torch import ModelOutput

from pet_mta import PET
from pet_mta.checks import non_negative_int, positive_int, positive_number
from pet_mta.hypers import MODEL_HYPERS, hypers_table, legacy_value, resolve_hypers
from pet_mta.neighbors import systems_from_ase


@pytest.mark.parametrize(
    "name, value",
    [
        ("num_heads", 0),
        ("num_heads", -2),
        ("num_gnn_layers", 1.5),
        ("num_attention_layers", True),
        ("d_pet", "16"),
        ("d_node", None),
        ("cutoff", math.nan),
        ("cutoff", math.inf),
        ("cutoff", -1.0),
        ("cutoff", "4.5"),
        ("cutoff_width", math.nan),
        ("cutoff_width", 0.0),
        ("attention_temperature", math.nan),
        ("attention_temperature", 0.0),
        ("radial_basis", -1),
        ("radial_basis", 2.5),
        ("radial_basis", "8"),
    ],
)
def test_bad_value_names_the_hyper(name, value):
    with pytest.raises(ValueError) as error:
        resolve_hypers(**{name: value})
    message = str(error.value)
    assert f"'{name}'" in message
    assert "\n" not in message
    # the model constructor goes through the same check
    with pytest.raises(ValueError, match=f"'{name}'"):
        PET(atomic_types=[1], **{name: value})


# the smallest value each kind of check refuses, and how the docs table words it
BOUNDARIES = {
    positive_int: (0, "int >= 1"),
    non_negative_int: (-1, "int >= 0"),
    positive_number: (0.0, "float > 0"),
}


@pytest.mark.parametrize(
    "hyper", [h for h in MODEL_HYPERS if h.check is not None], ids=lambda h: h.name
)
def test_the_table_check_of_every_hyper_is_run_and_documented(hyper):
    refused, words = BOUNDARIES[hyper.check]
    with pytest.raises(ValueError, match=f"'{hyper.name}'"):
        resolve_hypers(**{hyper.name: refused})
    row = hypers_table().split(f"``{hyper.name}``")[1].split("* -")[0]
    assert words in row


def test_every_size_and_length_of_the_model_has_a_check():
    checked = {h.name for h in MODEL_HYPERS if h.check is not None}
    sizes = {h.name for h in MODEL_HYPERS if h.name.startswith(("d_", "num_"))}
    lengths = {h.name for h in MODEL_HYPERS if h.unit == "length"}
    unused = {"num_neighbors_adaptive", "cutoff_width_adaptive"}  # must stay default
    assert (sizes | lengths) - unused <= checked


def test_width_larger_than_cutoff():
    with pytest.raises(ValueError, match="'cutoff_width' \\(3.0\\) must not exceed"):
        resolve_hypers(cutoff=2.0, cutoff_width=3.0)


def test_numpy_and_integral_values_accepted():
    hypers = resolve_hypers(d_pet=np.int64(16), num_heads=2, cutoff=np.float64(3.0))
    assert hypers["d_pet"] == 16 and hypers["cutoff"] == 3.0


def test_dtype_mismatch_names_both_dtypes():
    model = tiny_pet()
    systems = systems_from_ase([triclinic_alloy()], model, dtype=torch.float32)
    outputs = {"energy": ModelOutput(sample_kind="system")}
    expected = "dtype torch.float32 but the model uses torch.float64"
    with pytest.raises(ValueError, match=expected):
        model(systems, outputs, None)
    # TorchScript (exported models) spells dtypes out too, not as enum numbers
    with pytest.raises(torch.jit.Error, match=expected):
        torch.jit.script(model)(systems, outputs, None)


@pytest.mark.parametrize(
    "hyper", [h for h in MODEL_HYPERS if h.legacy], ids=lambda h: h.name
)
def test_legacy_values_are_accepted_values(hyper):
    """What older models behave as is a value the table accepts."""
    assert (
        resolve_hypers(**{hyper.name: hyper.legacy[0]})[hyper.name] == hyper.legacy[0]
    )
    assert legacy_value(hyper.name) == hyper.legacy[0]


def test_original_hyper_has_no_legacy_value():
    """Asking for the legacy value of an original PET option is refused by name."""
    with pytest.raises(KeyError, match="'cutoff'"):
        legacy_value("cutoff")

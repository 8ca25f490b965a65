"""Wrappers refuse what they cannot handle while being built (before anything can
be saved), with a one-line ``ValueError`` naming the argument, output or file."""

import math

import pytest
import torch
from conftest import tiny_pet
from ecse_helpers import PairPotential, save_pair_potential
from metatomic.torch import ModelOutput

from pet_mta import Ensemble, Symmetrized


def refused(build, match: str) -> str:
    """Run ``build()``, check it raises a one-line ValueError matching ``match``."""
    with pytest.raises(ValueError, match=match) as info:
        build()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def pet():
    return tiny_pet(num_gnn_layers=1)


@pytest.mark.parametrize(
    "name, value",
    [
        ("batch_size", 0),
        ("batch_size", -3),
        ("batch_size", 2.5),
        ("batch_size", True),
        ("outer_cutoff", 0.0),
        ("outer_cutoff", -1.0),
        ("outer_cutoff", math.nan),
        ("outer_cutoff", math.inf),
        ("outer_cutoff", "5"),
        ("aux_grid", 0),
        ("mode", "global"),
        ("inversion", "yes"),
        ("low_memory", 1),
        ("cutoff_width", -0.1),
        ("cutoff_width", 3.5),  # not below outer_cutoff (the backbone's 3.5)
        ("beta", math.nan),
        ("spread_start", 1.5),
        ("spread_width", 0.0),
        ("spread_width", 0.3),  # not below spread_start
        ("weight_beta", -1.0),
        ("spread_penalty", -0.5),
        ("spread_penalty", math.nan),
        ("spread_penalty_end", 0.05),  # not above spread_start - spread_width
        ("spread_penalty_end", 1.5),
        ("aux_threshold", 0.0),
        ("aux_width", math.inf),
        ("prune_threshold", 0.95),  # + prune_width > 1: the best frame is pruned
        ("n_prunings", -1),
        ("n_prunings", 1.5),
        ("prune_on", -0.5),
        ("auxiliary", "nonsense"),
    ],
)
def test_symmetrized_bad_argument(pet, name, value):
    message = refused(lambda: Symmetrized(pet, **{name: value}), name)
    assert repr(value) in message or str(value) in message


def test_symmetrized_other_bad_arguments(pet):
    refused(
        lambda: Symmetrized(pet, mode="whole", low_memory=True),
        "low_memory is available in the local and auto modes",
    )
    refused(
        lambda: Symmetrized(pet, foo=1.0), r"unknown ECSE hyper-parameters \['foo'\]"
    )
    refused(lambda: Symmetrized(42), "backbone must be a metatomic module")
    refused(lambda: Symmetrized(pet, auxiliary=42), "auxiliary must be a metatomic")


def test_auxiliary_must_stand_in_for_the_backbone(pet):
    few_types = tiny_pet((1, 6, 8), num_gnn_layers=1, edge_embedding="distance")
    refused(
        lambda: Symmetrized(pet, auxiliary=few_types),
        r"auxiliary does not know the atomic types \[13, 29\]",
    )
    single = tiny_pet(num_gnn_layers=1, dtype=torch.float32)
    refused(lambda: Symmetrized(pet, auxiliary=single), "auxiliary must use .* dtype")
    backbone = PairPotential(per_atom=True)
    millielectronvolt = tiny_pet(
        (28,), targets={"energy": {"unit": "meV", "quantity": "energy"}}
    )
    refused(
        lambda: Symmetrized(backbone, auxiliary=millielectronvolt),
        "auxiliary gives 'energy' in 'meV', the backbone in 'eV'",
    )
    nothing_shared = tiny_pet((28,), targets={"mtt::other": {"quantity": ""}})
    refused(
        lambda: Symmetrized(backbone, auxiliary=nothing_shared),
        "auxiliary predicts none of the backbone's outputs",
    )
    # per-atom energies are wanted (the backbone gives them, or local mode)
    for mode in ("whole", "local"):
        refused(
            lambda mode=mode: Symmetrized(
                backbone, auxiliary=PairPotential(), mode=mode
            ),
            "auxiliary gives 'energy' per system only",
        )
    # a total-energy auxiliary is fine for a total-energy backbone in whole mode
    Symmetrized(PairPotential(), auxiliary=PairPotential(cutoff=3.0))


class NeedsMasses(PairPotential):
    """A pair potential that requests a per-atom input (``mass``)."""

    def requested_inputs(self):
        return {"mass": ModelOutput(unit="u", sample_kind="atom")}


def test_local_mode_refuses_what_it_would_get_wrong(tmp_path, pet):
    # total energy only: every cut-out cluster would count in full (3x on a trimer)
    pair = save_pair_potential(str(tmp_path / "pair.pt"))
    refused(
        lambda: Symmetrized(pair, mode="local"),
        "mode='local' needs per-atom outputs, but the backbone's 'energy'",
    )
    Symmetrized(pair, mode="whole")
    short = PairPotential(per_atom=True, interaction_range=2.0)
    refused(
        lambda: Symmetrized(short, mode="local"),
        r"interaction_range \(2.0\), but it requests a neighbour list up to 4.0",
    )
    refused(lambda: Symmetrized(NeedsMasses(per_atom=True), mode="local"), "mass")
    Symmetrized(NeedsMasses(per_atom=True), mode="whole")
    refused(
        lambda: Symmetrized(Symmetrized(pet), mode="local"),
        "finite interaction_range",
    )


def test_whole_mode_requests_the_backbone_inputs():
    model = Symmetrized(NeedsMasses(), mode="whole")
    assert list(model.export().requested_inputs(use_new_names=True)) == ["mass"]


def test_files_that_do_not_load_are_named(tmp_path, pet):
    good = str(tmp_path / "good.pt")
    pet.export().save(good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model at all")
    missing = str(tmp_path / "missing.pt")
    refused(lambda: Symmetrized(missing), f"cannot load model '{missing}': no such")
    refused(lambda: Symmetrized(str(bad)), f"cannot load model '{bad}': ")
    refused(lambda: Symmetrized(str(tmp_path)), "not a file")
    refused(lambda: Symmetrized(good, auxiliary=str(bad)), f"cannot load model '{bad}'")
    refused(lambda: Ensemble([good, good, str(bad)]), f"cannot load model '{bad}'")
    refused(lambda: Ensemble([good, missing]), f"cannot load model '{missing}'")


def test_ensemble_bad_arguments(tmp_path, pet):
    path = str(tmp_path / "pet.pt")
    pet.export().save(path)
    refused(lambda: Ensemble(path), "models must be a list")
    refused(lambda: Ensemble([path]), "at least two")
    refused(lambda: Ensemble([path, path], stack="no"), "stack must be True or False")
    refused(lambda: Ensemble([path, 3]), "member 1 must be a metatomic module")
    nickel = tiny_pet((28,), num_gnn_layers=1)
    refused(lambda: Ensemble([pet, nickel]), "no atomic type in common")


def test_ensemble_members_with_unconvertible_units():
    first = tiny_pet((28,), num_gnn_layers=1, targets={"mtt::x": {"unit": "eV"}})
    other = tiny_pet((28,), num_gnn_layers=1, targets={"mtt::x": {"unit": "angstrom"}})
    refused(
        lambda: Ensemble([first, other]),
        "member 1 gives 'mtt::x' in 'angstrom', member 0 in 'eV'",
    )


def test_every_rotation_grid_order_gives_a_grid():
    """Orders without a tabulated Lebedev rule (even ones) take the next one up."""
    from pet_mta.wrappers.ecse.rotation_average import rotation_grid

    for order in (4, 6, 7):
        rotations, weights = rotation_grid(order)
        assert abs(float(weights.sum()) - 1.0) < 1e-12
        assert rotations.shape[1:] == (3, 3)

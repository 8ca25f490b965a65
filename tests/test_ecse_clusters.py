"""ECSE local mode: the rotated copies of a batch as one system, and the cut-out
clusters without the pairs that cannot reach the centre (float64, exact)."""

import math

import pytest
import torch
from conftest import tiny_pet, triclinic_alloy
from ecse_helpers import PairPotential, make_systems
from metatensor.torch import Labels
from metatomic.torch import ModelOutput, NeighborListOptions

from pet_mta import Symmetrized
from pet_mta.wrappers.ecse.averages import Selection
from pet_mta.wrappers.ecse.local import receptive_fields
from pet_mta.wrappers.ecse.systems import (
    by_copy,
    message_passing_reach,
    rotated_copies,
)

ENERGY = {"energy": ModelOutput(sample_kind="atom")}


def random_frames(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, 3, 3, dtype=torch.float64, generator=generator))
    return q[0]


def centre_energies(pet, clusters, rows, frames):
    """Energy of every copy's centre, and its gradient w.r.t. the frames."""
    frames = frames.clone().requires_grad_(True)
    system, centres = rotated_copies(
        clusters, rows, frames, pet.requested_neighbor_lists()
    )
    selected = Labels(
        ["system", "atom"],
        torch.stack([torch.zeros_like(centres), centres], dim=1).to(torch.int32),
    )
    prediction = by_copy(pet([system], ENERGY, selected)["energy"], centres)
    block = prediction.block()
    copy = block.samples.column("system").to(torch.long)
    assert torch.all(block.samples.column("atom") == 0)
    energies = torch.zeros(rows.shape[0], dtype=torch.float64)
    energies = energies.index_add(0, copy, block.values[:, 0])
    (grad,) = torch.autograd.grad(energies.sum(), frames)
    return energies.detach(), grad


def clusters_of(pet, atoms, trimmed: bool):
    """Cut-out clusters of every atom, trimmed as in ECSE or with every pair."""
    model = Symmetrized(pet, mode="local")
    systems = make_systems(atoms, model)
    reach = math.inf
    if trimmed:
        reach = model.cluster_reach
        assert reach == message_passing_reach(
            model.backbone_lists, model.cut_out_list.cutoff
        )
        assert reach < math.inf
    return receptive_fields(
        systems,
        model.cut_out_list,
        list(range(len(atoms))),
        Selection(systems, None),
        model.backbone_lists,
        reach,
    )


@pytest.mark.parametrize("layers", [2, 3])
def test_trimmed_clusters_give_the_centre_outputs_of_full_ones(layers):
    pet = tiny_pet(num_gnn_layers=layers)
    atoms = triclinic_alloy().repeat((2, 1, 1))
    full = clusters_of(pet, atoms, trimmed=False)
    trimmed = clusters_of(pet, atoms, trimmed=True)
    # the trimmed clusters keep fewer pairs (and atoms), but every atom of the
    # full cluster that any kept pair touches
    for row in full:
        assert trimmed[row].pairs[0].shape[0] < full[row].pairs[0].shape[0]
        assert trimmed[row].types.shape[0] <= full[row].types.shape[0]
    rows = torch.tensor([0, 0, 0, 1, 1, 2, 5, 5, 7, 7, 7])
    frames = random_frames(rows.shape[0], seed=layers)
    expected, expected_grad = centre_energies(pet, full, rows, frames)
    energies, grad = centre_energies(pet, trimmed, rows, frames)
    torch.testing.assert_close(energies, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-11)


def test_one_system_per_batch_gives_the_outputs_of_one_system_per_copy():
    pet = tiny_pet(num_gnn_layers=2)
    clusters = clusters_of(pet, triclinic_alloy(), trimmed=True)
    # a cluster appearing in two separate runs of copies
    rows = torch.tensor([2, 2, 0, 3, 3, 2])
    frames = random_frames(rows.shape[0], seed=11)
    batched, batched_grad = centre_energies(pet, clusters, rows, frames)
    for c in range(rows.shape[0]):
        single, single_grad = centre_energies(
            pet, clusters, rows[c : c + 1], frames[c : c + 1]
        )
        torch.testing.assert_close(batched[c : c + 1], single, rtol=0, atol=1e-13)
        torch.testing.assert_close(
            batched_grad[c : c + 1], single_grad, rtol=0, atol=1e-12
        )
    # copies of one cluster in different frames differ (the backbone is not
    # invariant): the copies are not mixed up
    assert abs(float(batched[0] - batched[1])) > 1e-6


def test_message_passing_reach():
    def lists(*cutoffs):
        return [
            NeighborListOptions(cutoff=c, full_list=True, strict=True) for c in cutoffs
        ]

    assert message_passing_reach(lists(3.5), 7.0) == pytest.approx(3.5, abs=1e-5)
    # never below the exact reach: an extra pair is harmless, a missing one is not
    assert message_passing_reach(lists(3.5), 7.0) > 3.5
    assert message_passing_reach(lists(3.0), 9.5) == pytest.approx(6.5, abs=2e-5)
    # a short-range model may read any pair of its environment
    assert math.isinf(message_passing_reach(lists(3.5), 3.5))
    assert math.isinf(message_passing_reach(lists(3.5), 5.0))
    # several lists: no assumption
    assert math.isinf(message_passing_reach(lists(2.0, 3.0), 8.0))


def test_only_pet_clusters_are_trimmed(tmp_path):
    """A foreign backbone's interaction range may not be a message-passing reach
    (here a pair potential that declares twice its cutoff): its clusters keep every
    pair. PET's are trimmed, in Python or loaded from a file."""
    pair = PairPotential(cutoff=3.0, per_atom=True, interaction_range=6.0)
    foreign = Symmetrized(pair, mode="local")
    assert math.isinf(foreign.cluster_reach)
    pet = tiny_pet(num_gnn_layers=2)
    assert Symmetrized(pet, mode="local").cluster_reach < math.inf
    pet.export().save(str(tmp_path / "pet.pt"))
    assert Symmetrized(str(tmp_path / "pet.pt"), mode="local").cluster_reach < math.inf


@pytest.mark.parametrize(
    "hypers",
    [
        {"num_gnn_layers": 2},
        {"num_gnn_layers": 2, "central_stream": True, "featurizer_type": "residual"},
        {"num_gnn_layers": 3, "central_stream": True},
    ],
)
def test_local_mode_with_the_read_tokens_only(hypers):
    """ECSE's local mode gives the same energy, forces and virial when the
    backbone's last blocks compute only the tokens the next layer reads."""
    pet = tiny_pet(num_attention_layers=2, **hypers)
    model = Symmetrized(pet, mode="local")
    atoms = triclinic_alloy()
    results = []
    computed = [0, 0]  # output tokens of the first layer's last block

    def count(module, args, out):
        computed[int(pet.read_tokens_only)] += out[0].shape[0] + out[1].shape[0]

    handle = pet.gnn_layers[0].blocks[-1].register_forward_hook(count)
    for read_only in (False, True):
        pet.read_tokens_only = read_only
        systems = make_systems(atoms, model)
        energy = model(systems, ENERGY)["energy"].block().values.sum()
        grads = torch.autograd.grad(energy, [systems[0].positions, systems[0].cell])
        results.append((energy.detach(), grads))
    handle.remove()
    assert computed[1] < computed[0] / 3
    (expected, expected_grads), (energy, grads) = results
    torch.testing.assert_close(energy, expected, rtol=0, atol=1e-12)
    for grad, reference in zip(grads, expected_grads):
        torch.testing.assert_close(grad, reference, rtol=0, atol=1e-12)
    assert float(grads[0].abs().max()) > 1e-6

"""ECSE defaults: the mode chosen per call, bounded memory, and the frame rule."""

import weakref
from typing import Dict, List, Optional

import ase
import ase.build
import ase.neighborlist
import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet, triclinic_alloy
from ecse_helpers import evaluate, make_systems
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, System

from pet_mta import Symmetrized
from pet_mta.wrappers.ecse.checks import frame_hypers
from pet_mta.wrappers.ecse.frames import frames_per_group
from pet_mta.wrappers.ecse.symmetrized import FRAME_DEFAULTS


class Recording(torch.nn.Module):
    """A PET whose calls record (weak references to) every tensor autograd saves
    for the backward pass, except the parameters."""

    def __init__(self, pet):
        super().__init__()
        self.pet = pet
        self.saved: List[weakref.ref] = []
        # tensors of earlier calls still alive when each call starts
        self.alive_at_call: List[int] = []

    def requested_neighbor_lists(self):
        return self.pet.requested_neighbor_lists()

    def capabilities(self):
        return self.pet.export().capabilities()

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        self.alive_at_call.append(self.alive())
        parameters = {id(p) for p in self.pet.parameters()}

        def pack(tensor):
            if id(tensor) not in parameters:
                self.saved.append(weakref.ref(tensor))
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            return self.pet(systems, outputs, selected_atoms)

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.saved)


def test_default_mode_per_call():
    model = Symmetrized(tiny_pet(num_gnn_layers=1))
    assert model.mode == "auto" and model.low_memory == "scalar"
    crystal = make_systems(triclinic_alloy(), model)
    assert model.use_local_mode(crystal)
    assert not model.use_local_mode(make_systems(molecule(), model))
    # a large non-periodic cluster: local mode too
    cluster = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    cluster.pbc = False
    assert len(cluster) > model.whole_max_atoms
    assert model.use_local_mode(make_systems(cluster, model))
    # the export says so
    assert "auto mode" in model.metadata().name


def test_no_backbone_graph_outlives_its_batch():
    """Default on a periodic cell: when a batch of frames starts, and after the
    forward pass (before the engine asks for forces), none of the tensors the
    backbone saved for backward in earlier batches is alive; with
    ``low_memory=False`` they all are (graphs of every frame of every atom).
    """
    pet = tiny_pet(num_gnn_layers=2)
    atoms = triclinic_alloy().repeat((2, 1, 1))
    kept = Recording(pet)
    model = Symmetrized(kept, low_memory=False, batch_size=8)
    systems = make_systems(atoms, model)
    request = {"energy": ModelOutput(sample_kind="system")}
    model(systems, request)
    assert kept.alive() > 100
    assert len(kept.alive_at_call) > 3 and kept.alive_at_call[-1] > 100

    recording = Recording(pet)
    model = Symmetrized(recording, batch_size=8)
    systems = make_systems(atoms, model)
    assert model.use_local_mode(systems)
    energy = model(systems, request)["energy"].block().values.sum()
    assert len(recording.saved) > 100
    assert len(recording.alive_at_call) > 3
    assert max(recording.alive_at_call) == 0 and recording.alive() == 0
    # and the forces are still those of the full graph
    forces = -torch.autograd.grad(energy, systems[0].positions)[0]
    expected = evaluate(Symmetrized(pet, mode="local", low_memory=False), atoms)
    np.testing.assert_allclose(forces.numpy(), expected["forces"], atol=1e-12)


def frames_per_atom(atoms: ase.Atoms, **options) -> np.ndarray:
    hypers = frame_hypers(4.0, dict(FRAME_DEFAULTS, **options))
    centers, vectors = ase.neighborlist.neighbor_list("iD", atoms, 4.0)
    n = len(atoms)
    _, weights, groups, aux = frames_per_group(
        torch.tensor(centers),
        torch.tensor(vectors),
        n,
        torch.arange(n),
        n,
        hypers,
        False,
        spread_margin=True,
    )
    assert torch.all(weights > 0), "frames of zero weight must not be evaluated"
    assert torch.all(aux == 0)
    return torch.bincount(groups, minlength=n).numpy()


def test_spread_margin_rule_keeps_the_right_angle_pairs_of_fcc():
    fcc = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    # 12 neighbours: 24 ordered pairs at 90 degrees, 96 at 60 or 120 degrees;
    # the default (published) rule keeps them all, energy-conserving in MD
    assert np.all(frames_per_atom(fcc) == 120)
    assert np.all(frames_per_atom(fcc, spread_margin=0.02) == 24)
    rattled = fcc.copy()
    rattled.rattle(0.05, seed=0)
    # the rattled right-angle pairs stay within the margin of each other, the
    # rattled 60/120-degree ones stay outdone (the first version of the rule, a
    # margin below a soft maximum of the spreads, kept 32 per atom)
    counts = frames_per_atom(rattled, spread_margin=0.02)
    assert np.all(counts == 24), counts


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_published_rule_is_exact_and_prunes_smoothly(mode):
    # the default rule; exactness with spread_margin in test_ecse_equivariance.py
    from test_ecse_equivariance import check_rotations

    model = Symmetrized(tiny_pet(num_gnn_layers=1), mode=mode, spread_margin=1.0)
    check_rotations(model, molecule(), seeds=(6,))

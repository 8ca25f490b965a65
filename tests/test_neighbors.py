"""One neighbour-list collector (:func:`pet_mta.neighbors.requested_neighbor_lists`)
for eager modules, wrappers and exported models."""

import numpy as np
import torch
from conftest import tiny_pet, triclinic_alloy
from metatomic.torch import load_atomistic_model

from pet_mta.export import export
from pet_mta.neighbors import (
    add_neighbor_lists,
    requested_neighbor_lists,
    system_from_ase,
)


class Pair(torch.nn.Module):
    """Two backbones in one module, as a wrapper holds them."""

    def __init__(self, first, second):
        super().__init__()
        self.first = first
        self.second = second


def test_sub_module_requests_are_collected_once():
    same = Pair(tiny_pet(cutoff=3.5), tiny_pet(cutoff=3.5, seed=1))
    assert [o.cutoff for o in requested_neighbor_lists(same)] == [3.5]
    different = Pair(tiny_pet(cutoff=3.5), tiny_pet(cutoff=3.0))
    assert [o.cutoff for o in requested_neighbor_lists(different)] == [3.5, 3.0]


def test_lists_of_a_saved_model_match_the_eager_ones(tmp_path):
    model = tiny_pet()
    export(model).save(str(tmp_path / "model.pt"))
    loaded = load_atomistic_model(str(tmp_path / "model.pt"))
    atoms = triclinic_alloy()
    (eager,) = add_neighbor_lists([system_from_ase(atoms, torch.float64)], model)
    (saved,) = add_neighbor_lists([system_from_ase(atoms, torch.float64)], loaded)
    (options,) = requested_neighbor_lists(loaded)
    assert options.cutoff == model.cutoff
    a = eager.get_neighbor_list(options)
    b = saved.get_neighbor_list(options)
    order_a = np.lexsort(a.samples.values.numpy().T)
    order_b = np.lexsort(b.samples.values.numpy().T)
    assert len(order_a) > 0
    assert torch.equal(a.samples.values[order_a], b.samples.values[order_b])
    assert torch.equal(a.values[order_a], b.values[order_b])

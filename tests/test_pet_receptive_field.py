"""With ``selected_atoms``, layers compute only the sequences the outputs need."""

import ase.neighborlist
import numpy as np
import pytest
import torch
from conftest import molecule, perturbed, tiny_pet, triclinic_alloy
from metatensor.torch import Labels
from metatomic.torch import ModelOutput

from pet_mta.neighbors import systems_from_ase

CUTOFF = 3.5  # tiny_pet's cutoff
TARGETS = {
    "energy": {"unit": "eV", "quantity": "energy"},
    "mtt::dipole": {"kind": "cartesian", "unit": "e*angstrom"},
}


def _frames():
    """A molecule (9 atoms) and a periodic alloy (108 atoms) in one batch."""
    return [molecule(), triclinic_alloy(2).repeat((3, 3, 3))]


SELECTION = torch.tensor([[0, 1], [0, 6], [1, 0], [1, 57]])


def _global_rows(frames, selection):
    first = np.cumsum([0] + [len(f) for f in frames])
    return [int(first[s] + a) for s, a in selection.tolist()]


def _evaluate(model, frames, selection, outputs, lists_from=None):
    """Outputs and the forces of the (selected) energy on every atom of the batch;
    neighbour lists as ``lists_from`` (default ``model``) requests them."""
    systems = systems_from_ase(frames, model if lists_from is None else lists_from)
    for system in systems:
        system.positions.requires_grad_(True)
    labels = None if selection is None else Labels(["system", "atom"], selection)
    results = model(systems, outputs, labels)
    energy = results["energy"].block().values.sum()
    grads = torch.autograd.grad(energy, [s.positions for s in systems])
    return results, -torch.cat(grads)


@pytest.mark.parametrize(
    "featurizer_type, central_stream, edge_stream",
    [
        ("feedforward", False, False),
        ("residual", False, False),
        ("residual", True, False),
        ("feedforward", False, True),
        ("residual", True, True),
    ],
)
@pytest.mark.parametrize("num_gnn_layers", [1, 2, 3])
def test_selection_matches_full_computation(
    featurizer_type, central_stream, edge_stream, num_gnn_layers
):
    model = tiny_pet(
        targets=TARGETS,
        num_gnn_layers=num_gnn_layers,
        featurizer_type=featurizer_type,
        central_stream=central_stream,
        edge_stream=edge_stream,
    )
    perturbed(model)
    frames = _frames()
    rows = _global_rows(frames, SELECTION)
    per_atom = {
        "energy": ModelOutput(sample_kind="atom"),
        "mtt::dipole": ModelOutput(sample_kind="atom"),
        "feature": ModelOutput(sample_kind="atom"),
        "mtt::aux::energy_last_layer_features": ModelOutput(sample_kind="atom"),
    }
    full, _ = _evaluate(model, frames, None, per_atom)
    part, _ = _evaluate(model, frames, SELECTION, per_atom)
    for name in per_atom:
        expected = full[name].block().values[rows]
        actual = part[name].block().values
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)

    # forces of the selected atoms' energy: restrict the full energy the same way
    expected = _selected_energy_gradients(model, frames, trim=False)
    actual = _selected_energy_gradients(model, frames, trim=True)
    for grad, reference in zip(actual, expected):
        torch.testing.assert_close(grad, reference, rtol=0, atol=1e-12)
    # not trivially zero: forces away from the selected atoms, and the cell term
    assert float(actual[0].abs().sum()) > 0 and float(actual[1].abs().sum()) > 0

    total, _ = _evaluate(
        model, frames, SELECTION, {"energy": ModelOutput(sample_kind="system")}
    )
    values = full["energy"].block().values[rows, 0]
    torch.testing.assert_close(
        total["energy"].block().values[:, 0],
        torch.stack([values[0] + values[1], values[2] + values[3]]),
        rtol=0,
        atol=1e-12,
    )


def _selected_energy_gradients(model, frames, trim, create_graph=False):
    """Gradients of the selected atoms' energy w.r.t. all positions and the cell of
    the periodic system; with ``trim`` through ``selected_atoms``, else by summing
    the rows of the full per-atom energies."""
    systems = systems_from_ase(frames, model)
    for system in systems:
        system.positions.requires_grad_(True)
    systems[1].cell.requires_grad_(True)
    per_atom = {"energy": ModelOutput(sample_kind="atom")}
    if trim:
        labels = Labels(["system", "atom"], SELECTION)
        energy = model(systems, per_atom, labels)["energy"].block().values.sum()
    else:
        values = model(systems, per_atom)["energy"].block().values
        energy = values[_global_rows(frames, SELECTION)].sum()
    inputs = [s.positions for s in systems] + [systems[1].cell]
    grads = torch.autograd.grad(energy, inputs, create_graph=create_graph)
    return torch.cat(grads[:-1]), grads[-1]


def test_training_gradients_through_trimmed_forces():
    """Double backward (a force loss differentiated w.r.t. the weights) gives the
    same weight gradients with and without trimming."""
    model = tiny_pet(num_gnn_layers=2, featurizer_type="residual")
    frames = _frames()
    weights = [p for p in model.parameters() if p.requires_grad]
    results = []
    for trim in (False, True):
        forces, _ = _selected_energy_gradients(model, frames, trim, create_graph=True)
        loss = (forces**2).sum()
        # biases of the last head layers do not enter the forces
        results.append(torch.autograd.grad(loss, weights, materialize_grads=True))
    for trimmed, full in zip(results[1], results[0]):
        torch.testing.assert_close(trimmed, full, rtol=0, atol=1e-11)
    assert sum(float(g.abs().sum()) for g in results[1]) > 0


def test_float32():
    model = tiny_pet(num_gnn_layers=3, dtype=torch.float32)
    frames = _frames()
    rows = _global_rows(frames, SELECTION)
    outputs = {"energy": ModelOutput(sample_kind="atom")}
    full, _ = _evaluate(model, frames, None, outputs)
    part, _ = _evaluate(model, frames, SELECTION, outputs)
    assert part["energy"].block().values.dtype == torch.float32
    torch.testing.assert_close(
        part["energy"].block().values,
        full["energy"].block().values[rows],
        rtol=1e-5,
        atol=1e-5,
    )
    expected = _selected_energy_gradients(model, frames, trim=False)
    actual = _selected_energy_gradients(model, frames, trim=True)
    for grad, reference in zip(actual, expected):
        torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-5)


def test_small_chunks_inside_the_subset():
    model = tiny_pet(num_gnn_layers=2)
    frames = _frames()
    outputs = {"energy": ModelOutput(sample_kind="atom")}
    full, full_forces = _evaluate(model, frames, SELECTION, outputs)
    model.tokens_per_chunk = 64
    part, forces = _evaluate(model, frames, SELECTION, outputs)
    torch.testing.assert_close(
        part["energy"].block().values,
        full["energy"].block().values,
        rtol=0,
        atol=1e-12,
    )
    torch.testing.assert_close(forces, full_forces, rtol=0, atol=1e-12)


def _expected_sequences(frames, rows, n_layers):
    """Per layer, how many atoms lie within ``n_layers - 1 - layer`` neighbour hops
    of the selected ones (computed with ASE's neighbour list)."""
    first = np.cumsum([0] + [len(f) for f in frames])
    neighbors = [set() for _ in range(first[-1])]
    for f, frame in enumerate(frames):
        i, j = ase.neighborlist.neighbor_list("ij", frame, CUTOFF)
        for a, b in zip(i, j):
            neighbors[first[f] + a].add(int(first[f] + b))
    needed = set(rows)
    sizes = [len(needed)]
    for _ in range(n_layers - 1):
        needed = needed.union(*[neighbors[a] for a in needed])
        sizes.append(len(needed))
    return sizes[::-1]


def _count_sequences(model, frames, selection):
    """Sequences that every GNN layer's transformer ran on."""
    counts = [0 for _ in model.gnn_layers]
    for k, layer in enumerate(model.gnn_layers):
        original = layer.forward

        def counting(*args, _k=k, _original=original, **kwargs):
            counts[_k] += args[5].key_bias.shape[0]  # chunk: [sequences, T]
            return _original(*args, **kwargs)

        layer.forward = counting
    _evaluate(model, frames, selection, {"energy": ModelOutput(sample_kind="atom")})
    return counts


def test_only_the_receptive_field_is_computed():
    model = tiny_pet(num_gnn_layers=3)
    frames = _frames()
    rows = _global_rows(frames, SELECTION)
    expected = _expected_sequences(frames, rows, 3)
    n_atoms = sum(len(f) for f in frames)
    # the periodic alloy makes the first layer a strict subset, but a large one
    assert expected[-1] == len(rows) and expected[0] < n_atoms
    assert _count_sequences(model, frames, SELECTION) == expected
    assert _count_sequences(tiny_pet(num_gnn_layers=3), frames, None) == [n_atoms] * 3


def test_scripted_model_and_empty_selection():
    model = tiny_pet(targets=TARGETS, num_gnn_layers=3, featurizer_type="residual")
    scripted = torch.jit.script(model)
    frames = _frames()
    outputs = {
        "energy": ModelOutput(sample_kind="atom"),
        "mtt::dipole": ModelOutput(sample_kind="system"),
    }
    eager, eager_forces = _evaluate(model, frames, SELECTION, outputs)
    script, script_forces = _evaluate(scripted, frames, SELECTION, outputs, model)
    for name in outputs:
        torch.testing.assert_close(
            script[name].block().values,
            eager[name].block().values,
            rtol=0,
            atol=1e-12,
        )
    torch.testing.assert_close(script_forces, eager_forces, rtol=0, atol=1e-12)

    empty = torch.zeros((0, 2), dtype=torch.int32)
    for candidate in (model, scripted):
        result, forces = _evaluate(candidate, frames, empty, outputs, model)
        assert result["energy"].block().values.shape == (0, 1)
        torch.testing.assert_close(
            result["mtt::dipole"].block().values,
            torch.zeros(2, 3, 1, dtype=torch.float64),
        )
        assert float(forces.abs().max()) == 0.0


def _last_block_rows(model, frames, selection):
    """Output tokens (centres + edges) of every GNN layer's last transformer block
    in one energy evaluation."""
    rows = [0 for _ in model.gnn_layers]
    handles = []
    for k, layer in enumerate(model.gnn_layers):

        def count(module, args, out, _k=k):
            rows[_k] += out[0].shape[-2] + out[1].shape[-2]

        handles.append(layer.blocks[-1].register_forward_hook(count))
    _evaluate(model, frames, selection, {"energy": ModelOutput(sample_kind="atom")})
    for handle in handles:
        handle.remove()
    return rows


def _read_tokens(frames, rows, every_layer):
    """Tokens of the first of two GNN layers that the second one (and with
    ``every_layer`` the read-outs) reads: the centres of the selected atoms and the
    reverse ``j -> i`` of their edges ``i -> j`` (with ``every_layer``, also their
    own edges), counted with ASE's neighbour list."""
    first = np.cumsum([0] + [len(f) for f in frames])
    edges = set()
    for f, frame in enumerate(frames):
        i, j, shift = ase.neighborlist.neighbor_list("ijS", frame, CUTOFF)
        for a, b, s in zip(i + first[f], j + first[f], shift.tolist()):
            if a in rows:
                edges.add((int(b), int(a), tuple(-x for x in s)))
                if every_layer:
                    edges.add((int(a), int(b), tuple(s)))
    return len(rows) + len(edges)


@pytest.mark.parametrize("featurizer_type", ["feedforward", "residual"])
def test_the_last_block_computes_the_read_tokens_only(featurizer_type):
    model = tiny_pet(num_attention_layers=2, featurizer_type=featurizer_type)
    frames = _frames()
    rows = _global_rows(frames, SELECTION)
    every_layer = featurizer_type == "residual"
    own = _read_tokens(frames, rows, every_layer=False) - len(rows)
    expected = [_read_tokens(frames, rows, every_layer), len(rows) + own]
    assert _last_block_rows(model, frames, SELECTION) == expected
    # without it, the first layer's last block computes every token of its atoms
    model.read_tokens_only = False
    untrimmed = _last_block_rows(model, frames, SELECTION)
    assert untrimmed[1] == expected[1] and untrimmed[0] > 5 * expected[0]


@pytest.mark.parametrize(
    "hypers",
    [
        {},
        {"featurizer_type": "residual"},
        {"central_stream": True},
        {"featurizer_type": "residual", "central_stream": True},
        {"transformer_type": "PostLN", "central_stream": True},
        {"num_gnn_layers": 3, "activation": "SiLU", "normalization": "LayerNorm"},
        {"edge_stream": True},
        {"num_gnn_layers": 3, "edge_stream": True, "featurizer_type": "residual"},
    ],
)
@pytest.mark.parametrize("tokens_per_chunk", [16384, 64])
def test_read_tokens_only_changes_no_result(hypers, tokens_per_chunk):
    """Outputs and forces with the last blocks computing the read tokens only, the
    same as with every token and as the full computation, to round-off."""
    model = perturbed(tiny_pet(targets=TARGETS, num_attention_layers=2, **hypers))
    model.tokens_per_chunk = tokens_per_chunk
    frames = _frames()
    per_atom = {
        "energy": ModelOutput(sample_kind="atom"),
        "mtt::dipole": ModelOutput(sample_kind="atom"),
        "feature": ModelOutput(sample_kind="atom"),
        "mtt::aux::energy_last_layer_features": ModelOutput(sample_kind="atom"),
    }
    results = []
    for read_only in (False, True):
        model.read_tokens_only = read_only
        values, _ = _evaluate(model, frames, SELECTION, per_atom)
        gradients = _selected_energy_gradients(model, frames, trim=True)
        results.append((values, gradients))
    (expected, expected_grads), (actual, grads) = results
    full, _ = _evaluate(model, frames, None, per_atom)
    rows = _global_rows(frames, SELECTION)
    for name in per_atom:
        reference = actual[name].block().values
        for other in (expected[name].block().values, full[name].block().values[rows]):
            torch.testing.assert_close(reference, other, rtol=0, atol=1e-12)
    for grad, reference in zip(grads, expected_grads):
        torch.testing.assert_close(grad, reference, rtol=0, atol=1e-12)
    assert float(grads[0].abs().sum()) > 0 and float(grads[1].abs().sum()) > 0

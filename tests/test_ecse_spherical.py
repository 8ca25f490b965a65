"""ECSE of spherical outputs: exact O(3) equivariance of every irrep (float64)."""

import numpy as np
import pytest
import torch
from conftest import molecule, tiny_pet
from ecse_helpers import make_systems, random_rotation, rotated
from metatomic.torch import ModelOutput
from metatomic.torch.o3 import O3Transformations
from metatomic.torch.o3._transformations import random_transformations

from pet_mta import Symmetrized
from pet_mta.wrappers.ecse.spherical import WignerMatrices

IRREPS = [(0, 1), (1, 1), (2, 1), (1, -1), (2, -1), (3, 1), (0, -1)]
NAME = "mtt::tensor"


def _backbone():
    return tiny_pet(
        num_gnn_layers=1,
        targets={
            "energy": {"unit": "eV", "quantity": "energy"},
            NAME: {"kind": "spherical", "irreps": IRREPS, "n_properties": 2},
        },
    )


def _predict(model, atoms, sample_kind="system"):
    systems = make_systems(atoms, model)
    result = model(systems, {NAME: ModelOutput(sample_kind=sample_kind)}, None)
    return result[NAME]


def _expected(tensor, matrix):
    """``tensor`` transformed by ``matrix`` with metatomic's own Wigner matrices."""
    transformation = O3Transformations(
        torch.tensor(matrix, dtype=torch.float64)[None], max(lam for lam, _ in IRREPS)
    )
    return transformation.transform_tensormap(tensor)


def _max_difference(first, second):
    return max(
        float((a.values - b.values).detach().abs().max())
        for a, b in zip(first.blocks(), second.blocks())
    )


def _scale(tensor):
    return max(float(block.values.abs().max()) for block in tensor.blocks())


def test_wigner_matrices_match_metatomic():
    rotations = random_transformations(
        6, 6, device=torch.device("cpu"), dtype=torch.float64
    )
    eager = WignerMatrices(6)
    # TorchScript too: its torch.tensor(List[float]) rounds through float32
    for module in (eager, torch.jit.script(eager)):
        ours = module(rotations.matrices, 6)
        for ell in range(7):
            reference = rotations.wigner_D_matrices(ell)
            assert ours[ell].shape == reference.shape
            assert float((ours[ell] - reference).abs().max()) < 1e-13
    with pytest.raises(ValueError, match="o3_lambda <= 6"):
        WignerMatrices(6)(rotations.matrices, 7)


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_rotations(mode):
    pet = _backbone()
    atoms = molecule()
    rotation = random_rotation(1)
    plain = _predict(pet, atoms)
    # the backbone alone is not equivariant: the test can fail
    plain_rotated = _predict(pet, rotated(atoms, rotation))
    assert _max_difference(plain_rotated, _expected(plain, rotation)) > 1e-4

    model = Symmetrized(pet, mode=mode)
    for sample_kind in ("system", "atom"):
        reference = _predict(model, atoms, sample_kind)
        assert reference.keys.values.tolist() == [list(irrep) for irrep in IRREPS]
        for seed in (1, 2, 3):
            rotation = random_rotation(seed)
            other = _predict(model, rotated(atoms, rotation), sample_kind)
            difference = _max_difference(other, _expected(reference, rotation))
            assert difference <= 1e-10 * _scale(reference)


@pytest.mark.parametrize("mode", ["whole", "local"])
def test_reflection_with_inversion(mode):
    pet = _backbone()
    atoms = molecule()
    model = Symmetrized(pet, mode=mode, inversion=True)
    reference = _predict(model, atoms)
    mirror = np.diag([-1.0, 1.0, 1.0])
    for matrix in (mirror, -np.eye(3), random_rotation(4, inversion=True)):
        other = _predict(model, rotated(atoms, matrix))
        expected = _expected(reference, matrix)
        assert _max_difference(other, expected) <= 1e-10 * _scale(reference)
    # under the inversion, the blocks with sigma (-1)^lambda = -1 change sign
    inverted = _predict(model, rotated(atoms, -np.eye(3)))
    for (o3_lambda, o3_sigma), block, original in zip(
        IRREPS, inverted.blocks(), reference.blocks()
    ):
        parity = o3_sigma * (-1) ** o3_lambda
        torch.testing.assert_close(
            block.values,
            parity * original.values,
            atol=1e-10 * _scale(reference),
            rtol=0,
        )
        if parity == -1:
            assert float(original.values.abs().max()) > 1e-6
    # without inversion, the mirror image is not predicted exactly
    so3 = Symmetrized(pet, mode=mode)
    plain = _predict(so3, atoms)
    assert (
        _max_difference(_predict(so3, rotated(atoms, mirror)), _expected(plain, mirror))
        > 1e-6
    )


def test_pseudoscalar_vanishes_without_chirality():
    """A planar molecule is its own mirror image: with inversion, its (0, -1) and
    other parity-odd invariants are exactly zero."""
    import ase.build

    pet = _backbone()
    atoms = ase.build.molecule("H2O")
    model = Symmetrized(pet, mode="whole", inversion=True)
    tensor = _predict(model, atoms)
    block = tensor.block({"o3_lambda": 0, "o3_sigma": -1})
    assert float(block.values.abs().max()) < 1e-10 * _scale(tensor)


def test_symmetrize_command_with_inversion(tmp_path):
    """``pet-mta symmetrize --inversion`` of an exported model with a spherical
    output: the saved (TorchScript) model is exactly O(3)-equivariant."""
    from metatomic.torch import ModelEvaluationOptions, load_atomistic_model

    from pet_mta.cli import main

    source = str(tmp_path / "model.pt")
    output = str(tmp_path / "ecse.pt")
    _backbone().export().save(source)
    assert main(["symmetrize", source, "-o", output, "--inversion"]) == 0
    model = load_atomistic_model(output)
    assert NAME in model.capabilities().outputs
    options = ModelEvaluationOptions(
        length_unit="angstrom", outputs={NAME: ModelOutput(sample_kind="system")}
    )

    def predict(atoms):
        systems = make_systems(atoms, model)
        return model(systems, options, check_consistency=True)[NAME]

    atoms = molecule()
    reference = predict(atoms)
    for matrix in (random_rotation(5), np.diag([1.0, -1.0, 1.0])):
        difference = _max_difference(
            predict(rotated(atoms, matrix)), _expected(reference, matrix)
        )
        assert difference <= 1e-10 * _scale(reference)


def test_products_of_irreps_rotate_exactly():
    """A ``product: cartesian`` output (two ``o3_mu`` axes): each axis rotated by its
    own Wigner matrix, parity ``sigma_1 sigma_2 (-1)^(lambda_1 + lambda_2)``."""
    product = [(1, 1, 1, 1), (2, 1, 1, -1), (0, 2, 1, 1)]
    pet = tiny_pet(
        num_gnn_layers=1,
        targets={NAME: {"kind": "spherical", "irreps": product, "n_properties": 1}},
    )
    model = Symmetrized(pet, mode="whole", inversion=True)
    atoms = molecule()
    reference = _predict(model, atoms)
    for matrix in (random_rotation(6), random_rotation(7, inversion=True)):
        transformation = O3Transformations(
            torch.tensor(matrix, dtype=torch.float64)[None], 2
        )
        expected = transformation.transform_tensormap(reference)
        other = _predict(model, rotated(atoms, matrix))
        assert _max_difference(other, expected) <= 1e-10 * _scale(reference)

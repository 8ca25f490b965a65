"""Spherical targets through metatrain: the rotational augmentation of the training
loader, training (baseline of the invariant block, scale), export and restart."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import metatensor.torch as mts  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from metatensor.torch import Labels, TensorBlock, TensorMap  # noqa: E402
from metatomic.torch import (  # noqa: E402
    ModelEvaluationOptions,
    ModelOutput,
    System,
    load_atomistic_model,
)
from metatomic.torch.o3 import O3Transformations  # noqa: E402
from metatrain.utils.augmentation import O3Augmenter  # noqa: E402
from metatrain.utils.data.target_info import get_generic_target_info  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    TINY_MODEL,
    dataset_info,
    emt_frames,
    load_dataset,
    model_hypers,
    mtt_train,
    train_model,
    trainer_hypers,
    write_frames,
)

from pet_mta.metatrain import PETModel  # noqa: E402
from pet_mta.metatrain.targets import target_from_info  # noqa: E402
from pet_mta.neighbors import systems_from_ase  # noqa: E402
from pet_mta.tensors import spherical_to_symmetric, symmetric_to_spherical  # noqa: E402

#: a symmetric traceless tensor (no lambda = 0 part)
TENSOR = torch.tensor(
    [[1.0, 2.0, 0.5], [2.0, -3.0, 1.0], [0.5, 1.0, 2.0]], dtype=torch.float64
)


def _rotation(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    return q * torch.linalg.det(q)


def _spherical_info(name, irreps, sample_kind):
    return get_generic_target_info(
        name,
        {
            "quantity": "",
            "unit": "",
            "type": {
                "spherical": {
                    "irreps": [{"o3_lambda": lam, "o3_sigma": s} for lam, s in irreps]
                }
            },
            "num_subtargets": 1,
            "sample_kind": sample_kind,
        },
    )


def _block(values, samples, o3_lambda):
    mu = torch.arange(-o3_lambda, o3_lambda + 1).reshape(-1, 1)
    return TensorBlock(
        values=values.reshape(len(samples), 2 * o3_lambda + 1, 1),
        samples=samples,
        components=[Labels(["o3_mu"], mu)],
        properties=Labels(["n"], torch.tensor([[0]])),
    )


def test_tensor_conversion_round_trip_and_norm():
    generator = torch.Generator().manual_seed(0)
    matrices = torch.randn(4, 3, 3, dtype=torch.float64, generator=generator)
    matrices = matrices + matrices.transpose(1, 2)
    l0, l2 = symmetric_to_spherical(matrices)
    torch.testing.assert_close(spherical_to_symmetric(l0, l2), matrices)
    # orthonormal: the Frobenius norm is kept
    norms = torch.sqrt((l0**2).sum(-1) + (l2**2).sum(-1))
    torch.testing.assert_close(norms, torch.linalg.norm(matrices, dim=(1, 2)))
    with pytest.raises(ValueError, match="symmetric"):
        symmetric_to_spherical(torch.triu(matrices))


@pytest.mark.parametrize("improper", [False, True])
def test_augmentation_rotates_a_lambda_2_target(improper):
    """metatrain's augmenter, as pet_mta's training loader uses it, turns the
    ``lambda = 2`` components of ``T`` into those of ``R T R^T`` (an ``o3_sigma =
    -1`` copy also changes sign under improper ``R``): the same as metatomic's
    Wigner matrix ``D(R)`` applied to them."""
    name = "mtt::tensor"
    irreps = [(0, 1), (2, 1), (2, -1)]
    info = _spherical_info(name, irreps, "system")
    _, l2 = symmetric_to_spherical(TENSOR)
    samples = Labels(["system"], torch.tensor([[0]]))
    blocks = [
        _block(torch.tensor([1.5], dtype=torch.float64), samples, 0),
        _block(l2, samples, 2),
        _block(l2, samples, 2),
    ]
    keys = Labels(["o3_lambda", "o3_sigma"], torch.tensor(irreps))
    target = TensorMap(keys, blocks)
    positions = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.2, -0.3]], dtype=torch.float64)
    system = System(
        types=torch.tensor([1, 8]),
        positions=positions,
        cell=torch.zeros(3, 3, dtype=torch.float64),
        pbc=torch.tensor([False, False, False]),
    )
    rotation = _rotation(3)
    matrix = -rotation if improper else rotation
    augmenter = O3Augmenter(target_info_dict={name: info})
    systems, targets, _ = augmenter.apply_augmentations(
        [system], {name: target}, [matrix]
    )
    torch.testing.assert_close(systems[0].positions, positions @ matrix.T)
    result = targets[name]
    expected = symmetric_to_spherical(matrix @ TENSOR @ matrix.T)[1]
    wigner = O3Transformations(rotation[None], 2).wigner_D_matrices(2)[0]
    assert float((expected - l2).abs().max()) > 0.1  # a real rotation
    torch.testing.assert_close(wigner @ l2, expected)
    proper = result.block({"o3_lambda": 2, "o3_sigma": 1}).values[0, :, 0]
    torch.testing.assert_close(proper, expected)
    pseudo = result.block({"o3_lambda": 2, "o3_sigma": -1}).values[0, :, 0]
    torch.testing.assert_close(pseudo, -expected if improper else expected)
    invariant = result.block({"o3_lambda": 0, "o3_sigma": 1}).values
    torch.testing.assert_close(invariant.reshape(-1), torch.tensor([1.5]).double())


def test_target_from_info_products_and_atomic_basis():
    ok = target_from_info(
        "mtt::t", _spherical_info("mtt::t", [(2, -1), (0, 1)], "atom")
    )
    assert ok.kind == "spherical" and ok.irreps == ((2, -1), (0, 1))

    def product(sample_kind):
        return get_generic_target_info(
            "mtt::p",
            {
                "quantity": "",
                "unit": "",
                "type": {
                    "spherical": {
                        "product": "cartesian",
                        "irreps": [
                            {"o3_lambda": 1, "o3_sigma": 1},
                            {"o3_lambda": 0, "o3_sigma": 1},
                        ],
                    }
                },
                "num_subtargets": 2,
                "sample_kind": sample_kind,
            },
        )

    target = target_from_info("mtt::p", product("system"))
    assert target.key_names == [
        "o3_lambda_1",
        "o3_lambda_2",
        "o3_sigma_1",
        "o3_sigma_2",
    ]
    assert target.irreps == ((1, 1, 1, 1), (1, 0, 1, 1), (0, 1, 1, 1), (0, 0, 1, 1))
    assert target.n_properties == 4  # n_1 x n_2
    assert target.n_components == 9 + 3 + 3 + 1
    basis = {
        1: [{"num": 1, "o3_lambda": 0, "o3_sigma": 1}],
        8: [{"num": 1, "o3_lambda": 1, "o3_sigma": 1}],
    }
    atomic_basis = get_generic_target_info(
        "mtt::b",
        {
            "quantity": "",
            "unit": "",
            "type": {"spherical": {"irreps": basis}},
            "num_subtargets": 1,
            "sample_kind": "atom",
        },
    )
    # in an atomic basis: one (atom_type, o3_lambda, o3_sigma, num) row per block
    target = target_from_info("mtt::b", atomic_basis)
    assert target.kind == "atomic_basis"
    assert target.basis == ((1, 0, 1, 1), (8, 1, 1, 1))


def _write_targets(tmp_path, frames):
    """Per-system ``mtt::polar`` (l0 + l2 of a made-up symmetric tensor) and per-atom
    ``mtt::atomic`` (``(0, 1)``: +-0.3 by species; ``(1, -1)``: small noise)."""
    rng = np.random.default_rng(0)
    tensors = []
    for atoms in frames:
        centred = atoms.positions - atoms.positions.mean(0)
        weights = np.where(atoms.numbers == 29, 1.0, 0.5)
        tensors.append(np.einsum("i,ia,ib->ab", weights, centred, centred) / 10)
    l0, l2 = symmetric_to_spherical(torch.tensor(np.stack(tensors)))
    systems = Labels(["system"], torch.arange(len(frames)).reshape(-1, 1))
    polar = TensorMap(
        Labels(["o3_lambda", "o3_sigma"], torch.tensor([[0, 1], [2, 1]])),
        [_block(l0, systems, 0), _block(l2, systems, 2)],
    )
    atoms_samples = Labels(
        ["system", "atom"],
        torch.tensor([[i, a] for i, atoms in enumerate(frames) for a in range(8)]),
    )
    numbers = np.concatenate([atoms.numbers for atoms in frames])
    charges = torch.tensor(np.where(numbers == 29, 0.3, -0.3))
    charges = charges + 0.01 * torch.tensor(rng.normal(size=len(numbers)))
    noise = 0.1 * torch.tensor(rng.normal(size=(len(numbers), 3)))
    atomic = TensorMap(
        Labels(["o3_lambda", "o3_sigma"], torch.tensor([[0, 1], [1, -1]])),
        [_block(charges, atoms_samples, 0), _block(noise, atoms_samples, 1)],
    )
    paths = {"polar": str(tmp_path / "polar.mts"), "atomic": str(tmp_path / "a.mts")}
    mts.save(paths["polar"], polar)
    mts.save(paths["atomic"], atomic)
    return paths


def _target_section(path, irreps, sample_kind):
    return {
        "read_from": path,
        "reader": "metatensor",
        "quantity": "",
        "unit": "",
        "sample_kind": sample_kind,
        "type": {
            "spherical": {
                "irreps": [{"o3_lambda": lam, "o3_sigma": s} for lam, s in irreps]
            }
        },
    }


def test_training_export_and_restart(tmp_path):
    frames = emt_frames(8)
    path = write_frames(tmp_path / "data.xyz", frames)
    paths = _write_targets(tmp_path, frames)
    targets = {
        "mtt::polar": _target_section(paths["polar"], [(0, 1), (2, 1)], "system"),
        "mtt::atomic": _target_section(paths["atomic"], [(0, 1), (1, -1)], "atom"),
    }
    dataset, infos = load_dataset(path, targets)
    info = dataset_info(dataset, infos)
    model = PETModel(model_hypers(), info)
    train_model(model, dataset, tmp_path, num_epochs=2)
    pet = model.pet
    assert pet.target_kinds["mtt::polar"] == "spherical"
    # the invariant block of the per-atom target gets the per-species baseline
    baseline = pet.readouts["mtt::atomic"].baseline
    copper, nickel = pet.atomic_types.index(29), pet.atomic_types.index(28)
    assert float(baseline[copper, 0]) == pytest.approx(0.3, abs=0.02)
    assert float(baseline[nickel, 0]) == pytest.approx(-0.3, abs=0.02)
    assert torch.all(baseline[:, 1:] == 0)
    # the per-system l0 has a baseline too, the l2 block none
    polar_baseline = pet.readouts["mtt::polar"].baseline
    assert torch.all(polar_baseline[:, 0] != 0)
    assert torch.all(polar_baseline[:, 1:] == 0)
    scale = float(pet.readouts["mtt::polar"].scale[0])
    assert scale != 1.0 and np.isfinite(scale)

    # exported: per-atom selection of one output, values as the training model's
    exported_path = str(tmp_path / "model.pt")
    model.export().save(exported_path)
    exported = load_atomistic_model(exported_path)
    systems = systems_from_ase(frames[:2], pet)
    options = ModelEvaluationOptions(
        length_unit="angstrom", outputs={"mtt::atomic": ModelOutput(sample_kind="atom")}
    )
    result = exported(systems, options, check_consistency=True)
    assert list(result) == ["mtt::atomic"]
    reference = model(systems, {"mtt::atomic": ModelOutput(sample_kind="atom")})
    mts.equal_metadata_raise(result["mtt::atomic"], reference["mtt::atomic"])
    for block, expected in zip(
        result["mtt::atomic"].blocks(), reference["mtt::atomic"].blocks()
    ):
        torch.testing.assert_close(block.values, expected.values)

    # restart from the checkpoint keeps the spherical heads
    restarted = PETModel.load_checkpoint(model.get_checkpoint(), "restart")
    again = restarted(systems, {"mtt::polar": ModelOutput(sample_kind="system")})
    before = model(systems, {"mtt::polar": ModelOutput(sample_kind="system")})
    for block, expected in zip(
        again["mtt::polar"].blocks(), before["mtt::polar"].blocks()
    ):
        torch.testing.assert_close(block.values, expected.values)


def test_mtt_train_command(tmp_path):
    """``mtt train`` with metatrain's spherical ``type`` (two irreps, per system,
    metatensor reader) exports a model serving the target."""
    frames = emt_frames(8)
    path = write_frames(tmp_path / "data.xyz", frames)
    paths = _write_targets(tmp_path, frames)
    section = {
        "systems": {"read_from": path, "length_unit": "angstrom"},
        "targets": {
            "mtt::polar": _target_section(paths["polar"], [(0, 1), (2, 1)], "system")
        },
    }
    options = {
        "seed": 0,
        "architecture": {
            "name": "pet_mta",
            "model": dict(TINY_MODEL),
            "training": {"num_epochs": 1, "batch_size": 4, "num_workers": 0},
        },
        "training_set": section,
        "validation_set": section,
        "test_set": 0.0,
    }
    mtt_train(options, tmp_path)
    model = load_atomistic_model(str(tmp_path / "model.pt"))
    systems = systems_from_ase(frames[:3], model)
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={"mtt::polar": ModelOutput(sample_kind="system")},
    )
    polar = model(systems, options, check_consistency=True)["mtt::polar"]
    assert polar.keys.values.tolist() == [[0, 1], [2, 1]]
    assert polar.block(0).values.shape == (3, 1, 1)
    assert polar.block(1).values.shape == (3, 5, 1)


@pytest.mark.parametrize(
    "irreps",
    [[(2, 1), (0, 1), (1, -1)], [(1, 1, 1, 1), (1, 0, 1, -1), (0, 0, 1, 1)]],
)
def test_flat_values_follow_the_model_columns(irreps):
    """The fitting reads targets in the column order of the model's atomic values
    (one order for data and predictions, products of irreps included)."""
    from pet_mta.metatrain.targets import flat_values
    from pet_mta.modules.spherical import property_counts, spherical_tensormap
    from pet_mta.targets import Target

    target = Target(name="mtt::t", kind="spherical", irreps=irreps, n_properties=4)
    values = torch.randn(5, target.n_components * 4, dtype=torch.float64)
    index = torch.arange(5)
    counts = property_counts(4, len(irreps[0]) // 2)
    tensor = spherical_tensormap(
        values,
        torch.zeros_like(index),
        index,
        1,
        True,
        [list(k) for k in irreps],
        counts,
    )
    # blocks stored in another order must not matter
    order = [2, 0, 1]
    keys = Labels(tensor.keys.names, tensor.keys.values[order])
    shuffled = TensorMap(keys, [tensor.block(i).copy() for i in order])
    torch.testing.assert_close(flat_values(shuffled, target), values)


def test_training_loader_rotates_targets_with_the_structures(tmp_path):
    """pet_mta's own training loader (``make_loaders``): in every batch, each
    structure's ``lambda = 2`` target is that of ``R T R^T`` for the operation ``R``
    that moved its atoms (recovered from the positions), the ``lambda = 0`` one
    unchanged; validation batches are not rotated."""
    from metatrain.utils.data import unpack_batch

    from pet_mta.metatrain.data import make_loaders

    frames = emt_frames(6, seed=4)
    path = write_frames(tmp_path / "data.xyz", frames)
    generator = torch.Generator().manual_seed(1)
    tensors = torch.randn(len(frames), 3, 3, dtype=torch.float64, generator=generator)
    tensors = tensors + tensors.transpose(1, 2)
    l0, l2 = symmetric_to_spherical(tensors)
    samples = Labels(["system"], torch.arange(len(frames)).reshape(-1, 1))
    keys = Labels(["o3_lambda", "o3_sigma"], torch.tensor([[0, 1], [2, 1]]))
    target_path = str(tmp_path / "polar.mts")
    mts.save(
        target_path, TensorMap(keys, [_block(l0, samples, 0), _block(l2, samples, 2)])
    )
    section = _target_section(target_path, [(0, 1), (2, 1)], "system")
    dataset, infos = load_dataset(path, {"mtt::polar": section})
    info = dataset_info(dataset, infos)
    model = PETModel(model_hypers(), info)
    hypers = trainer_hypers(batch_size=3)
    train, val, _ = make_loaders(model, info, hypers, [dataset], [dataset])
    originals = {i: torch.tensor(f.positions) for i, f in enumerate(frames)}

    def structure_of(system):
        # the training loader shuffles: find the structure by its interatomic distances
        distances = torch.cdist(system.positions, system.positions)
        for i, positions in originals.items():
            if torch.allclose(torch.cdist(positions, positions), distances, atol=1e-8):
                return i
        raise AssertionError("structure not found")

    checked = moved = 0
    for loader, rotated in ((train, True), (val, False)):
        for batch in loader:
            systems, targets, _ = unpack_batch(batch)
            polar = targets["mtt::polar"]
            for row, system in enumerate(systems):
                i = structure_of(system)
                # least squares: rotated = original @ R^T (atoms centred)
                a = originals[i] - originals[i].mean(0)
                b = system.positions.double() - system.positions.double().mean(0)
                matrix = torch.linalg.lstsq(a, b).solution.T
                identity = torch.eye(3, dtype=matrix.dtype)
                if not rotated:
                    torch.testing.assert_close(matrix, identity)
                elif float((matrix - identity).abs().max()) > 0.1:
                    moved += 1
                expected = symmetric_to_spherical(matrix @ tensors[i] @ matrix.T)
                got0 = polar.block({"o3_lambda": 0, "o3_sigma": 1}).values[row, :, 0]
                got2 = polar.block({"o3_lambda": 2, "o3_sigma": 1}).values[row, :, 0]
                torch.testing.assert_close(
                    got0.double(), expected[0], atol=1e-6, rtol=0
                )
                torch.testing.assert_close(
                    got2.double(), expected[1], atol=1e-6, rtol=0
                )
                checked += 1
    assert checked == 2 * len(frames)
    assert moved >= len(frames) - 1  # random O(3) operations, not the identity

"""Spherical targets in an atomic basis (keys ``o3_lambda, o3_sigma, atom_type``,
or ``o3_lambda_1, o3_lambda_2, o3_sigma_1, o3_sigma_2, atom_type`` for products of
two irreps): metatrain's layout -> :class:`pet_mta.Target`, the output blocks (per
atom, per system, selected atoms, TorchScript), the rotations of the training
loader, training through metatrain's trainer (float64), export, ``mtt train``, and
ECSE's exact equivariance."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import torch  # noqa: E402
from metatensor.torch import Labels, TensorBlock, TensorMap  # noqa: E402
from metatomic.torch import (  # noqa: E402
    ModelEvaluationOptions,
    ModelOutput,
    System,
    load_atomistic_model,
)
from metatomic.torch.o3 import O3Transformations, random_transformations  # noqa: E402
from metatrain.utils.data import (  # noqa: E402
    DatasetInfo,
    DiskDataset,
    unpack_batch,  # noqa: E402
)
from metatrain.utils.data.target_info import get_generic_target_info  # noqa: E402
from metatrain.utils.data.writers import DiskDatasetWriter  # noqa: E402
from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    TINY_MODEL,
    model_hypers,
    mtt_train,
    train_model,
    trainer_hypers,
)

from pet_mta import PET, Symmetrized, Target  # noqa: E402
from pet_mta.metatrain import PETModel  # noqa: E402
from pet_mta.metatrain.data import make_loaders  # noqa: E402
from pet_mta.metatrain.targets import target_from_info  # noqa: E402

NAME = "mtt::basis"
#: {atom_type: [(o3_lambda, o3_sigma, n_properties)]}
BASIS = {1: [(0, 1, 2), (1, 1, 1)], 6: [(0, 1, 1), (1, -1, 2), (2, 1, 1)]}
TYPES = [1, 6, 8]


def _info(basis=BASIS, product=None) -> DatasetInfo:
    irreps = {
        t: [{"o3_lambda": lam, "o3_sigma": s, "num": n} for lam, s, n in rows]
        for t, rows in basis.items()
    }
    spherical = {"irreps": irreps}
    if product is not None:
        spherical["product"] = product
    target = {
        "quantity": "",
        "unit": "",
        "type": {"spherical": spherical},
        "num_subtargets": 1,
        "sample_kind": "atom",
    }
    return DatasetInfo(
        length_unit="Angstrom",
        atomic_types=TYPES,
        targets={NAME: get_generic_target_info(NAME, target)},
    )


def _system(types, seed: int) -> System:
    generator = torch.Generator().manual_seed(seed)
    positions = torch.rand((len(types), 3), generator=generator, dtype=torch.float64)
    return System(
        types=torch.tensor(types),
        positions=3.0 * positions,
        cell=torch.zeros((3, 3), dtype=torch.float64),
        pbc=torch.tensor([False, False, False]),
    )


def _pet(product=None) -> PET:
    info = _info(product=product)
    model = PETModel(model_hypers(), info)
    return model.pet.to(torch.float64)


def _evaluate(model, system, per_atom=True, selected=None):
    system = get_system_with_neighbor_lists(system, model.requested_neighbor_lists())
    kind = "atom" if per_atom else "system"
    return model([system], {NAME: ModelOutput(sample_kind=kind)}, selected)[NAME]


def test_target_from_metatrain_layout():
    target = target_from_info(NAME, _info().targets[NAME])
    assert target.kind == "atomic_basis"
    assert target.key_names == ["o3_lambda", "o3_sigma", "atom_type"]
    assert target.basis == (
        (1, 0, 1, 2),
        (1, 1, 1, 1),
        (6, 0, 1, 1),
        (6, 1, -1, 2),
        (6, 2, 1, 1),
    )
    # hydrogen uses 2 + 3 columns, carbon 1 + 6 + 5: one head of 12 columns
    assert target.n_components == 12
    assert [row[-1] for row in target.basis_columns] == [0, 2, 0, 1, 7]
    assert target.invariant_columns == []


def test_target_from_metatrain_product_layout():
    """Products of two irreps (``product: cartesian``): per atom type, every
    ordered pair of its irreps, ``n_1 x n_2`` properties."""
    target = target_from_info(NAME, _info(product="cartesian").targets[NAME])
    assert target.kind == "atomic_basis"
    assert target.key_names == [
        "o3_lambda_1",
        "o3_lambda_2",
        "o3_sigma_1",
        "o3_sigma_2",
        "atom_type",
    ]
    assert target.basis[:4] == (
        (1, 0, 0, 1, 1, 2, 2),
        (1, 0, 1, 1, 1, 2, 1),
        (1, 1, 0, 1, 1, 1, 2),
        (1, 1, 1, 1, 1, 1, 1),
    )
    assert len(target.basis) == 4 + 9
    # hydrogen uses (2 + 3)^2 columns, carbon (1 + 6 + 5)^2: one head of 144
    assert target.n_components == 144
    assert [row[-1] for row in target.basis_columns[:4]] == [0, 4, 10, 16]
    assert target.basis_columns[-1][-1] == 144 - 25


def test_invalid_basis_and_products_refused():
    with pytest.raises(ValueError, match="o3_sigma"):
        Target(name="mtt::b", kind="atomic_basis", basis=((1, 0, 0, 1),))
    with pytest.raises(ValueError, match="repeated"):
        Target(name="mtt::b", kind="atomic_basis", basis=((1, 0, 1, 1), (1, 0, 1, 2)))
    with pytest.raises(ValueError, match="n_properties must be 1"):
        Target(
            name="mtt::b", kind="atomic_basis", basis=((1, 0, 1, 1),), n_properties=2
        )
    with pytest.raises(ValueError, match="basis must be given"):
        Target(name="mtt::b", kind="atomic_basis")
    with pytest.raises(ValueError, match="all"):
        Target(
            name="mtt::b",
            kind="atomic_basis",
            basis=((1, 0, 1, 1), (6, 0, 0, 1, 1, 1, 1)),
        )
    with pytest.raises(ValueError, match="no properties"):
        Target(name="mtt::b", kind="atomic_basis", basis=((1, 0, 0, 1, 1, 2, 0),))


@pytest.mark.parametrize("product", [None, "cartesian"])
def test_each_block_reads_its_own_columns(product):
    """``atomic_basis_tensormap`` on numbered columns: every block of an atom type
    holds the next ``size`` columns of its atoms, components first (row-major),
    properties last, and the blocks of a type use each column once."""
    from pet_mta.modules.spherical import atomic_basis_tensormap

    target = target_from_info(NAME, _info(product=product).targets[NAME])
    species = torch.tensor([1, 0, 0])  # carbon, hydrogen, hydrogen
    columns = torch.arange(target.n_components, dtype=torch.float64)
    values = columns + 1000.0 * torch.arange(3, dtype=torch.float64).reshape(-1, 1)
    basis = [
        row + [TYPES.index(block[0])]
        for block, row in zip(target.basis, target.basis_columns)
    ]
    index = torch.arange(3)
    output = atomic_basis_tensormap(
        values, torch.zeros_like(index), index, species, 1, True, basis
    )
    assert output.keys.names == target.key_names
    used = {1: [], 6: []}
    for row, block in zip(basis, output.blocks()):
        atom_type, start = TYPES[row[-1]], row[-2]
        atoms = [i for i in range(3) if TYPES[int(species[i])] == atom_type]
        assert block.samples.column("atom").tolist() == atoms
        size = block.values[0].numel()
        for sample, atom in enumerate(atoms):
            expected = values[atom, start : start + size]
            assert torch.equal(block.values[sample].reshape(-1), expected)
        used[atom_type].extend(range(start, start + size))
    for taken in used.values():
        assert sorted(taken) == list(range(len(taken)))
    assert max(len(taken) for taken in used.values()) == target.n_components


@pytest.mark.parametrize("product", [None, "cartesian"])
def test_blocks_hold_the_atoms_of_their_type(product):
    """Keys, samples, components and properties as metatrain's layout (float64);
    with ``product``, blocks of products of two irreps."""
    model = _pet(product)
    types = [6, 1, 8, 1, 6, 1]
    output = _evaluate(model, _system(types, 0))
    layout = _info(product=product).targets[NAME].layout
    assert output.keys == layout.keys
    for key, block in output.items():
        atoms = [i for i, t in enumerate(types) if t == int(key["atom_type"])]
        assert block.samples.values.tolist() == [[0, i] for i in atoms]
        expected = layout.block(key)
        assert block.components == expected.components
        assert block.properties == expected.properties
        assert block.values.dtype == torch.float64
        assert torch.all(torch.isfinite(block.values))
    # per-system output: the sum over the atoms of the type
    per_system = _evaluate(model, _system(types, 0), per_atom=False)
    for key, block in per_system.items():
        assert block.samples.values.tolist() == [[0]]
        summed = output.block(key).values.sum(dim=0, keepdim=True)
        torch.testing.assert_close(block.values, summed, rtol=0, atol=1e-12)


@pytest.mark.parametrize("product", [None, "cartesian"])
def test_selected_atoms_and_torchscript(product):
    model = _pet(product)
    system = _system([6, 1, 8, 1, 6, 1], 1)
    full = _evaluate(model, system)
    selected = Labels(["system", "atom"], torch.tensor([[0, 0], [0, 3]]))
    subset = _evaluate(model, system, selected=selected)
    system = get_system_with_neighbor_lists(system, model.requested_neighbor_lists())
    outputs = {NAME: ModelOutput(sample_kind="atom")}
    scripted_full = torch.jit.script(model)([system], outputs, None)[NAME]
    for key, block in subset.items():
        wanted = [[0, 0]] if int(key["atom_type"]) == 6 else [[0, 3]]
        assert block.samples.values.tolist() == wanted
        rows = full.block(key).samples.select(block.samples)
        torch.testing.assert_close(
            block.values, full.block(key).values[rows], rtol=0, atol=1e-10
        )
        torch.testing.assert_close(
            scripted_full.block(key).values, full.block(key).values, rtol=0, atol=0
        )


def _dataset(
    path, structures, random: bool = False, reverse=False, product=None
) -> DiskDataset:
    """A disk data set of the atomic-basis target on structures of the given types:
    random values, or (``random=False``) a constant per type and property in the
    lambda = 0 blocks and zero in the others (unchanged by the augmentation); the
    atoms of each block last to first with ``reverse``; products of two irreps with
    ``product="cartesian"``."""
    layout = _info(product=product).targets[NAME].layout
    generator = torch.Generator().manual_seed(5)
    writer = DiskDatasetWriter(str(path))
    for i, types in enumerate(structures):
        types = torch.tensor(types)
        system = _system(types.tolist(), 10 + i)
        blocks = []
        for key, block in layout.items():
            atoms = torch.nonzero(types == int(key["atom_type"])).reshape(-1)
            if reverse:
                atoms = atoms.flip(0)
            n_properties = len(block.properties)
            shape = (len(atoms), *[len(c) for c in block.components], n_properties)
            values = torch.zeros(shape, dtype=torch.float64)
            lambdas = [v for n, v in zip(key.names, key.values) if "lambda" in n]
            if random:
                values = torch.randn(shape, dtype=torch.float64, generator=generator)
            elif max(int(v) for v in lambdas) == 0:
                per_property = torch.arange(1, n_properties + 1, dtype=torch.float64)
                values[:] = per_property * (1.0 if int(key["atom_type"]) == 1 else -2.0)
            samples = torch.stack([torch.zeros_like(atoms), atoms], dim=1)
            blocks.append(
                TensorBlock(
                    values=values,
                    samples=Labels(["system", "atom"], samples.to(torch.int32)),
                    components=block.components,
                    properties=block.properties,
                )
            )
        writer.write([system], {NAME: TensorMap(layout.keys, blocks)})
    writer.finish()
    return DiskDataset(str(path))


def _error(pet: PET, dataset) -> float:
    """Root-mean-square error of ``pet`` on every value of ``dataset``."""
    squares, count = 0.0, 0
    pet.eval()
    for i in range(len(dataset)):
        sample = dataset[i]._asdict()
        with torch.no_grad():
            output = _evaluate(pet, sample["system"])
        for key, block in sample[NAME].items():
            difference = output.block(key).values - block.values
            squares += float((difference**2).sum())
            count += difference.numel()
    return (squares / count) ** 0.5


@pytest.mark.parametrize("product", [None, "cartesian"])
def test_training_through_metatrain(tmp_path, product):
    structures = [[1, 6, 8, 1, 6, 1][: 4 + i % 3] for i in range(8)]
    dataset = _dataset(tmp_path / "data.zip", structures, product=product)
    torch.manual_seed(0)
    model = PETModel(model_hypers(), _info(product=product))
    model.to(torch.float64)
    before = _error(model.pet, dataset)
    trainer = train_model(
        model, dataset, tmp_path, num_epochs=30, learning_rate=1e-2, batch_size=2
    )
    # no per-species baseline in an atomic basis: the head learns the constants
    readout = model.pet.readouts[NAME]
    assert not readout.has_baseline
    after = _error(model.pet, dataset)
    assert after < 0.2 * before, (before, after)
    assert any(NAME in name for name in trainer.last_validation)
    # exported: the output alone, for selected atoms, as the trained model's
    path = str(tmp_path / "model.pt")
    model.export().save(path)
    exported = load_atomistic_model(path)
    system = get_system_with_neighbor_lists(
        dataset[0]._asdict()["system"], model.pet.requested_neighbor_lists()
    )
    selected = Labels(["system", "atom"], torch.tensor([[0, 1], [0, 3]]))
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={NAME: ModelOutput(sample_kind="atom")},
        selected_atoms=selected,
    )
    result = exported([system], options, check_consistency=True)
    assert list(result) == [NAME]
    reference = _evaluate(model.pet, system, selected=selected)
    assert result[NAME].keys == reference.keys
    for block, expected in zip(result[NAME].blocks(), reference.blocks()):
        assert block.samples == expected.samples
        torch.testing.assert_close(block.values, expected.values, rtol=0, atol=1e-12)


def _rotated(system: System, matrix: torch.Tensor) -> System:
    return System(
        types=system.types,
        positions=system.positions @ matrix.T,
        cell=system.cell,
        pbc=system.pbc,
    )


@pytest.mark.parametrize("mode", ["whole", "local"])
@pytest.mark.parametrize("product", [None, "cartesian"])
def test_ecse_atomic_basis_outputs_are_equivariant(mode, product):
    """ECSE keeps the backbone's blocks (atoms of the block's type, or systems) and
    rotates each by the Wigner matrices of its irreps, exactly (float64)."""
    pet = _pet(product)
    model = Symmetrized(pet, mode=mode)
    system = _system([6, 1, 8, 1, 6, 1], 2)
    generator = torch.Generator().manual_seed(3)
    rotations = random_transformations(
        2, 2, device=torch.device("cpu"), dtype=torch.float64, generator=generator
    ).matrices
    for per_atom in (True, False):
        plain = _evaluate(pet, system, per_atom)
        reference = _evaluate(model, system, per_atom)
        assert reference.keys == plain.keys
        for key, block in reference.items():
            assert block.samples == plain.block(key).samples
            assert block.components == plain.block(key).components
            assert block.properties == plain.block(key).properties
        scale = max(float(b.values.detach().abs().max()) for b in reference.blocks())
        assert scale > 1e-6
        for matrix in rotations:
            expected = O3Transformations(matrix[None], 2).transform_tensormap(reference)
            rotated = _evaluate(model, _rotated(system, matrix), per_atom)
            moved = _evaluate(pet, _rotated(system, matrix), per_atom)
            moved_expected = O3Transformations(matrix[None], 2).transform_tensormap(
                plain
            )
            backbone_error = 0.0
            for key, block in rotated.items():
                difference = block.values - expected.block(key).values
                assert float(difference.detach().abs().max()) <= 1e-10 * scale
                error = moved.block(key).values - moved_expected.block(key).values
                backbone_error = max(backbone_error, float(error.detach().abs().max()))
            # the backbone alone is not equivariant: the test can fail
            assert backbone_error > 1e-6 * scale
    # the exported (TorchScript) wrapper gives the same blocks
    exported = model.export()
    options = ModelEvaluationOptions(
        length_unit="Angstrom", outputs={NAME: ModelOutput(sample_kind="atom")}
    )
    ready = get_system_with_neighbor_lists(system, exported.requested_neighbor_lists())
    scripted = exported([ready], options, check_consistency=True)[NAME]
    eager = _evaluate(model, system)
    assert scripted.keys == eager.keys
    for key, block in scripted.items():
        assert block.samples == eager.block(key).samples
        torch.testing.assert_close(
            block.values, eager.block(key).values, rtol=0, atol=1e-12
        )


def test_training_loader_rotates_blocks_with_their_structures(tmp_path):
    """In pet_mta's training loader, each structure's blocks are rotated with the
    operation that moved its atoms (recovered from the positions), also in batches
    where no block holds atoms of every structure (system labels renumbered), with
    the samples sorted as the model's (the data list them last to first)."""
    # four atoms (the operation is recovered from them); O has no block
    structures = [
        [1, 1, 8, 8],
        [6, 6, 8, 8],
        [1, 8, 8, 1],
        [6, 8, 8, 6],
        [8, 1, 1, 1],
        [6, 6, 6, 8],
    ]
    dataset = _dataset(tmp_path / "data.zip", structures, random=True, reverse=True)
    info = _info()
    model = PETModel(model_hypers(), info)
    train, _, _ = make_loaders(model, info, trainer_hypers(batch_size=2), [dataset], [])
    checked = 0
    for batch in train:
        systems, targets, extra = unpack_batch(batch)
        ids = extra["mtt::aux::system_index"].block().values[:, 0].tolist()
        for row, (system, index) in enumerate(zip(systems, ids)):
            original = dataset[int(index)]._asdict()
            # least squares: rotated = original @ R^T (atoms centred)
            a = original["system"].positions - original["system"].positions.mean(0)
            b = system.positions - system.positions.mean(0)
            matrix = torch.linalg.lstsq(a, b).solution.T
            expected = O3Transformations(matrix[None], 2).transform_tensormap(
                original[NAME]
            )
            for key, block in targets[NAME].items():
                rows = block.samples.column("system") == row
                atoms = block.samples.column("atom")[rows]
                assert torch.all(atoms[1:] > atoms[:-1])
                torch.testing.assert_close(
                    block.values[rows],
                    expected.block(key).values.flip(0),
                    atol=1e-8,
                    rtol=0,
                )
            checked += 1
    assert checked == len(structures)  # batches of 2, none dropped


def test_mtt_train_command(tmp_path):
    """``mtt train`` on a disk data set with metatrain's atomic-basis ``type`` exports
    a model serving the target, one block per ``(o3_lambda, o3_sigma, atom_type)``."""
    structures = [[1, 6, 8, 1, 6, 1][: 4 + i % 3] for i in range(6)]
    _dataset(tmp_path / "data.zip", structures, random=True)
    irreps = {
        t: [{"o3_lambda": lam, "o3_sigma": s, "num": n} for lam, s, n in rows]
        for t, rows in BASIS.items()
    }
    target = {
        "read_from": "data.zip",
        "sample_kind": "atom",
        "type": {"spherical": {"irreps": irreps}},
    }
    section = {"systems": {"read_from": "data.zip"}, "targets": {NAME: target}}
    options = {
        "seed": 0,
        "architecture": {
            "name": "pet_mta",
            "model": dict(TINY_MODEL),
            "training": {"num_epochs": 1, "batch_size": 2, "num_workers": 0},
        },
        "training_set": section,
        "validation_set": section,
        "test_set": 0.0,
    }
    mtt_train(options, tmp_path)
    model = load_atomistic_model(str(tmp_path / "model.pt"))
    system = _system([8, 1, 6, 1], 3).to(torch.float32)
    system = get_system_with_neighbor_lists(system, model.requested_neighbor_lists())
    options = ModelEvaluationOptions(
        length_unit="angstrom", outputs={NAME: ModelOutput(sample_kind="atom")}
    )
    output = model([system], options, check_consistency=True)[NAME]
    assert output.keys == _info().targets[NAME].layout.keys
    hydrogen = output.block({"o3_lambda": 1, "o3_sigma": 1, "atom_type": 1})
    assert hydrogen.samples.values.tolist() == [[0, 1], [0, 3]]
    assert hydrogen.values.shape == (2, 3, 1)

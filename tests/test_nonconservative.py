"""Direct (non-conservative) forces and stress: metadata, symmetry, training."""

import ase
import ase.build
import numpy as np
import pytest
import torch
from conftest import TINY, triclinic_alloy
from ecse_helpers import make_systems, random_rotation, rotated
from metatomic.torch import (
    ModelEvaluationOptions,
    ModelOutput,
    load_atomistic_model,
)
from metatomic_ase import MetatomicCalculator
from optional_imports import require

from pet_mta import PET, Symmetrized, Target
from pet_mta.neighbors import systems_from_ase

DIRECT = {
    "energy": {"unit": "eV", "quantity": "energy"},
    "non_conservative_force": {"kind": "cartesian", "unit": "eV/angstrom"},
    "non_conservative_stress": {"kind": "stress", "unit": "eV/angstrom^3"},
}
FORCES = "non_conservative_force"  # metatomic's current name
OLD_FORCES = "non_conservative_forces"  # deprecated alias, still used by engines
STRESS = "non_conservative_stress"


def direct_pet(seed: int = 0) -> PET:
    torch.manual_seed(seed)
    options = dict(TINY, cutoff=3.5, cutoff_width=0.5)
    return PET(atomic_types=[13, 29], targets=DIRECT, **options).to(torch.float64)


def direct_outputs(model, atoms: ase.Atoms, stress_kind: str = "system"):
    systems = make_systems(atoms, model)
    result = model(
        systems,
        {
            FORCES: ModelOutput(sample_kind="atom"),
            STRESS: ModelOutput(sample_kind=stress_kind),
        },
        None,
    )
    forces = result[FORCES].block().values.detach()[..., 0].numpy()
    stress = result[STRESS].block().values.detach()[..., 0].numpy()
    return forces, stress


def test_targets_need_the_right_kind():
    with pytest.raises(ValueError, match="kind 'stress'"):
        Target(name=STRESS, kind="cartesian")
    for name in (FORCES, OLD_FORCES):
        with pytest.raises(ValueError, match="kind 'cartesian'"):
            Target(name=name, kind="scalar")
        assert Target(name=name, kind="cartesian").property_name == FORCES
    assert Target(name=STRESS, kind="stress").n_components == 9


def test_exported_outputs_pass_metatomic_checks(tmp_path):
    pet = direct_pet()
    path = str(tmp_path / "direct.pt")
    pet.export().save(path)
    model = load_atomistic_model(path)
    outputs = model.capabilities().outputs
    assert outputs[FORCES].unit == "eV/angstrom"
    assert outputs[STRESS].unit == "eV/angstrom^3"

    atoms = triclinic_alloy()
    frames = [atoms, atoms.repeat((2, 1, 1))]
    systems = systems_from_ase(frames, pet)
    for stress_kind in ("system", "atom"):
        options = ModelEvaluationOptions(
            length_unit="angstrom",
            outputs={
                FORCES: ModelOutput(unit="eV/angstrom", sample_kind="atom"),
                STRESS: ModelOutput(unit="eV/angstrom^3", sample_kind=stress_kind),
            },
        )
        # check_consistency validates metatomic's metadata of standard outputs
        result = model(systems, options, check_consistency=True)
        forces = result[FORCES].block()
        stress = result[STRESS].block()
        assert forces.values.shape == (12, 3, 1)
        assert forces.components[0].names == ["xyz"]
        assert forces.properties.names == ["non_conservative_force"]
        assert [c.names[0] for c in stress.components] == ["xyz_1", "xyz_2"]
        assert stress.properties.names == ["non_conservative_stress"]
        values = stress.values[..., 0]
        torch.testing.assert_close(values, values.transpose(1, 2))
        if stress_kind == "system":
            assert values.shape == (2, 3, 3)
            per_system = values
            # same local environments in a doubled cell: same forces, same stress
            torch.testing.assert_close(per_system[0], per_system[1])
            torch.testing.assert_close(forces.values[:4], forces.values[4:8])
        else:
            assert values.shape == (12, 3, 3)
            torch.testing.assert_close(values[:4].sum(0), per_system[0])
            torch.testing.assert_close(values[4:].sum(0), per_system[1])
    assert float(per_system.abs().max()) > 0

    # engines asking for the deprecated name (i-PI) get the same forces
    assert OLD_FORCES in outputs
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={OLD_FORCES: ModelOutput(unit="eV/angstrom", sample_kind="atom")},
    )
    with pytest.warns(UserWarning, match="deprecated"):
        old = model(systems, options, check_consistency=True)
    torch.testing.assert_close(old[OLD_FORCES].block().values, forces.values)

    # a stretched cell (same fractional positions) has another volume: the stress
    # is the atomic virials over the volume, so it is not the same
    stretched = atoms.copy()
    stretched.set_cell(atoms.cell.array * 1.02, scale_atoms=True)
    assert not np.allclose(
        direct_outputs(pet, stretched)[1], per_system[0].numpy(), atol=1e-6
    )


def test_stress_is_nan_without_a_cell():
    pet = direct_pet()
    molecule = ase.Atoms("Cu3", positions=[[0, 0, 0], [2.4, 0, 0], [0, 2.4, 0.3]])
    forces, stress = direct_outputs(pet, molecule)
    assert np.all(np.isfinite(forces)) and forces.shape == (3, 3)
    assert np.all(np.isnan(stress))


def test_symmetrized_direct_outputs_rotate_exactly():
    pet = direct_pet().eval()
    atoms = triclinic_alloy()
    rotation = random_rotation(7)
    forces, stress = direct_outputs(pet, atoms)
    forces_r, stress_r = direct_outputs(pet, rotated(atoms, rotation))
    # the bare PET is unconstrained: its direct outputs rotate only approximately
    assert np.abs(forces_r - forces @ rotation.T).max() > 1e-6

    model = Symmetrized(pet, mode="whole")
    forces, stress = direct_outputs(model, atoms)
    forces_r, stress_r = direct_outputs(model, rotated(atoms, rotation))
    scale = np.abs(forces).max()
    assert scale > 0
    np.testing.assert_allclose(forces_r, forces @ rotation.T, atol=1e-10 * scale)
    np.testing.assert_allclose(
        stress_r[0],
        rotation @ stress[0] @ rotation.T,
        atol=1e-10 * np.abs(stress).max(),
    )


def _direct_targets(path: str, conservative_forces: bool):
    """metatrain target options: energy (+ forces) and the direct targets, read
    from the same EMT forces and stress."""
    return {
        "energy": {
            "read_from": path,
            "key": "energy",
            "unit": "eV",
            "forces": {"read_from": path, "key": "forces"}
            if conservative_forces
            else False,
            "stress": False,
        },
        OLD_FORCES: {
            "read_from": path,
            "key": "forces",
            "quantity": "force",
            "unit": "eV/A",
            "type": {"cartesian": {"rank": 1}},
            "sample_kind": "atom",
        },
        STRESS: {
            "read_from": path,
            "key": "stress",
            "quantity": "pressure",
            "unit": "eV/A^3",
            "type": {"cartesian": {"rank": 2}},
            "sample_kind": "system",
        },
    }


def _train_direct(
    tmp_path, n_frames, epochs, conservative_forces, batch_size=4, **width
):
    """Train a small pet_mta model with metatrain's trainer on EMT frames; return
    the model and the (direct, conservative, reference) forces and stresses
    before and after training."""
    require("metatrain.utils.architectures", "train")
    from metatrain.utils.data import DatasetInfo, get_atomic_types
    from metatrain_helpers import (
        emt_frames,
        load_dataset,
        model_hypers,
        train_model,
        write_frames,
    )

    from pet_mta.metatrain import PETModel

    frames = emt_frames(n_frames, seed=3)
    path = write_frames(tmp_path / "data.xyz", frames)
    dataset, infos = load_dataset(path, _direct_targets(path, conservative_forces))
    info = DatasetInfo(
        length_unit="angstrom", atomic_types=get_atomic_types(dataset), targets=infos
    )
    hypers = model_hypers(**dict({"cutoff": 4.0, "d_pet": 16, "d_head": 16}, **width))
    model = PETModel(hypers, info).to(torch.float64)

    def train(n_epochs):
        train_model(
            model,
            dataset,
            tmp_path,
            num_epochs=n_epochs,
            learning_rate=1e-2,
            batch_size=batch_size,
        )

    def predict():
        systems = systems_from_ase(frames, model.pet, positions_requires_grad=True)
        out = model.pet(
            systems,
            {
                "energy": ModelOutput(sample_kind="system"),
                OLD_FORCES: ModelOutput(sample_kind="atom"),
                STRESS: ModelOutput(sample_kind="system"),
            },
        )
        energy = out["energy"].block().values.sum()
        gradients = torch.autograd.grad(energy, [s.positions for s in systems])
        return (
            out[OLD_FORCES].block().values[..., 0].detach(),
            -torch.cat(gradients).detach(),
            out[STRESS].block().values[..., 0].detach(),
        )

    train(0)  # baseline and scales only
    before = predict()
    train(epochs)
    after = predict()
    reference = (
        torch.tensor(np.concatenate([f.arrays["forces"] for f in frames])),
        torch.tensor(np.stack([f.info["stress"] for f in frames])),
    )
    return model, before, after, reference


def test_direct_forces_learn_emt_forces():
    """Plain fitting of the direct-force head (fixed orientation): it approaches
    EMT's (conservative) forces, well below the error of predicting zero."""
    from metatrain_helpers import emt_frames

    frames = emt_frames(16, seed=3)
    forces = torch.tensor(np.concatenate([f.arrays["forces"] for f in frames]))
    torch.manual_seed(0)
    options = dict(TINY, cutoff=4.0, cutoff_width=0.5, num_gnn_layers=1)
    pet = PET(atomic_types=[28, 29], targets=DIRECT, **options).to(torch.float64)
    systems = systems_from_ase(frames, pet)
    optimizer = torch.optim.Adam(pet.parameters(), lr=3e-3)
    errors = []
    for _ in range(250):
        out = pet(systems, {FORCES: ModelOutput(sample_kind="atom")})
        error = out[FORCES].block().values[..., 0] - forces
        errors.append(float(error.abs().mean()))
        optimizer.zero_grad()
        error.pow(2).mean().backward()
        optimizer.step()
    zero_error = float(forces.abs().mean())
    assert errors[-1] < 0.8 * errors[0]
    assert errors[-1] < 0.85 * zero_error


def test_metatrain_trains_direct_targets_jointly(tmp_path):
    model, before, after, (forces, stress) = _train_direct(
        tmp_path, 16, 40, conservative_forces=False, batch_size=2
    )
    assert model.pet.target_kinds[STRESS] == "stress"
    # the stress head is scaled as atomic virials (eV), not as a stress
    volume_per_atom = 2 * 3.6**3 / 8  # emt_frames: 2x1x1 cubic fcc cells
    virial_rms = float((stress * volume_per_atom).pow(2).mean().sqrt())
    assert float(model.pet.readouts[STRESS].scale[0]) == pytest.approx(virial_rms)
    # 40 short epochs with random rotations: both direct errors go down, and the
    # direct forces beat predicting zero (they learnt directions)
    error = (after[0] - forces).abs().mean()
    assert error < 0.85 * (before[0] - forces).abs().mean()
    assert error < 0.85 * forces.abs().mean()
    assert (after[2] - stress).abs().mean() < 0.8 * (before[2] - stress).abs().mean()

    # the exported model passes metatomic's checks with the direct outputs
    exported = model.export()
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    systems = systems_from_ase([atoms], model.pet)
    options = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={
            OLD_FORCES: ModelOutput(unit="eV/angstrom", sample_kind="atom"),
            STRESS: ModelOutput(unit="eV/angstrom^3", sample_kind="system"),
        },
    )
    result = exported(systems, options, check_consistency=True)
    assert result[OLD_FORCES].block().values.shape == (4, 3, 1)
    assert result[STRESS].block().values.shape == (1, 3, 3, 1)


@pytest.mark.slow
def test_joint_training_direct_forces_approach_conservative_ones(tmp_path):
    width = {"d_pet": 32, "d_head": 32, "d_node": 32, "d_feedforward": 32}
    _, before, after, (forces, _) = _train_direct(
        tmp_path, 64, 60, conservative_forces=True, cutoff=4.0, **width
    )
    gap_before = (before[0] - before[1]).abs().mean()
    gap_after = (after[0] - after[1]).abs().mean()
    assert gap_after < 0.7 * gap_before
    assert (after[0] - forces).abs().mean() < 0.8 * (before[0] - forces).abs().mean()


def test_ase_calculator_uses_the_direct_outputs(tmp_path):
    pet = direct_pet().eval()
    path = str(tmp_path / "direct.pt")
    pet.export().save(path)
    atoms = triclinic_alloy()
    forces, stress = direct_outputs(pet, atoms)
    atoms.calc = MetatomicCalculator(path, non_conservative=True)
    # the calculator removes the net force (the head does not constrain it)
    assert np.abs(forces.mean(0)).max() > 1e-4
    np.testing.assert_allclose(atoms.get_forces(), forces - forces.mean(0), atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), stress[0], atol=1e-10)
    # they are not the conservative forces of the same model
    atoms.calc = MetatomicCalculator(path)
    assert np.abs(atoms.get_forces() - forces).max() > 1e-4

"""The ensemble wrapper: mean, energy_ensemble, energy_uncertainty, engines."""

import copy
import subprocess
import sys
import warnings
from pathlib import Path

import ase.build
import ase.io
import ase.units
import numpy as np
import pytest
import torch
from conftest import tiny_pet, triclinic_alloy
from metatensor.torch import Labels
from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model
from optional_imports import require

from pet_mta import PET, Ensemble
from pet_mta.cli import main as cli
from pet_mta.neighbors import systems_from_ase

TYPES = (13, 29)


def structures():
    second = triclinic_alloy(seed=7).repeat((1, 1, 2))
    return [triclinic_alloy(), second]


def member_energies(model, atoms_list, per_atom):
    """``[n_samples]`` energies of one bare member and its forces per structure."""
    systems = systems_from_ase(
        atoms_list, model, dtype=torch.float64, positions_requires_grad=True
    )
    kind = "atom" if per_atom else "system"
    energy = model(systems, {"energy": ModelOutput(sample_kind=kind)})["energy"]
    values = energy.block().values
    forces = torch.autograd.grad(values.sum(), [s.positions for s in systems])
    return values.detach().reshape(-1).numpy(), [-f.numpy() for f in forces]


def scripted(ensemble: Ensemble, path: Path):
    """Export, save and load again (the TorchScript model engines run)."""
    ensemble.export().save(str(path))
    return load_atomistic_model(str(path))


def evaluate(model, atoms_list, outputs, selected_atoms=None):
    """Outputs of an exported model (metatomic's checks on), and the forces."""
    systems = systems_from_ase(
        atoms_list, model, dtype=torch.float64, positions_requires_grad=True
    )
    options = ModelEvaluationOptions(
        length_unit="angstrom", outputs=outputs, selected_atoms=selected_atoms
    )
    results = model(systems, options, check_consistency=True)
    energy = results["energy"].block().values
    forces = torch.autograd.grad(energy.sum(), [s.positions for s in systems])
    return results, [-f.numpy() for f in forces]


ALL = {
    "energy": ModelOutput(sample_kind="system"),
    "energy_ensemble": ModelOutput(sample_kind="system"),
    "energy_uncertainty": ModelOutput(sample_kind="system"),
}
PER_ATOM = {name: ModelOutput(sample_kind="atom") for name in ALL}


def test_identical_members_zero_uncertainty(tmp_path):
    member = tiny_pet(TYPES, seed=0)
    exported = scripted(Ensemble([member, copy.deepcopy(member)]), tmp_path / "e.pt")
    atoms = structures()
    for outputs, per_atom in ((ALL, False), (PER_ATOM, True)):
        reference, reference_forces = member_energies(member, atoms, per_atom)
        results, forces = evaluate(exported, atoms, outputs)
        energy = results["energy"].block().values.detach().reshape(-1).numpy()
        np.testing.assert_allclose(energy, reference, rtol=0, atol=1e-12)
        uncertainty = results["energy_uncertainty"].block().values
        assert uncertainty.shape == (len(reference), 1)
        assert torch.all(uncertainty == 0.0)
        ensemble = results["energy_ensemble"].block().values.detach().numpy()
        np.testing.assert_allclose(ensemble, np.stack([reference] * 2, axis=1))
        for ours, theirs in zip(forces, reference_forces):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_members", [2, 3])
def test_mean_and_std_by_hand(n_members, tmp_path):
    members = [tiny_pet(TYPES, seed=seed) for seed in range(n_members)]
    ensemble = Ensemble(members)
    exported = scripted(ensemble, tmp_path / "ensemble.pt")
    atoms = structures()
    for outputs, per_atom in ((ALL, False), (PER_ATOM, True)):
        by_member = [member_energies(m, atoms, per_atom) for m in members]
        energies = np.stack([e for e, _ in by_member])  # [members, samples]
        mean = energies.sum(axis=0) / n_members
        std = np.sqrt(((energies - mean) ** 2).sum(axis=0) / (n_members - 1))
        assert np.all(std > 1e-4)  # the members really differ

        results, forces = evaluate(exported, atoms, outputs)
        values = {name: results[name].block().values.detach() for name in outputs}
        np.testing.assert_allclose(values["energy"][:, 0], mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(
            values["energy_uncertainty"][:, 0], std, rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            values["energy_ensemble"], energies.T, rtol=0, atol=1e-10
        )
        # forces of the mean energy: the mean of the members' forces
        for s in range(len(atoms)):
            expected = sum(f[s] for _, f in by_member) / n_members
            np.testing.assert_allclose(forces[s], expected, rtol=0, atol=1e-10)

        # metatomic's layout of the ensemble: one "energy" property per member
        block = results["energy_ensemble"].block()
        assert block.properties.names == ["energy"]
        assert block.properties.values.reshape(-1).tolist() == list(range(n_members))
        expected_samples = ["system", "atom"] if per_atom else ["system"]
        assert block.samples.names == expected_samples
        assert results["energy_uncertainty"].block().samples.names == expected_samples

    # the un-exported module gives the same, and so does a mixed request
    systems = systems_from_ase(atoms, ensemble, dtype=torch.float64)
    mixed = ensemble(
        systems,
        {
            "energy": ModelOutput(sample_kind="system"),
            "energy_uncertainty": ModelOutput(sample_kind="atom"),
        },
    )
    atomic = np.stack([member_energies(m, atoms, True)[0] for m in members])
    total = np.stack([member_energies(m, atoms, False)[0] for m in members])
    np.testing.assert_allclose(
        mixed["energy"].block().values[:, 0].detach(), total.mean(0), atol=1e-10
    )
    np.testing.assert_allclose(
        mixed["energy_uncertainty"].block().values[:, 0].detach(),
        atomic.std(0, ddof=1),
        atol=1e-10,
    )


def test_selected_atoms(tmp_path):
    members = [tiny_pet(TYPES, seed=seed) for seed in range(2)]
    exported = scripted(Ensemble(members), tmp_path / "ensemble.pt")
    atoms = structures()
    selection = Labels(["system", "atom"], torch.tensor([[0, 1], [1, 0], [1, 5]]))
    results, _ = evaluate(exported, atoms, PER_ATOM, selection)
    full, _ = evaluate(exported, atoms, PER_ATOM)
    rows = [1, 4, 9]  # flat index of the selected atoms (4 atoms in system 0)
    for name in PER_ATOM:
        assert results[name].block().samples == selection
        np.testing.assert_allclose(
            results[name].block().values.detach(),
            full[name].block().values.detach()[rows],
            atol=1e-12,
        )


def test_member_units_are_converted():
    electronvolt = tiny_pet(TYPES, seed=0)
    torch.manual_seed(0)
    millielectronvolt = PET(
        atomic_types=list(TYPES),
        targets={"energy": {"unit": "meV", "quantity": "energy"}},
        **{k: v for k, v in electronvolt.hypers.items() if k != "atomic_types"},
    ).to(torch.float64)
    millielectronvolt.load_state_dict(electronvolt.state_dict())
    atoms = structures()
    reference, _ = member_energies(electronvolt, atoms, False)
    results, _ = evaluate(
        Ensemble([electronvolt, millielectronvolt]).export(), atoms, ALL
    )
    np.testing.assert_allclose(
        results["energy_ensemble"].block().values.detach(),
        np.stack([reference, reference / 1000], axis=1),
        atol=1e-12,
    )


def test_bad_ensembles():
    member = tiny_pet(TYPES, seed=0)
    with pytest.raises(ValueError, match="at least two"):
        Ensemble([member])
    with pytest.raises(ValueError, match="same dtype"):
        Ensemble([member, tiny_pet(TYPES, seed=1, dtype=torch.float32)])
    exported = Ensemble([member, tiny_pet(TYPES, seed=1)]).export()
    assert "energy_uncertainty" in exported.capabilities().outputs
    assert "feature" not in exported.capabilities().outputs
    # atomic types: those every member knows
    other = tiny_pet((1, 13, 29), seed=2)
    assert Ensemble([member, other]).capabilities().atomic_types == [13, 29]


def test_cli_and_ase(tmp_path):
    from metatomic_ase import MetatomicCalculator

    paths = []
    for seed in range(3):
        path = tmp_path / f"member-{seed}.pt"
        tiny_pet(TYPES, seed=seed).export().save(str(path))
        paths.append(str(path))
    output = tmp_path / "ensemble.pt"
    assert cli(["ensemble", *paths, "-o", str(output)]) == 0
    loaded = load_atomistic_model(str(output))
    assert "energy_ensemble" in loaded.capabilities().outputs

    atoms = triclinic_alloy()
    members = [
        MetatomicCalculator(path, uncertainty_threshold=None).get_potential_energy(
            atoms
        )
        for path in paths
    ]
    calculator = MetatomicCalculator(
        str(output),
        additional_outputs={
            "energy_ensemble": ModelOutput(sample_kind="system"),
            "energy_uncertainty": ModelOutput(sample_kind="system"),
        },
        uncertainty_threshold=None,
    )
    atoms.calc = calculator
    energy = atoms.get_potential_energy()
    assert np.isclose(energy, np.mean(members), atol=1e-8)
    extra = calculator.additional_outputs
    np.testing.assert_allclose(
        extra["energy_ensemble"].block().values[0].detach().numpy(), members, atol=1e-8
    )
    assert np.isclose(
        float(extra["energy_uncertainty"].block().values[0, 0].detach()),
        np.std(members, ddof=1),
        atol=1e-8,
    )
    assert atoms.get_forces().shape == (len(atoms), 3)

    # the calculator's own per-atom uncertainty check: silent below the threshold
    calculator = MetatomicCalculator(
        str(output),
        additional_outputs={"energy_uncertainty": ModelOutput(sample_kind="atom")},
        uncertainty_threshold=1e6,
    )
    atoms.calc = calculator
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.get_potential_energy()
    atomic = calculator.additional_outputs["energy_uncertainty"].block().values
    assert atomic.shape == (len(atoms), 1)
    assert torch.all(atomic > 0)

    # a threshold below the atomic uncertainties: metatomic's ASE calculator warns
    atoms.calc = MetatomicCalculator(str(output), uncertainty_threshold=1e-8)
    with pytest.warns(UserWarning, match="atomic energy uncertainties are larger"):
        atoms.get_potential_energy()


IPI_INPUT = """<simulation verbosity='low' safe_stride='1000'>
  <output prefix='md'>
    <properties stride='1' filename='out'>
      [ step, conserved{electronvolt}, potential{electronvolt} ]
    </properties>
    <trajectory filename='committee' stride='1' extra_type='committee_pot'>
      extras
    </trajectory>
  </output>
  <total_steps>10</total_steps>
  <prng><seed>31415</seed></prng>
  <ffdirect name='ensemble' pbc='false'>
    <pes>metatomic</pes>
    <parameters>{template: init.xyz, model: ensemble.pt, device: cpu,
                 energy_ensemble: True, uncertainty_threshold: 1000.0}</parameters>
  </ffdirect>
  <system>
    <initialize nbeads='1'>
      <file mode='ase'>init.xyz</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces><force forcefield='ensemble'/></forces>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nve'><timestep units='femtosecond'>1.0</timestep></dynamics>
    </motion>
  </system>
</simulation>
"""


@pytest.mark.slow
@pytest.mark.engines
def test_ipi_runs_the_ensemble(tmp_path):
    require("ipi", "engines")
    members = [tiny_pet(TYPES, seed=seed) for seed in range(2)]
    Ensemble(members).export().save(str(tmp_path / "ensemble.pt"))
    # an orthorhombic cell: i-PI keeps its orientation (PET is not exactly
    # rotation invariant, so a rotated triclinic cell would change the energies)
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.numbers[::3] = 13
    atoms.rattle(0.05, seed=2)
    ase.io.write(tmp_path / "init.xyz", atoms, format="extxyz")
    (tmp_path / "input.xml").write_text(IPI_INPUT)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "i-pi"), "input.xml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = np.loadtxt(tmp_path / "md.out", ndmin=2)
    assert data.shape[0] == 11
    # step 0: i-PI's committee (Hartree) holds every member's energy; the
    # potential it integrates is their mean
    lines = (tmp_path / "md.committee_0").read_text().splitlines()
    assert "committee_pot" in lines[0]
    committee = np.array(lines[1].split(), dtype=np.float64) * ase.units.Hartree
    expected = [member_energies(m, [atoms], False)[0][0] for m in members]
    np.testing.assert_allclose(committee, expected, rtol=1e-6)
    assert np.isclose(np.mean(committee), data[0, 2], rtol=1e-6)
    assert np.ptp(data[:, 2]) / len(atoms) > 1e-5  # atoms moved
    assert np.ptp(data[:, 1]) / len(atoms) < 1e-4  # NVE: conserved

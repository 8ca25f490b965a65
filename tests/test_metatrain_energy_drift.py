"""Energies are learned while forces are fitted (issue: energy drift).

Data whose energies per atom vary little while forces are large (water clusters:
18 meV/atom against 1.35 eV/Å) used to get an energy scale of a few meV. The network
then needed raw outputs of O(100) per Å for the forces, and the energies drifted
away while forces were fitted: water clusters went from 14 to 65 meV/atom over 20
epochs. The small case here, rattled 8-atom Cu cells (41 meV/atom, 1.1 eV/Å), shows
the same: with the energy-only scale the energies end as bad as predicting the mean
(0.88 of it); with the force-aware scale they end at 0.46 of it.

A second cause on this case: forces do not constrain the per-species energy offset,
and with Adam it wandered by up to 150 meV/atom from one epoch to the next (with
``central_stream``, seed 0: 1.46 of predicting the mean at the end). Refitting the
offsets after every epoch (``refit_baseline``, opt-in) gives 0.27 there; model
seeds 0-5 end at 0.08-0.46 with and without the stream (seeds 0-3 without the
refit: 0.12-1.46). The default (no stream, no refit) ends at 0.49 with seed 0.
"""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from metatomic.torch import ModelOutput  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    dataset_info,
    energy_target,
    load_dataset,
    model_hypers,
    train_model,
    write_frames,
)

from pet_mta.metatrain import PETModel  # noqa: E402
from pet_mta.neighbors import systems_from_ase  # noqa: E402


def _rattled_copper(n: int, seed: int):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.info["stress"] = atoms.get_stress(voigt=False)
        atoms.calc = None
        frames.append(atoms)
    return frames


def _energies_per_atom(pet, frames) -> np.ndarray:
    systems = systems_from_ase(frames, pet)
    outputs = pet(systems, {"energy": ModelOutput(sample_kind="system")})
    energies = outputs["energy"].block().values.detach().numpy()[:, 0]
    return energies / np.array([len(a) for a in frames])


@pytest.mark.slow
@pytest.mark.parametrize(
    "central_stream, refit", [(False, False), (False, True), (True, True)]
)
def test_energies_are_learned_while_forces_are_fitted(tmp_path, central_stream, refit):
    train, validation = _rattled_copper(48, seed=0), _rattled_copper(24, seed=1)
    train_path = write_frames(tmp_path / "train.xyz", train)
    val_path = write_frames(tmp_path / "val.xyz", validation)
    dataset, infos = load_dataset(train_path, energy_target(train_path, stress=False))
    val_set, _ = load_dataset(val_path, energy_target(val_path, stress=False))
    info = dataset_info(dataset, infos)
    torch.manual_seed(0)
    width = {"d_pet": 16, "d_head": 16, "d_node": 16, "d_feedforward": 16}
    model = PETModel(model_hypers(**width, central_stream=central_stream), info)
    train_model(
        model,
        dataset,
        tmp_path,
        val=val_set,
        seed=None,  # the stream seeded above for the model
        num_epochs=20,
        batch_size=4,
        checkpoint_interval=1000,
        refit_baseline=refit,
    )
    model.eval()
    reference = np.array([a.info["energy"] / len(a) for a in validation])
    mean = np.mean([a.info["energy"] / len(a) for a in train])
    error = np.abs(_energies_per_atom(model.pet, validation) - reference).mean()
    predicting_the_mean = np.abs(reference - mean).mean()
    assert error < 0.7 * predicting_the_mean

"""The per-species offsets refitted after every epoch (``refit_baseline``)."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from metatomic.torch import ModelOutput  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    dataset_info,
    emt_frames,
    energy_target,
    load_dataset,
    model_hypers,
    train_model,
    trainer_hypers,
    write_frames,
)

from pet_mta.metatrain import PETModel  # noqa: E402
from pet_mta.metatrain.data import plain_loader  # noqa: E402
from pet_mta.metatrain.offsets import (  # noqa: E402
    refit_names,
    refit_offsets,
    refit_subsets,
)
from pet_mta.neighbors import systems_from_ase  # noqa: E402

SHIFTS = {29: 0.37, 28: -0.21}  # eV per atom, added to the model's energies


def _energies(model, frames) -> np.ndarray:
    systems = systems_from_ase(frames, model.pet, dtype=torch.float64)
    outputs = model(systems, {"energy": ModelOutput(sample_kind="system")})
    return outputs["energy"].block().values.detach().numpy()[:, 0]


def _model_and_loader(tmp_path, frames):
    """A random float64 model and a training loader whose energies are the model's
    own plus :data:`SHIFTS` per atom."""
    path = write_frames(tmp_path / "emt.xyz", frames)
    dataset, infos = load_dataset(path, energy_target(path, stress=False))
    info = dataset_info(dataset, infos)
    torch.manual_seed(0)
    model = PETModel(model_hypers(), info).to(torch.float64)
    shifted = _energies(model, frames)
    for atoms, energy in zip(frames, shifted):
        atoms.info["energy"] = energy + sum(SHIFTS[int(z)] for z in atoms.numbers)
    path = write_frames(tmp_path / "shifted.xyz", frames)
    dataset, infos = load_dataset(path, energy_target(path, stress=False))
    hypers = trainer_hypers(batch_size=3, num_workers=0)
    # no random rotations, which would change the energies of the random (not
    # rotation-invariant) model
    loader = plain_loader(model, info, hypers, [dataset])
    return model, loader, infos


def _refit(model, loader, infos, per_structure=()):
    return refit_offsets(
        model,
        loader,
        {"energy": infos["energy"]},
        list(per_structure),
        torch.float64,
        torch.device("cpu"),
        distributed=False,
    )


@pytest.mark.parametrize("per_structure", [(), ("energy",)])
def test_refit_recovers_per_species_shifts(tmp_path, per_structure):
    """Energies off by a constant per species: the refit finds those constants
    (weighted per atom or per structure) and the model then reproduces the data."""
    frames = emt_frames(10, seed=3)
    model, loader, infos = _model_and_loader(tmp_path, frames)
    largest = _refit(model, loader, infos, per_structure)
    baseline = model.pet.readouts["energy"].baseline[:, 0]
    for atomic_type, shift in SHIFTS.items():
        index = model.pet.atomic_types.index(atomic_type)
        assert float(baseline[index]) == pytest.approx(shift, abs=1e-9)
    assert largest["energy"] == pytest.approx(0.37, abs=1e-9)
    reference = np.array([a.info["energy"] for a in frames])
    assert np.allclose(_energies(model, frames), reference, atol=1e-9)


def test_refit_with_one_composition_shares_the_shift(tmp_path):
    """Every structure with the same composition: the species' shifts cannot be
    told apart; the minimum-norm solution still fits every energy exactly."""
    frames = emt_frames(6, seed=4)
    for atoms in frames:
        atoms.set_chemical_symbols(["Cu", "Ni"] * 4)
    model, loader, infos = _model_and_loader(tmp_path, frames)
    _refit(model, loader, infos)
    baseline = model.pet.readouts["energy"].baseline[:, 0]
    assert float(baseline[0]) == pytest.approx(float(baseline[1]), abs=1e-9)
    reference = np.array([a.info["energy"] for a in frames])
    assert np.allclose(_energies(model, frames), reference, atol=1e-9)


def test_refit_leaves_fixed_baselines_alone(tmp_path):
    """Baselines given in ``atomic_baseline`` (or loaded from a file) are kept."""
    frames = emt_frames(4, seed=5)
    model, _, infos = _model_and_loader(tmp_path, frames)
    assert refit_names(model.pet, infos, {}) == ["energy"]
    assert refit_names(model.pet, infos, {"energy": {29: -3.0}}) == []
    assert refit_names(model.pet, infos, "composition.ckpt") == []


def test_training_with_refit_ends_with_fitted_offsets(tmp_path):
    """``refit_baseline: true``: after the last epoch the per-species offsets are
    the least-squares ones of the training set (all of it, being small), i.e. the
    per-atom residuals are orthogonal to the species fractions; without it they
    are not."""
    frames = emt_frames(12, seed=6)
    path = write_frames(tmp_path / "train.xyz", frames)
    dataset, infos = load_dataset(path, energy_target(path, stress=False))
    info = dataset_info(dataset, infos)
    counts = np.array([[np.sum(a.numbers == z) for z in (28, 29)] for a in frames])
    fractions = counts / counts.sum(1, keepdims=True)
    reference = np.array([a.info["energy"] for a in frames])
    normal_residual = {}
    for refit in (False, True):
        torch.manual_seed(0)
        model = PETModel(model_hypers(), info)
        train_model(
            model,
            dataset,
            tmp_path,
            num_epochs=2,
            batch_size=4,
            checkpoint_interval=1000,
            refit_baseline=refit,
        )
        model.eval()
        residual = (reference - _energies(model, frames)) / counts.sum(1)
        normal_residual[refit] = np.abs(fractions.T @ residual).max()
    assert normal_residual[True] < 1e-9
    assert normal_residual[False] > 1e-4


def test_refit_uses_every_structure_of_small_sets():
    """All structures up to a thousand (a fit on a subset is that subset's
    optimum, which the energy loss then pulls against), a tenth but at least a
    thousand beyond; the same structures at every call, and distinct."""
    sizes = {100: 100, 1000: 1000, 3000: 1000, 20000: 2000}
    datasets = [list(range(n)) for n in sizes]
    subsets = refit_subsets(datasets)
    assert [len(s) for s in subsets] == list(sizes.values())
    for subset, again in zip(subsets, refit_subsets(datasets)):
        assert list(subset.indices) == list(again.indices)
        assert len(set(subset.indices)) == len(subset.indices)

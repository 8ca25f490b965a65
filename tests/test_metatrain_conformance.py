"""metatrain's generic architecture test suite, run against ``pet_mta``.

Every class of ``metatrain.utils.testing`` runs here with a tiny model. Skipped
cases and the reason for each:

- spherical / atomic-basis outputs: pet_mta predicts scalars and Cartesian vectors
  only (``supports_spherical_outputs = False``, ``supports_atomic_basis = False``);
- rotational/reflection equivariance: PET is an unconstrained transformer that
  learns symmetry from augmentation, it is not equivariant by construction;
- CUDA device cases: no GPU on the test machine (skipped by metatrain itself);
- the gradient part of ``TrainingTests.test_continue`` (see ``TestTraining``).
"""

import copy
from pathlib import Path

import pytest

pytest.importorskip("metatrain", reason="metatrain is an optional dependency")

import metatrain  # noqa: E402
from metatrain.utils.architectures import get_default_hypers  # noqa: E402
from metatrain.utils.testing import (  # noqa: E402
    ArchitectureTests,
    AutogradTests,
    CheckpointTests,
    ExportedTests,
    InputTests,
    OutputTests,
    TorchscriptTests,
    TrainingTests,
)

QM9 = Path(metatrain.__file__).parent / "llpr" / "tests" / "qm9_reduced_100.xyz"


class PETMTATests(ArchitectureTests):
    architecture = "pet_mta"

    @pytest.fixture
    def dataset_path(self) -> str:
        # the suite's default points into metatrain's source repository
        return str(QM9)

    @pytest.fixture
    def minimal_model_hypers(self):
        hypers = copy.deepcopy(get_default_hypers(self.architecture)["model"])
        hypers.update(
            d_pet=2,
            d_head=2,
            d_node=2,
            d_feedforward=2,
            num_heads=1,
            num_attention_layers=1,
            num_gnn_layers=1,
        )
        return hypers

    @pytest.fixture
    def model_hypers(self, minimal_model_hypers):
        hypers = copy.deepcopy(minimal_model_hypers)
        hypers.update(d_pet=8, d_head=8, d_node=8, d_feedforward=8, num_heads=2)
        hypers.update(num_gnn_layers=2)
        return hypers

    @pytest.fixture
    def default_hypers(self):
        hypers = copy.deepcopy(get_default_hypers(self.architecture))
        hypers["training"]["num_workers"] = 0
        hypers["training"]["batch_size"] = 10
        return hypers


class TestInput(InputTests, PETMTATests):
    pass


class TestOutput(OutputTests, PETMTATests):
    supports_spherical_outputs = False
    supports_spherical_rank2_outputs = False
    supports_spherical_atomic_basis_outputs = False
    is_equivariant_rotations = False
    is_equivariant_reflections = False

    @pytest.fixture
    def n_features(self, model_hypers):
        return model_hypers["d_node"] + model_hypers["d_pet"]

    @pytest.fixture
    def n_last_layer_features(self, model_hypers):
        return 2 * model_hypers["d_head"]


class TestAutograd(AutogradTests, PETMTATests):
    pass


class TestTorchscript(TorchscriptTests, PETMTATests):
    supports_spherical_outputs = False
    # int(cutoff_width=0.5) would be 0, an invalid switch width, so the float
    # hypers turned into integers here are those with integral defaults
    float_hypers = ["cutoff", "attention_temperature"]


class TestExported(ExportedTests, PETMTATests):
    pass


class TestTraining(TrainingTests, PETMTATests):
    supports_atomic_basis = False
    # test_continue evaluates two models on the *same* System objects and calls
    # backward twice; pet_mta reads edge vectors from the neighbour-list values
    # (connected to positions by metatomic, as in every engine), whose small graph
    # is freed by the first backward. The forces of a restarted model are compared
    # on fresh systems in tests/test_metatrain_training.py instead.
    check_gradients = False


class TestCheckpoints(CheckpointTests, PETMTATests):
    @pytest.fixture(autouse=True)
    def _in_tests_folder(self, monkeypatch):
        # the suite looks for reference checkpoints in ./checkpoints/
        monkeypatch.chdir(Path(__file__).parent)

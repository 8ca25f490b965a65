"""Reference predictions of the checkpoints in this folder, each computed with the
pet_mta code that wrote it (``reference_outputs.json``, read by
``test_upgraded_checkpoints_predict_as_before`` in ``test_metatrain_training.py``).

Run with that code first on the path, e.g. for the model v1 checkpoint::

    git worktree add /tmp/pet-v1 caae932
    PYTHONPATH=/tmp/pet-v1:tests python tests/checkpoints/make_reference_outputs.py \\
        reference model-v1_trainer-v1.ckpt.gz caae932

The commits that wrote the checkpoints are those of ``git log -- <file>``:
model-v1_trainer-v1: caae932, model-v2_trainer-v1: afc83dc, model-v3_trainer-v1:
078ddfd, model-v3_trainer-v2: e2836c8, model-v4_trainer-v2: fd8cbb1,
model-v5_trainer-v2: 5187cf3, model-v5_trainer-v3: e9a15dd, model-v5_trainer-v4:
7bd32cf, model-v6_trainer-v4: 20cdd9d and model-v7_trainer-v4: ac678c9 (these six
written by metatrain's conformance suite, one message-passing layer). The
``two_layers/`` checkpoints (model only, randomly perturbed weights, two layers so
that the per-layer parts of the upgrades count) were written by ``create`` with the
code of caae932 (v1), afc83dc (v2), 572e0df (v3) and fb23a6b (v6; ``create`` fills
every hyper-parameter of the writing code's table since then, as ``mtt train``
stores them)::

    PYTHONPATH=/tmp/pet-v1:tests python tests/checkpoints/make_reference_outputs.py \\
        create two_layers/model-v1.ckpt.gz caae932

The structures are stored in the JSON file too, so the test does not depend on how
ASE builds them.
"""

import gzip
import json
import sys
from pathlib import Path

import metatomic.torch  # noqa: F401 (the checkpoints hold metatomic classes)
import torch
from metatrain_helpers import checkpoint_predictions, reference_structures

import pet_mta
from pet_mta.hypers import DEFAULT_MODEL_HYPERS
from pet_mta.metatrain import PETModel

HERE = Path(__file__).parent
OUTPUT = HERE / "reference_outputs.json"


def load(name: str):
    with gzip.open(HERE / name, "rb") as fd:
        return torch.load(fd, weights_only=False)


def create(name: str, commit: str) -> None:
    """A two-layer H/C/N/O model with random weights (perturbed by N(0, 0.2²) so
    that no layer is at its zero initialisation) and a composition baseline."""
    template = load("model-v1_trainer-v1.ckpt.gz")["model_data"]
    # every hyper-parameter of the code that writes it, as `mtt train` stores them
    hypers = {**DEFAULT_MODEL_HYPERS, **template["model_hypers"]}
    hypers.update(d_pet=4, d_head=4, d_node=4, d_feedforward=4, num_gnn_layers=2)
    torch.manual_seed(17)
    model = PETModel(hypers, template["dataset_info"])
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    model.pet.set_baseline("energy", {1: -0.5, 6: -1.5, 7: -2.0, 8: -2.5})
    checkpoint = model.get_checkpoint()
    # a copy, as the trainer stores (the same dict twice would be upgraded twice)
    state = checkpoint["model_state_dict"]
    checkpoint["best_model_state_dict"] = {k: v.clone() for k, v in state.items()}
    checkpoint["pet_mta_commit"] = commit
    (HERE / name).parent.mkdir(exist_ok=True)
    with gzip.open(HERE / name, "wb") as fd:
        torch.save(checkpoint, fd)


def reference(name: str, commit: str) -> None:
    checkpoint = load(name)
    assert checkpoint["model_ckpt_version"] == PETModel.__checkpoint_version__, (
        f"{name} is model version {checkpoint['model_ckpt_version']}, the code in "
        f"{pet_mta.__file__} writes version {PETModel.__checkpoint_version__}"
    )
    model = PETModel.load_checkpoint(checkpoint, context="export")
    data = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    structures = data.setdefault("structures", reference_structures())
    data.setdefault("checkpoints", {})[name] = {
        "commit": commit,
        "model_ckpt_version": checkpoint["model_ckpt_version"],
        "predictions": checkpoint_predictions(model, structures),
    }
    data["checkpoints"] = dict(sorted(data["checkpoints"].items()))
    OUTPUT.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    {"create": create, "reference": reference}[sys.argv[1]](*sys.argv[2:])

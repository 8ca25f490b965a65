"""Exponential moving average of the weights (trainer hyper-parameter
``ema_decay``): the average itself, and that validation, selection, checkpoints
and restarts use it."""

import pytest
from optional_imports import require

require("metatrain.utils.architectures", "train")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from metatrain.utils.io import model_from_checkpoint, trainer_from_checkpoint  # noqa: E402
from metatrain_helpers import (  # noqa: E402
    dataset_and_model,
    emt_frames,
    energy_target,
    trainer_hypers,
)
from metatrain_helpers import train_model as _train  # noqa: E402

from pet_mta.metatrain import PETModel  # noqa: E402
from pet_mta.metatrain.averaging import WeightAverage  # noqa: E402
from pet_mta.metatrain.checkpoints import TRAINER_UPGRADES  # noqa: E402


def test_average_of_a_step_change_follows_the_warmed_up_decay():
    """Weights jump from 0 to 1 and stay there: after t updates the average is
    1 - prod_k d_k with d_k = min(decay, (1 + k) / (10 + k))."""
    layer = torch.nn.Linear(2, 3)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    average = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(1.0)
    remaining = 1.0
    for k in range(40):
        average.update()
        remaining *= min(0.9, (1 + k) / (10 + k))
        with average.applied():
            np.testing.assert_allclose(layer.weight.detach(), 1 - remaining, rtol=1e-6)
    assert remaining < 0.02  # the decay (not the warm-up) ruled the last steps
    # outside the block the live weights are back
    assert torch.all(layer.weight == 1.0) and torch.all(layer.bias == 1.0)


def test_live_weights_come_back_after_an_error():
    layer = torch.nn.Linear(2, 2)
    average = WeightAverage(layer, decay=0.5)
    live = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    live = layer.weight.detach().clone()
    average.update()
    with pytest.raises(RuntimeError, match="inside"):
        with average.applied():
            assert not torch.equal(layer.weight, live)
            raise RuntimeError("inside")
    assert torch.equal(layer.weight, live)


def test_average_of_another_model_is_refused():
    average = WeightAverage(torch.nn.Linear(2, 2), decay=0.5)
    other = WeightAverage(torch.nn.Linear(2, 2, bias=False), decay=0.5)
    with pytest.raises(ValueError, match=r"lacks the parameters \['bias'\]"):
        average.load_state_dict(other.state_dict())


def _setup(tmp_path, n_frames=8):
    torch.manual_seed(1)
    return dataset_and_model(tmp_path, emt_frames(n_frames, seed=5), energy_target)


def _parameters(state: dict, model: PETModel) -> dict:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {name: state[name] for name in names}


def test_selection_and_checkpoints_hold_the_average(tmp_path):
    dataset, model = _setup(tmp_path)
    trainer = _train(model, dataset, tmp_path, num_epochs=4, ema_decay=0.8)
    best = trainer.best_epoch
    saved = torch.load(tmp_path / f"model_{best}.ckpt", weights_only=False)
    averaged = saved["ema_state_dict"]["weights"]
    selected = _parameters(trainer.best_model_state_dict, model)
    assert selected.keys() == averaged.keys()
    for name, value in averaged.items():
        torch.testing.assert_close(selected[name], value, rtol=0, atol=0, msg=name)
    # the optimiser kept stepping the live weights, which differ from the average
    live = _parameters(model.state_dict(), model)
    final = trainer.ema_state_dict["weights"]
    assert trainer.ema_state_dict["steps"] == 4 * 2  # 8 structures, batches of 4
    differences = [(live[n] - final[n]).abs().sum() for n in final]
    assert sum(differences) > 1e-6


def test_restart_continues_the_average_exactly(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dataset, straight = _setup(tmp_path / "a")
    expected = _train(straight, dataset, tmp_path / "a", num_epochs=3, ema_decay=0.8)

    dataset, model = _setup(tmp_path / "b")
    _train(model, dataset, tmp_path / "b", num_epochs=3, ema_decay=0.8)
    checkpoint = torch.load(tmp_path / "b" / "model_1.ckpt", weights_only=False)
    model = model_from_checkpoint(checkpoint, context="restart")
    model = model.restart(model.dataset_info)
    trainer = trainer_from_checkpoint(
        checkpoint=checkpoint,
        hypers=trainer_hypers(num_epochs=3, ema_decay=0.8),
        context="restart",
    )
    _train(model, dataset, tmp_path / "b", trainer=trainer)
    assert trainer.ema_state_dict["steps"] == expected.ema_state_dict["steps"]
    for name, value in expected.ema_state_dict["weights"].items():
        got = trainer.ema_state_dict["weights"][name]
        torch.testing.assert_close(got, value, rtol=0, atol=1e-12, msg=name)


def test_trainer_checkpoints_before_version_4_train_without_average():
    checkpoint = {"train_hypers": {"num_epochs": 3}}
    TRAINER_UPGRADES[2](checkpoint)
    assert checkpoint["ema_state_dict"] is None
    assert checkpoint["train_hypers"]["ema_decay"] is None


@pytest.mark.parametrize("decay", [1.0, -0.1, "0.9", True])
def test_bad_decay_is_refused_before_training(tmp_path, decay):
    dataset, model = _setup(tmp_path, n_frames=4)
    with pytest.raises(ValueError, match="ema_decay"):
        _train(model, dataset, tmp_path, num_epochs=1, ema_decay=decay)
    assert not list(tmp_path.glob("*.ckpt"))

"""Best-model selection: metatrain's rule, logged, with a warning when the chosen
epoch is far worse than the last one on some target."""

import logging

from optional_imports import require

require("metatrain.utils.architectures", "train")

from pet_mta.metatrain.selection import (  # noqa: E402
    error_metrics,
    far_worse,
    report_selection,
)

EARLY = {
    "loss": 3.0,
    "energy MAE (per atom)": 0.010,
    "forces MAE": 0.90,
    "forces RMSE": 1.20,
}
LAST = {
    "loss": 1.0,
    "energy MAE (per atom)": 0.012,
    "forces MAE": 0.40,
    "forces RMSE": 0.55,
}


def test_error_metrics_drop_the_loss():
    assert set(error_metrics(EARLY)) == {
        "energy MAE (per atom)",
        "forces MAE",
        "forces RMSE",
    }


def test_far_worse_names_every_metric_beyond_the_factor():
    worse = far_worse(EARLY, LAST, factor=1.5)
    assert len(worse) == 2
    assert any(w.startswith("validation forces MAE: 0.9 vs 0.4 (2.2x)") for w in worse)
    assert all("energy" not in w for w in worse)  # 0.010 < 1.5 * 0.012
    assert far_worse(LAST, EARLY) == []


def test_report_warns_when_the_chosen_epoch_is_far_worse(caplog):
    with caplog.at_level(logging.INFO):
        warnings = report_selection("mae_prod", 1, 0.009, EARLY, 19, LAST)
    assert len(warnings) == 1
    assert "epoch 1" in warnings[0] and "forces MAE" in warnings[0]
    records = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(records) == 1
    assert any("best model: epoch 1" in r.getMessage() for r in caplog.records)


def test_report_is_quiet_when_the_choice_is_close_to_the_last_epoch(caplog):
    close = {k: 1.2 * v for k, v in LAST.items()}
    with caplog.at_level(logging.INFO):
        assert report_selection("mae_prod", 17, 1.0, close, 19, LAST) == []
        assert report_selection("mae_prod", 19, 1.0, LAST, 19, LAST) == []
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "best model: epoch 17" in caplog.text

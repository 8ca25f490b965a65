"""Best-model selection that says what it chose.

metatrain's rule is kept: the exported model is the epoch with the lowest
``best_model_metric`` on the validation set (``mae_prod``, ``rmse_prod`` or
``loss``). A product of errors can be lowest at an epoch that is far worse than the
last one on one target (an early epoch with good energies and poor forces, say), so
at the end of training :func:`report_selection` logs which epoch was chosen and
why, and warns for every validation error of the chosen epoch that is more than
:data:`FAR_WORSE` times the last epoch's.
"""

import logging
from typing import Dict, List, Optional

FAR_WORSE = 1.5
"""Ratio (chosen epoch / last epoch) of a validation error above which training
ends with a warning."""


def error_metrics(metrics: Dict[str, float]) -> Dict[str, float]:
    """The RMSE and MAE entries of a validation metrics dictionary (no loss)."""
    return {
        name: float(value)
        for name, value in metrics.items()
        if ("RMSE" in name or "MAE" in name) and name != "loss"
    }


def far_worse(
    chosen: Dict[str, float], last: Dict[str, float], factor: float = FAR_WORSE
) -> List[str]:
    """Metrics where ``chosen`` is more than ``factor`` times ``last``.

    :return: one description per such metric, e.g.
        ``"validation forces MAE: 892.7 vs 399.0 (2.2x)"``
    """
    result = []
    for name, value in error_metrics(chosen).items():
        reference = last.get(name)
        if reference is None or not reference > 0:
            continue
        if value > factor * reference:
            result.append(
                f"validation {name}: {value:.4g} vs {reference:.4g} "
                f"({value / reference:.1f}x)"
            )
    return result


def report_selection(
    metric_name: str,
    best_epoch: Optional[int],
    best_metric: Optional[float],
    best_metrics: Optional[Dict[str, float]],
    last_epoch: Optional[int],
    last_metrics: Optional[Dict[str, float]],
    factor: float = FAR_WORSE,
) -> List[str]:
    """Log the chosen epoch and warn when it is far worse than the last one.

    :param metric_name: the ``best_model_metric`` option
    :param best_metrics: validation metrics of the chosen epoch (``None`` for a
        checkpoint written before they were stored)
    :param last_metrics: validation metrics of the last epoch
    :return: the warnings that were logged (empty when none)
    """
    if best_epoch is None:
        return []
    logging.info(
        f"best model: epoch {best_epoch}, the lowest validation '{metric_name}' "
        f"({best_metric:.4g}); the last epoch is {last_epoch}. `mtt export` and "
        "fine-tuning use the best model, `--restart` the last one"
    )
    if best_metrics is None or last_metrics is None or best_epoch == last_epoch:
        return []
    worse = far_worse(best_metrics, last_metrics, factor)
    if worse:
        message = (
            f"the best model (epoch {best_epoch}, by '{metric_name}') is more than "
            f"{factor}x worse than the last epoch ({last_epoch}) on: "
            + "; ".join(worse)
            + ". Read the training log: `best_model_metric: loss` weighs the "
            "targets as the loss does"
        )
        logging.warning(message)
        return [message]
    return []

"""Training loop of pet_mta under metatrain (``mtt train``).

One epoch = one pass over the (rotation-augmented) training set with Adam/AdamW,
warm-up + cosine learning rate and gradient clipping, then a validation pass whose
metrics are logged and select the best model. Forces and stress come from autograd
(``evaluate_model``), so their loss is differentiated twice; one batch's loss and
metrics are computed in :mod:`.batches`. With ``ema_decay``, validation, selection
and export see the moving average of the weights (:mod:`.averaging`).
"""

import copy
import logging
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import numpy as np
import torch
import torch.distributed
from metatrain.utils.abc import TrainerInterface
from metatrain.utils.distributed.distributed_data_parallel import (
    DistributedDataParallel,
)
from metatrain.utils.distributed.slurm import resolve_distributed
from metatrain.utils.io import check_file_extension
from metatrain.utils.logging import ROOT_LOGGER, MetricLogger
from metatrain.utils.loss import LossAggregator
from metatrain.utils.metrics import get_selected_metric

from ..files import atomic_write
from . import checkpoints
from .averaging import WeightAverage, check_decay
from .batches import Metrics, Step, complete_loss_config, loss_scales, reduced, validate
from .data import check_geometries, make_loaders, plain_loader
from .distributed import init_process_group
from .documentation import TrainerHypers
from .finetune import apply_finetune, fit_new_type_baselines, trainable_parameters
from .fitting import fit_baseline, fit_scales, unit_scales
from .model import PETModel
from .offsets import refit_names, refit_offsets, refit_subsets
from .schedule import warmup_cosine
from .selection import error_metrics, report_selection


class Trainer(TrainerInterface[TrainerHypers]):
    """Trains a :class:`~pet_mta.metatrain.model.PETModel`; see the module doc."""

    __checkpoint_version__ = 4

    def __init__(self, hypers: TrainerHypers) -> None:
        super().__init__(hypers)
        self.epoch: Optional[int] = None
        """Last completed epoch (``None`` before the first one)."""
        self.best_epoch: Optional[int] = None
        self.best_metric: Optional[float] = None
        self.best_model_state_dict: Optional[Dict[str, Any]] = None
        self.best_validation: Optional[Dict[str, float]] = None
        """Validation errors of the best epoch (reported at the end of training)."""
        self.last_validation: Optional[Dict[str, float]] = None
        self.optimizer_state_dict: Optional[Dict[str, Any]] = None
        self.scheduler_state_dict: Optional[Dict[str, Any]] = None
        self.ema_state_dict: Optional[Dict[str, Any]] = None
        """Averaged weights (``ema_decay``) after the last completed epoch."""
        self.rng_state: Optional[Dict[str, Any]] = None
        """Random generators after the last completed epoch, so that a restart
        draws the same batches and rotations as an uninterrupted run."""

    # ------------------------------------------------------------------ training
    def train(
        self,
        model: PETModel,
        dtype: torch.dtype,
        devices: List[torch.device],
        train_datasets: list,
        val_datasets: list,
        checkpoint_dir: str,
    ) -> None:
        hypers = self.hypers
        if dtype not in PETModel.__supported_dtypes__:
            raise ValueError(f"pet_mta trains in float32 or float64, not {dtype}")
        decay = check_decay(hypers["ema_decay"])
        distributed = resolve_distributed(hypers.get("distributed"))
        if distributed:
            device, world_size, rank = init_process_group(
                hypers["distributed_port"], devices
            )
            logging.info(f"training on {world_size} processes, dtype {dtype}")
        else:
            device, world_size, rank = devices[0], 1, 0
            logging.info(f"training on {device}, dtype {dtype}")

        if hypers["finetune"]["read_from"] is not None:
            apply_finetune(
                model.pet,
                hypers["finetune"],
                fresh_start=self.optimizer_state_dict is None,
                untrained_heads=model.untrained_targets,
                new_types=model.new_atomic_types,
            )
        model.to(device=device, dtype=dtype)

        check_geometries(train_datasets, "training")
        check_geometries(val_datasets, "validation")
        names = _target_names(train_datasets, model)
        targets = {name: model.dataset_info.targets[name] for name in names}
        self._fit_normalisation(
            model, names, train_datasets, distributed, checkpoint_dir
        )
        scales = loss_scales(model, names)

        train_loader, val_loader, epoch_samplers = make_loaders(
            model,
            model.dataset_info,
            hypers,
            train_datasets,
            val_datasets,
            world_size,
            rank,
        )
        loss_fn = LossAggregator(
            targets=targets, config=complete_loss_config(hypers["loss"], targets)
        )

        parameters = trainable_parameters(model)
        optimizer = make_optimizer(parameters, hypers)
        scheduler = warmup_cosine(
            optimizer,
            hypers["num_epochs"] * len(train_loader),
            hypers["warmup_fraction"],
        )
        if self.optimizer_state_dict is not None and not model.has_new_targets:
            optimizer.load_state_dict(self.optimizer_state_dict)
            if self.scheduler_state_dict is not None:
                scheduler.load_state_dict(self.scheduler_state_dict)

        average = None
        if decay is not None:
            average = WeightAverage(model, decay, self.ema_state_dict)
        network = model
        if distributed:
            network = DistributedDataParallel(model, device_ids=None)
        if self.best_metric is None:
            self.best_metric = float("inf")

        step = Step(
            network, targets, loss_fn, scales, hypers, dtype, device, distributed
        )
        refit, refit_loader = {}, None
        if hypers["refit_baseline"] and hypers["finetune"]["read_from"] is None:
            refit = {
                name: targets[name]
                for name in refit_names(model.pet, targets, hypers["atomic_baseline"])
            }
        if refit:
            # training structures as given (no random rotations: the model is
            # evaluated in their orientation, like the validation set)
            refit_loader = plain_loader(
                model,
                model.dataset_info,
                hypers,
                refit_subsets(train_datasets),
                world_size,
                rank,
            )
        first_epoch = 0 if self.epoch is None else self.epoch + 1
        if self.rng_state is not None:
            set_rng_state(self.rng_state)
        metric_logger = None
        logging.info(f"training epochs {first_epoch} to {hypers['num_epochs'] - 1}")
        for epoch in range(first_epoch, hypers["num_epochs"]):
            start = time.perf_counter()
            for sampler in epoch_samplers:
                sampler.set_epoch(epoch)
            log_now = epoch == first_epoch or epoch % hypers["log_interval"] == 0

            model.train()
            train_metrics = Metrics(hypers)
            train_loss = 0.0
            for batch in train_loader:
                optimizer.zero_grad()
                loss, predictions, batch_targets, extra = step(batch, training=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, hypers["grad_clip_norm"])
                optimizer.step()
                scheduler.step()
                if average is not None:
                    average.update()
                train_loss += reduced(loss, distributed)
                if log_now:
                    train_metrics.update(predictions, batch_targets, extra)

            model.eval()
            # validation, refit and selection see the averaged weights, if any
            with average.applied() if average is not None else nullcontext():
                if refit:
                    self._refit_offsets(
                        model, refit_loader, refit, dtype, device, distributed
                    )
                val_info = validate(step, val_loader, hypers, distributed, device)
                self._select(model, val_info, epoch)

            if log_now:
                train_info = train_metrics.finalize(train_loss, distributed, device)
                if metric_logger is None:
                    metric_logger = MetricLogger(
                        log_obj=ROOT_LOGGER,
                        dataset_info=model.dataset_info,
                        initial_metrics=[train_info, val_info],
                        names=["training", "validation"],
                    )
                metric_logger.log(
                    metrics=[train_info, val_info],
                    epoch=epoch,
                    rank=rank,
                    learning_rate=optimizer.param_groups[0]["lr"],
                )
                logging.info(f"epoch {epoch} took {time.perf_counter() - start:.2f} s")

            self.epoch = epoch
            if average is not None:
                self.ema_state_dict = average.state_dict()
            self.optimizer_state_dict = optimizer.state_dict()
            self.scheduler_state_dict = scheduler.state_dict()
            self.rng_state = get_rng_state()
            if epoch % hypers["checkpoint_interval"] == 0:
                if distributed:
                    torch.distributed.barrier()
                if rank == 0:
                    self.save_checkpoint(
                        model, Path(checkpoint_dir) / f"model_{epoch}.ckpt"
                    )

        self.optimizer_state_dict = optimizer.state_dict()
        self.scheduler_state_dict = scheduler.state_dict()
        model.has_new_targets = False
        if rank == 0:
            report_selection(
                hypers["best_model_metric"],
                self.best_epoch,
                self.best_metric,
                self.best_validation,
                self.epoch,
                self.last_validation,
            )
        if distributed:
            torch.distributed.destroy_process_group()

    def _select(self, model: PETModel, val_info: Dict[str, float], epoch: int):
        """Keep the weights of ``epoch`` if its validation metric is the best."""
        metric = get_selected_metric(val_info, self.hypers["best_model_metric"])
        if metric < self.best_metric:
            self.best_metric = metric
            self.best_epoch = epoch
            self.best_model_state_dict = copy.deepcopy(model.state_dict())
            self.best_validation = error_metrics(val_info)
        self.last_validation = error_metrics(val_info)

    def _refit_offsets(self, model, loader, infos, dtype, device, distributed):
        """Refit the per-species offsets of ``infos`` on the training set
        (:mod:`.offsets`), leaving the random state of the training as it was."""
        state = get_rng_state()
        refit_offsets(
            model,
            loader,
            infos,
            list(self.hypers["per_structure_targets"]),
            dtype,
            device,
            distributed,
        )
        set_rng_state(state)

    def _fit_normalisation(
        self,
        model: PETModel,
        names: List[str],
        train_datasets: list,
        distributed: bool,
        checkpoint_dir: str,
    ) -> None:
        """Fit baseline and scale of the targets whose heads are untrained (all of
        them for a new model; none when resuming or fine-tuning existing targets),
        and the baselines of the trained targets for the atomic types that
        fine-tuning adds."""
        to_fit = [name for name in names if name in model.untrained_targets]
        if model.new_atomic_types:
            trained = [name for name in names if name not in to_fit]
            with torch.no_grad():
                fit_new_type_baselines(
                    model.pet,
                    {name: model.dataset_info.targets[name] for name in trained},
                    model.new_atomic_types,
                    self.hypers["atomic_baseline"],
                    train_datasets,
                )
            model.new_atomic_types = []
        if not to_fit:
            logging.info("keeping the baselines and scales stored in the model")
            return
        info = copy.copy(model.dataset_info)
        info.targets = {name: model.dataset_info.targets[name] for name in to_fit}
        baseline = self.hypers["atomic_baseline"]
        if isinstance(baseline, dict):
            baseline = {k: v for k, v in baseline.items() if k in to_fit}
        with torch.no_grad():
            fit_baseline(
                model.pet,
                info,
                baseline,
                train_datasets,
                self.hypers["batch_size"],
                distributed,
                checkpoint_dir,
            )
            if self.hypers["scale_targets"]:
                fit_scales(
                    model.pet,
                    info,
                    self.hypers["fixed_scaling_weights"],
                    train_datasets,
                )
            else:
                unit_scales(model.pet)
        model.untrained_targets = [
            t for t in model.untrained_targets if t not in to_fit
        ]

    # --------------------------------------------------------------- checkpoints
    def save_checkpoint(self, model: PETModel, path: Union[str, Path]) -> None:
        """Model checkpoint + trainer state (epoch, optimiser, scheduler, best
        model) in one ``.ckpt`` file."""
        checkpoint = model.get_checkpoint()
        checkpoint.update(
            {
                "trainer_ckpt_version": self.__checkpoint_version__,
                "train_hypers": self.hypers,
                "epoch": self.epoch,
                "best_epoch": self.best_epoch,
                "best_metric": self.best_metric,
                "best_model_state_dict": self.best_model_state_dict,
                "best_validation": self.best_validation,
                "last_validation": self.last_validation,
                "optimizer_state_dict": self.optimizer_state_dict,
                "scheduler_state_dict": self.scheduler_state_dict,
                "rng_state": self.rng_state,
                "ema_state_dict": self.ema_state_dict,
            }
        )
        # written whole or not at all: `mtt train --restart auto` takes the newest
        # .ckpt file, which must never be a truncated one
        atomic_write(
            check_file_extension(path, ".ckpt"),
            lambda temporary: torch.save(checkpoint, temporary),
        )

    @classmethod
    def load_checkpoint(
        cls,
        checkpoint: Dict[str, Any],
        hypers: TrainerHypers,
        context: Literal["restart", "finetune"],
    ) -> "Trainer":
        """``restart``: continue at the next epoch with the saved optimiser and
        scheduler; ``finetune``: a fresh trainer (new data, new schedule)."""
        trainer = cls(hypers)
        if context == "restart":
            trainer.epoch = checkpoint["epoch"]
            trainer.best_epoch = checkpoint["best_epoch"]
            trainer.best_metric = checkpoint["best_metric"]
            trainer.best_model_state_dict = checkpoint["best_model_state_dict"]
            trainer.best_validation = checkpoint["best_validation"]
            trainer.last_validation = checkpoint["last_validation"]
            trainer.optimizer_state_dict = checkpoint["optimizer_state_dict"]
            trainer.scheduler_state_dict = checkpoint["scheduler_state_dict"]
            trainer.rng_state = checkpoint["rng_state"]
            trainer.ema_state_dict = checkpoint["ema_state_dict"]
        elif context != "finetune":
            raise ValueError(f"unknown checkpoint context '{context}'")
        return trainer

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: Dict[str, Any]) -> Dict[str, Any]:
        return checkpoints.upgrade(
            checkpoint,
            "trainer",
            cls.__checkpoint_version__,
            checkpoints.TRAINER_UPGRADES,
        )


def make_optimizer(parameters: list, hypers: Dict[str, Any]) -> torch.optim.Optimizer:
    """Adam, or AdamW when ``weight_decay`` is set."""
    if hypers["weight_decay"] is None:
        return torch.optim.Adam(parameters, lr=hypers["learning_rate"])
    return torch.optim.AdamW(
        parameters, lr=hypers["learning_rate"], weight_decay=hypers["weight_decay"]
    )


def get_rng_state() -> Dict[str, Any]:
    """State of the torch, numpy and python random generators."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _target_names(train_datasets: list, model: PETModel) -> List[str]:
    """Targets present in the training data (in the model's order)."""
    present = set()
    for dataset in train_datasets:
        if len(dataset) > 0:
            present.update(dataset[0]._asdict().keys())
    names = [name for name in model.dataset_info.targets if name in present]
    if not names:
        raise ValueError("the training set contains none of the model's targets")
    return names

"""Data loaders for training and validation, built from metatrain's utilities.

Training batches are rotated by a random O(3) operation (targets transformed
consistently), then get the model's neighbour lists; validation batches are not
rotated. Targets stay in physical units: baseline and scale live in the model.
Spherical targets in an atomic basis first get batch-local ``system`` samples (see
:func:`batch_local_systems`).
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

import metatensor.torch as mts
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatrain.utils.augmentation import O3Augmenter
from metatrain.utils.data import (
    CollateFn,
    CombinedDataLoader,
    DatasetInfo,
    build_train_dataloaders,
    build_val_dataloaders,
    get_num_workers,
    validate_num_workers,
)
from metatrain.utils.neighbor_lists import (
    get_requested_neighbor_lists,
    get_system_with_neighbor_lists_transform,
)
from torch.utils.data import DistributedSampler

from ..neighbors import check_finite_geometry


def check_geometries(datasets: list, kind: str) -> None:
    """Refuse NaN or infinite positions or cells in ``datasets`` before any
    neighbour list is built (vesin would kill the process with SIGFPE).

    :param kind: how the error names the data set, e.g. ``"training"``
    :raises ValueError: naming the data set and the structure's index in it
    """
    for d, dataset in enumerate(datasets):
        which = f"{kind} set" if len(datasets) == 1 else f"{kind} set {d}"
        for i in range(len(dataset)):
            system = dataset[i]._asdict()["system"]
            check_finite_geometry(
                system.positions, system.cell, f"structure {i} of the {which}"
            )


SYSTEM_INDEX = "mtt::aux::system_index"


def batch_local_systems(dataset_info: DatasetInfo) -> Callable:
    """A collate step numbering the ``system`` samples of atomic-basis targets
    ``0 .. n_systems - 1`` in batch order, samples sorted (the order of the model's
    blocks: the loss compares values, not labels).

    Their blocks hold the atoms of one type each, so a batch may have no block
    naming every structure, and metatrain's augmenter then reads the ``system``
    labels as batch positions (they are data-set indices). The data-set index of
    every structure of the batch comes from ``mtt::aux::system_index``, which only
    metatrain's ``DiskDataset`` provides.
    """
    names = [n for n, info in dataset_info.targets.items() if info.is_atomic_basis]

    def renumber(systems, targets, extra):
        for name in names:
            if name not in targets:
                continue
            if SYSTEM_INDEX not in extra:
                raise ValueError(
                    f"target '{name}' is in an atomic basis: read it from a disk "
                    f"data set (metatrain's DiskDataset gives '{SYSTEM_INDEX}')"
                )
            ids = extra[SYSTEM_INDEX].block().values[:, 0].to(torch.int64)
            blocks = []
            for block in targets[name].blocks():
                samples = block.samples.values.clone()
                at = block.samples.names.index("system")
                column = samples[:, at].to(torch.int64)
                samples[:, at] = (
                    (column[:, None] == ids[None, :]).to(torch.int32).argmax(1)
                )
                renumbered = TensorBlock(
                    block.values,
                    Labels(block.samples.names, samples),
                    block.components,
                    block.properties,
                )
                blocks.append(mts.sort_block(renumbered, axes="samples"))
            targets[name] = TensorMap(targets[name].keys, blocks)
        return systems, targets, extra

    return renumber


def _samplers(
    datasets: list, world_size: int, rank: int, train: bool
) -> List[Optional[DistributedSampler]]:
    if world_size == 1:
        return [None] * len(datasets)
    return [
        DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=train, drop_last=train
        )
        for dataset in datasets
    ]


def _neighbor_lists(model: torch.nn.Module) -> Callable:
    """The collate step attaching ``model``'s neighbour lists."""
    return get_system_with_neighbor_lists_transform(get_requested_neighbor_lists(model))


def _num_workers(hypers: Dict[str, Any]) -> int:
    num_workers = hypers["num_workers"]
    if num_workers is None:
        return get_num_workers()
    validate_num_workers(num_workers)
    return num_workers


def plain_loader(
    model: torch.nn.Module,
    dataset_info: DatasetInfo,
    hypers: Dict[str, Any],
    datasets: list,
    world_size: int = 1,
    rank: int = 0,
) -> CombinedDataLoader:
    """Batches of ``datasets`` in order and in their own orientation (validation,
    and the offset refit of :mod:`.offsets`)."""
    collate = CollateFn(
        target_keys=list(dataset_info.targets.keys()),
        callables=[batch_local_systems(dataset_info), _neighbor_lists(model)],
    )
    loaders = build_val_dataloaders(
        val_datasets=datasets,
        val_distributed_samplers=_samplers(datasets, world_size, rank, False),
        collate_fn_val=collate,
        batch_size=hypers["batch_size"],
        max_atoms_per_batch=hypers["max_atoms_per_batch"],
        num_workers=_num_workers(hypers),
    )
    return CombinedDataLoader(loaders, shuffle=False)


def make_loaders(
    model: torch.nn.Module,
    dataset_info: DatasetInfo,
    hypers: Dict[str, Any],
    train_datasets: list,
    val_datasets: list,
    world_size: int = 1,
    rank: int = 0,
) -> Tuple[CombinedDataLoader, CombinedDataLoader, List[Any]]:
    """:return: training loader, validation loader (:func:`plain_loader`), and the
    samplers whose epoch must be set at the start of every epoch."""
    augmenter = O3Augmenter(
        target_info_dict=dataset_info.targets,
        extra_data_info_dict=dataset_info.extra_data,
    )
    collate_train = CollateFn(
        target_keys=list(dataset_info.targets.keys()),
        callables=[
            batch_local_systems(dataset_info),
            augmenter.apply_random_augmentations,
            _neighbor_lists(model),
        ],
    )
    train_loaders, epoch_samplers = build_train_dataloaders(
        train_datasets=train_datasets,
        train_distributed_samplers=_samplers(train_datasets, world_size, rank, True),
        collate_fn_train=collate_train,
        batch_size=hypers["batch_size"],
        max_atoms_per_batch=hypers["max_atoms_per_batch"],
        min_atoms_per_batch=hypers["min_atoms_per_batch"],
        num_workers=_num_workers(hypers),
    )
    return (
        CombinedDataLoader(train_loaders, shuffle=True),
        plain_loader(model, dataset_info, hypers, val_datasets, world_size, rank),
        epoch_samplers,
    )

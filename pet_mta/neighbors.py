"""Systems and neighbour lists for our own evaluations, computed with vesin.

:func:`requested_neighbor_lists` is the one place that collects the lists a model
(and its sub-modules) requests; :func:`compute_neighbor_lists` the one place that
computes them.
"""

from typing import List, Optional, Sequence

import ase
import torch
from metatensor.torch import Labels, TensorBlock
from metatomic.torch import NeighborListOptions, System
from vesin.metatomic import NeighborList


def check_finite_geometry(
    positions: torch.Tensor, cell: torch.Tensor, name: str
) -> None:
    """Refuse NaN or infinite positions or cell before a neighbour list is built.

    vesin (like most neighbour-list codes) crashes the whole process (SIGFPE) on
    such input instead of raising, so every path that builds a list checks first.
    TorchScript-compatible (the model runs the same check on its inputs).

    :param positions: ``[n_atoms, 3]`` atomic positions (length unit)
    :param cell: ``[3, 3]`` cell vectors (length unit; zeros when not periodic)
    :param name: how the error names the structure, e.g. ``"system 3"``
    :raises ValueError: naming the structure and what is not finite
    """
    if not bool(torch.all(torch.isfinite(positions))):
        raise ValueError(name + " has NaN or infinite atomic positions")
    if not bool(torch.all(torch.isfinite(cell))):
        raise ValueError(name + " has a NaN or infinite cell")


def check_finite_atoms(atoms: ase.Atoms, name: str) -> None:
    """:func:`check_finite_geometry` for an ASE structure."""
    check_finite_geometry(
        torch.from_numpy(atoms.positions), torch.from_numpy(atoms.cell.array), name
    )


def systems_from_ase(
    frames: Sequence[ase.Atoms],
    model: torch.nn.Module,
    dtype: Optional[torch.dtype] = None,
    device: str = "cpu",
    positions_requires_grad: bool = False,
    cell_requires_grad: bool = False,
    length_unit: str = "angstrom",
) -> List[System]:
    """Convert ASE structures to metatomic systems with ``model``'s neighbour lists.

    Neighbour lists come from vesin: correct for triclinic cells, mixed periodicity
    and cells smaller than the cutoff (periodic images are enumerated).

    :param frames: structures (positions in ``length_unit``)
    :param model: a :class:`pet_mta.PET` or any module with
        ``requested_neighbor_lists()``
    :param dtype: dtype of positions and cell (default: the model's)
    """
    if dtype is None:
        dtype = next(model.parameters()).dtype
    systems = [
        system_from_ase(
            atoms, dtype, device, positions_requires_grad, cell_requires_grad
        )
        for atoms in frames
    ]
    return add_neighbor_lists(systems, model, length_unit)


def system_from_ase(
    atoms: ase.Atoms,
    dtype: torch.dtype,
    device: str = "cpu",
    positions_requires_grad: bool = False,
    cell_requires_grad: bool = False,
) -> System:
    """One ASE structure as a metatomic ``System`` (no neighbour lists yet).

    The cell vectors along non-periodic directions are zeroed, as metatomic wants.
    """
    cell = torch.tensor(atoms.cell.array * atoms.pbc[:, None], dtype=dtype)
    positions = torch.tensor(atoms.positions, dtype=dtype)
    return System(
        types=torch.tensor(atoms.numbers, dtype=torch.int32, device=device),
        positions=positions.to(device).requires_grad_(positions_requires_grad),
        cell=cell.to(device).requires_grad_(cell_requires_grad),
        pbc=torch.tensor(atoms.pbc, device=device),
    )


def merge_neighbor_lists(
    *groups: Sequence[NeighborListOptions],
) -> List[NeighborListOptions]:
    """Every neighbour list of ``groups``, each once (metatomic's ``==``), in order."""
    merged: List[NeighborListOptions] = []
    for group in groups:
        for options in group:
            if not any(options == known for known in merged):
                merged.append(options)
    return merged


def requested_neighbor_lists(model: torch.nn.Module) -> List[NeighborListOptions]:
    """Every neighbour list that ``model`` or one of its sub-modules requests
    (``requested_neighbor_lists()``), each once: a wrapper and its backbone may ask
    for the same list."""
    return merge_neighbor_lists(
        *[
            module.requested_neighbor_lists()
            for module in model.modules()
            if hasattr(module, "requested_neighbor_lists")
        ]
    )


def compute_neighbor_lists(
    systems: List[System],
    requests: Sequence[NeighborListOptions],
    length_unit: str = "angstrom",
) -> List[System]:
    """Compute the neighbour lists ``requests`` with vesin and store them in
    ``systems`` (positions in ``length_unit``).

    :raises ValueError: for a system with NaN or infinite positions or cell (named
        by its index in ``systems``)
    """
    for index, system in enumerate(systems):
        check_finite_geometry(system.positions, system.cell, f"system {index}")
    for options in requests:
        calculator = NeighborList(options, length_unit=length_unit)
        for system in systems:
            if len(system) == 0:
                # vesin needs at least one point; an empty system has no pairs
                neighbors = empty_neighbor_list(system)
            else:
                neighbors = calculator.compute(system)
            system.add_neighbor_list(options, neighbors)
    return systems


def add_neighbor_lists(
    systems: List[System], model: torch.nn.Module, length_unit: str = "angstrom"
) -> List[System]:
    """Compute and store every neighbour list ``model`` requests
    (:func:`requested_neighbor_lists`, :func:`compute_neighbor_lists`)."""
    return compute_neighbor_lists(systems, requested_neighbor_lists(model), length_unit)


def neighbor_list_block(pairs: torch.Tensor, vectors: torch.Tensor) -> TensorBlock:
    """A neighbour list in metatomic's layout (TorchScript-compatible).

    :param pairs: ``[P, 5]`` first atom, second atom and cell shift (a, b, c) of
        every pair (any integer dtype)
    :param vectors: ``[P, 3]`` vector from the first atom to the second (with the
        shift), in the positions' dtype
    """
    device = vectors.device
    samples = Labels(
        ["first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"],
        pairs.to(torch.int32),
    )
    xyz = Labels(["xyz"], torch.arange(3, dtype=torch.int32, device=device)[:, None])
    distance = Labels(
        ["distance"], torch.zeros((1, 1), dtype=torch.int32, device=device)
    )
    return TensorBlock(vectors.unsqueeze(-1), samples, [xyz], distance)


def empty_neighbor_list(system: System) -> TensorBlock:
    """A neighbour list with no pair, in metatomic's layout."""
    device = system.positions.device
    return neighbor_list_block(
        torch.zeros((0, 5), dtype=torch.int32, device=device),
        torch.zeros((0, 3), dtype=system.positions.dtype, device=device),
    )

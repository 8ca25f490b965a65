"""Which atoms a call reports (``selected_atoms``), and per-system cell volumes."""

from typing import List, Optional, Tuple

import torch
from metatensor.torch import Labels
from metatomic.torch import System


def select_atoms(
    systems: List[System],
    system_index: torch.Tensor,
    selected_atoms: Optional[Labels],
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global index, system and in-system index of every reported atom.

    :param system_index: ``[N]`` system of every atom of the batch
    :param selected_atoms: ``["system", "atom"]`` labels, or ``None`` for all atoms
    :return: ``(chosen [M], chosen_system [M], chosen_atom [M])``
    :raises ValueError: for a selected atom that does not exist
    """
    device = system_index.device
    n_systems = len(systems)
    system_sizes = torch.zeros(n_systems, dtype=torch.long, device=device)
    for s, system in enumerate(systems):
        system_sizes[s] = len(system)
    first_atom = torch.cumsum(system_sizes, 0) - system_sizes
    if selected_atoms is None:
        chosen = torch.arange(system_index.shape[0], device=device)
        return chosen, system_index, chosen - first_atom[system_index]

    sel = selected_atoms.values.to(device).to(torch.long)
    chosen_system = sel[:, 0]
    chosen_atom = sel[:, 1]
    if sel.shape[0] > 0:
        out_of_range = (chosen_system < 0) | (chosen_system >= n_systems)
        if not bool(torch.any(out_of_range)):
            out_of_range = (chosen_atom < 0) | (
                chosen_atom >= system_sizes[chosen_system]
            )
        if bool(torch.any(out_of_range)):
            bad: List[int] = sel[torch.nonzero(out_of_range)[0, 0]].tolist()
            raise ValueError(
                "selected atom "
                + str(bad)
                + " (system, atom) does not exist in the systems"
            )
    return first_atom[chosen_system] + chosen_atom, chosen_system, chosen_atom


def cell_volumes(systems: List[System], like: torch.Tensor) -> torch.Tensor:
    """``[n_systems]`` cell volumes (0 for systems without a 3D cell)."""
    volumes = torch.zeros(len(systems), dtype=like.dtype, device=like.device)
    for s, system in enumerate(systems):
        volumes[s] = torch.abs(torch.det(system.cell))
    return volumes


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float64``-style name of a floating-point dtype (``str`` of a dtype is
    only its enum number inside TorchScript)."""
    if dtype == torch.float64:
        return "torch.float64"
    if dtype == torch.float32:
        return "torch.float32"
    if dtype == torch.float16:
        return "torch.float16"
    if dtype == torch.bfloat16:
        return "torch.bfloat16"
    return str(dtype)


def check_dtype(systems: List[System], dtype: torch.dtype):
    """:raises ValueError: for a system whose positions are not of ``dtype``"""
    for s, system in enumerate(systems):
        if system.positions.dtype != dtype:
            raise ValueError(
                "system "
                + str(s)
                + " has dtype "
                + dtype_name(system.positions.dtype)
                + " but the model uses "
                + dtype_name(dtype)
            )

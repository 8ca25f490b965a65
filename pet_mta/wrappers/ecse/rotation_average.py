"""Default ECSE auxiliary: a model's energies averaged over a grid of rotations.

Where an environment has no well-spread pair of neighbours (an atom with a single
neighbour in reach, a collinear or isolated one), ECSE falls back smoothly to an
auxiliary prediction. Without a dedicated invariant model, :class:`RotationAverage`
gives the backbone's own scalar outputs averaged over a fixed quadrature of
rotations: a Lebedev rule on the sphere times uniformly spaced in-plane rotations
(the grid of metatomic's ``SymmetrizedModel``), which integrates exactly every
rotational dependence up to the grid's angular order. The result is close to
invariant, not exactly: the remainder is the backbone's dependence on orientation
beyond that order.
"""

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System

from .systems import rotated_copy


def rotation_grid(order: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotations ``[G, 3, 3]`` (float64) and weights ``[G]`` summing to one.

    Lebedev rule of the smallest available degree ``>= order`` (scipy) for the
    rotation axis, ``order + 1`` in-plane angles: exact for functions of the
    rotation up to angular order ``order``. ``order=7``: 208 rotations.
    """
    from scipy.integrate import lebedev_rule
    from scipy.spatial.transform import Rotation

    if order < 1:
        raise ValueError(f"the rotation grid order must be positive, got {order}")
    degree = order
    while True:
        try:
            nodes, sphere_weights = lebedev_rule(degree)
            break
        except (ValueError, NotImplementedError):  # scipy: degree not tabulated
            degree += 1
            if degree > 131:
                raise ValueError(f"no Lebedev rule of degree >= {order}") from None
    x, y, z = nodes
    alpha = np.repeat(np.arctan2(y, x), order + 1)
    beta = np.repeat(np.arccos(np.clip(z, -1.0, 1.0)), order + 1)
    gamma = np.tile(np.linspace(0.0, 2 * np.pi, order + 1, endpoint=False), len(x))
    weights = np.repeat(sphere_weights / sphere_weights.sum() / (order + 1), order + 1)
    rotations = (
        Rotation.from_euler("z", alpha[:, None])
        * Rotation.from_euler("y", beta[:, None])
        * Rotation.from_euler("z", gamma[:, None])
    ).as_matrix()
    return torch.from_numpy(rotations), torch.from_numpy(weights)


class RotationAverage(torch.nn.Module):
    """``sum_g w_g y(R_g x)`` for the scalar outputs of ``backbone``.

    :param backbone: bare ``ModelInterface`` module
    :param backbone_lists: the neighbour lists it reads
    :param order: angular order of the grid (see :func:`rotation_grid`)
    :param batch_size: rotated copies per backbone call
    """

    backbone_lists: List[NeighborListOptions]

    def __init__(
        self,
        backbone: torch.nn.Module,
        backbone_lists: List[NeighborListOptions],
        order: int,
        batch_size: int,
    ):
        super().__init__()
        self.backbone = backbone
        self.backbone_lists = backbone_lists
        rotations, weights = rotation_grid(order)
        self.register_buffer("rotations", rotations)
        self.register_buffer("weights", weights)
        self.batch_size = int(batch_size)

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """Averaged single-block scalar ``outputs`` (per system or per atom)."""
        values: Dict[str, List[torch.Tensor]] = {}
        samples: Dict[str, List[torch.Tensor]] = {}
        templates: Dict[str, TensorMap] = {}
        for name in outputs.keys():
            new_values: List[torch.Tensor] = []
            new_samples: List[torch.Tensor] = []
            values[name] = new_values
            samples[name] = new_samples
        for s, system in enumerate(systems):
            dtype = system.positions.dtype
            device = system.positions.device
            rotations = self.rotations.to(dtype=dtype, device=device)
            weights = self.weights.to(dtype=dtype, device=device)
            if selected_atoms is None:
                atoms = torch.arange(len(system), device=device)
            else:
                mine = selected_atoms.values[:, 0].to(device) == s
                atoms = selected_atoms.values[mine][:, 1].to(torch.long).to(device)
            # row of every atom of this system in its per-atom result
            row_of_atom = torch.full(
                (len(system),), -1, dtype=torch.long, device=device
            )
            row_of_atom[atoms] = torch.arange(atoms.shape[0], device=device)
            sums: Dict[str, torch.Tensor] = {}
            for start in range(0, rotations.shape[0], self.batch_size):
                stop = min(start + self.batch_size, rotations.shape[0])
                copies: List[System] = []
                for g in range(start, stop):
                    copies.append(
                        rotated_copy(system, rotations[g], self.backbone_lists)
                    )
                copy_index = torch.arange(stop - start, device=device)
                selection = Labels(
                    ["system", "atom"],
                    torch.stack(
                        [
                            copy_index.repeat_interleave(atoms.shape[0]),
                            atoms.repeat(stop - start),
                        ],
                        dim=1,
                    ).to(torch.int32),
                )
                predictions = self.backbone(copies, outputs, selection)
                for name, output in outputs.items():
                    block = predictions[name].block()
                    if name not in templates:
                        templates[name] = predictions[name]
                    copy = block.samples.column("system").to(torch.long)
                    weighted = block.values * weights[start + copy].reshape(-1, 1)
                    if output.sample_kind == "atom":
                        atom = block.samples.column("atom").to(torch.long)
                        rows = row_of_atom[atom]
                        n_rows = atoms.shape[0]
                    else:
                        rows = torch.zeros_like(copy)
                        n_rows = 1
                    zeros = torch.zeros(
                        (n_rows, block.values.shape[1]), dtype=dtype, device=device
                    )
                    if name in sums:
                        sums[name] = sums[name].index_add(0, rows, weighted)
                    else:
                        sums[name] = zeros.index_add(0, rows, weighted)
            for name, output in outputs.items():
                if name in sums:
                    values[name].append(sums[name])
                    if output.sample_kind == "atom":
                        samples[name].append(
                            torch.stack([torch.full_like(atoms, s), atoms], dim=1)
                        )
                    else:
                        samples[name].append(
                            torch.full((1, 1), s, dtype=torch.long, device=device)
                        )
        results: Dict[str, TensorMap] = {}
        for name, output in outputs.items():
            if name not in templates:
                continue
            template = templates[name].block()
            names = ["system", "atom"] if output.sample_kind == "atom" else ["system"]
            block = TensorBlock(
                torch.cat(values[name]),
                Labels(names, torch.cat(samples[name]).to(torch.int32)),
                template.components,
                template.properties,
            )
            results[name] = TensorMap(templates[name].keys, [block])
        return results

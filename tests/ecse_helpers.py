"""Shared helpers of the ECSE tests: evaluation with forces, rotations, toy models."""

from typing import Dict, List, Optional

import ase
import numpy as np
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    ModelCapabilities,
    ModelOutput,
    NeighborListOptions,
    System,
)

from pet_mta.neighbors import add_neighbor_lists


def make_systems(atoms: ase.Atoms, model, dtype=torch.float64) -> List[System]:
    """One system with gradients on positions and cell, and ``model``'s lists.

    (``metatomic.torch.systems_to_torch`` ignores ``cell_requires_grad``.)
    """
    system = System(
        types=torch.tensor(atoms.numbers, dtype=torch.int32),
        positions=torch.tensor(atoms.positions, dtype=dtype, requires_grad=True),
        cell=torch.tensor(
            atoms.cell.array * atoms.pbc[:, None], dtype=dtype, requires_grad=True
        ),
        pbc=torch.tensor(atoms.pbc),
    )
    return add_neighbor_lists([system], model)


def strained_systems(atoms: ase.Atoms, model, dtype=torch.float64):
    """``[system]``, positions and strain as the engines build them (metatomic-ase,
    LAMMPS): positions and cell both multiplied by ``1 + strain``, so that
    ``-dE/dstrain`` is the full virial ``sum_i r_i (x) F_i - h^T dE/dh``."""
    positions = torch.tensor(atoms.positions, dtype=dtype, requires_grad=True)
    strain = torch.zeros((3, 3), dtype=dtype, requires_grad=True)
    deformation = torch.eye(3, dtype=dtype) + strain
    cell = torch.tensor(atoms.cell.array * atoms.pbc[:, None], dtype=dtype)
    system = System(
        types=torch.tensor(atoms.numbers, dtype=torch.int32),
        positions=positions @ deformation,
        cell=cell @ deformation,
        pbc=torch.tensor(atoms.pbc),
    )
    return add_neighbor_lists([system], model), positions, strain


def evaluate(model, atoms: ase.Atoms, outputs=("energy",), dtype=torch.float64):
    """Energy (and other per-system outputs), forces and, if periodic, the virial
    ``-dE/dstrain`` (eV) and, if fully periodic, the stress ``dE/dstrain / V``
    (eV/Å^3, ASE's sign)."""
    systems, positions, strain = strained_systems(atoms, model, dtype)
    requests = {name: ModelOutput(sample_kind="system") for name in outputs}
    result = model(systems, requests, None)
    energy = result["energy"].block().values.sum()
    periodic = bool(atoms.pbc.any())
    inputs = [positions, strain] if periodic else [positions]
    grads = torch.autograd.grad(energy, inputs)
    values = {name: result[name].block().values.detach().numpy()[0] for name in outputs}
    values["forces"] = -grads[0].numpy()
    if periodic:
        values["virial"] = -grads[1].numpy()
    if atoms.pbc.all():
        values["stress"] = grads[1].numpy() / atoms.get_volume()
    return values


def random_rotation(seed: int, inversion: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if inversion else q


def rotated(atoms: ase.Atoms, rotation: np.ndarray) -> ase.Atoms:
    new = atoms.copy()
    new.positions = atoms.positions @ rotation.T
    if atoms.pbc.any():
        new.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return new


class ToyBackbone(torch.nn.Module):
    """A foreign, deliberately non-equivariant model: pair terms that depend on the
    direction of every bond, an energy and a rank-2 Cartesian output."""

    def __init__(self, cutoff: float = 3.0):
        super().__init__()
        self.options = NeighborListOptions(cutoff=cutoff, full_list=True, strict=True)
        self.direction = torch.nn.Parameter(
            torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
        )
        self.cutoff = cutoff

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.options]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        energies: List[torch.Tensor] = []
        atom_energies: List[torch.Tensor] = []
        tensors: List[torch.Tensor] = []
        sample_rows: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.options)
            i = nl.samples.column("first_atom").to(torch.long)
            v = nl.values.reshape(-1, 3)
            r = torch.linalg.vector_norm(v, dim=1)
            f = (1.0 - r / self.cutoff) ** 3
            term = f * (1.0 + torch.tanh(v @ self.direction))
            per_atom = torch.zeros(len(system), dtype=v.dtype).index_add(0, i, term)
            amplitude = f * (1.0 + torch.tanh(v @ self.direction))
            outer = amplitude[:, None, None] * v[:, :, None] * v[:, None, :]
            per_atom_t = torch.zeros((len(system), 3, 3), dtype=v.dtype).index_add(
                0, i, outer
            )
            atoms = torch.arange(len(system))
            if selected_atoms is not None:
                sel = selected_atoms.values
                atoms = sel[sel[:, 0] == s][:, 1].to(torch.long)
            atom_energies.append(per_atom[atoms])
            energies.append(per_atom[atoms].sum().reshape(1))
            tensors.append(per_atom_t[atoms])
            sample_rows.append(
                torch.stack([torch.full_like(atoms, s), atoms], dim=1).to(torch.int32)
            )
        result: Dict[str, TensorMap] = {}
        keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32))
        per_atom_samples = Labels(["system", "atom"], torch.cat(sample_rows))
        system_samples = Labels(
            ["system"], torch.arange(len(systems), dtype=torch.int32).reshape(-1, 1)
        )
        for name, output in outputs.items():
            atom = output.sample_kind == "atom"
            if name == "energy":
                values = torch.cat(atom_energies if atom else energies).reshape(-1, 1)
                components: List[Labels] = []
                properties = Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32))
            else:
                values = torch.cat(tensors)
                if not atom:
                    values = torch.stack([t.sum(0) for t in tensors])
                values = values.reshape(-1, 3, 3, 1)
                components = [
                    Labels([n], torch.arange(3, dtype=torch.int32).reshape(-1, 1))
                    for n in ("xyz_1", "xyz_2")
                ]
                properties = Labels(["p"], torch.zeros((1, 1), dtype=torch.int32))
            samples = per_atom_samples if atom else system_samples
            result[name] = TensorMap(
                keys, [TensorBlock(values, samples, components, properties)]
            )
        return result

    def capabilities(self) -> ModelCapabilities:
        return ModelCapabilities(
            outputs={
                "energy": ModelOutput(quantity="energy", unit="eV"),
                "toy::tensor": ModelOutput(),
            },
            atomic_types=[1, 6, 7, 8, 13, 29],
            interaction_range=self.cutoff,
            length_unit="angstrom",
            supported_devices=["cpu"],
            dtype="float64",
        )


class PairPotential(torch.nn.Module):
    """A foreign, exactly invariant Morse pair potential on a *half* neighbour list.

    ``E = sum_pairs eps (e^(-2a(r - r0)) - 2 e^(-a(r - r0))) (1 - r/rc)^2`` (eV,
    angstrom). ``per_atom=False`` declares and gives the total energy only (each
    pair split between its atoms otherwise); ``interaction_range`` defaults to the
    cutoff.
    """

    def __init__(
        self,
        cutoff: float = 4.0,
        per_atom: bool = False,
        interaction_range: Optional[float] = None,
        atomic_types: Optional[List[int]] = None,
    ):
        super().__init__()
        self.options = NeighborListOptions(cutoff=cutoff, full_list=False, strict=True)
        self.cutoff = cutoff
        self.per_atom = per_atom
        self.interaction_range = (
            cutoff if interaction_range is None else interaction_range
        )
        self.atomic_types = [28] if atomic_types is None else list(atomic_types)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.options]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        atom_energies: List[torch.Tensor] = []
        totals: List[torch.Tensor] = []
        sample_rows: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            nl = system.get_neighbor_list(self.options)
            r = torch.linalg.vector_norm(nl.values.reshape(-1, 3), dim=1)
            x = torch.exp(-1.5 * (r - 2.5))
            pair = 0.05 * (x * x - 2.0 * x) * (1.0 - r / self.cutoff) ** 2
            per_atom = torch.zeros(len(system), dtype=r.dtype)
            first = nl.samples.column("first_atom").to(torch.long)
            second = nl.samples.column("second_atom").to(torch.long)
            per_atom = per_atom.index_add(0, first, 0.5 * pair)
            per_atom = per_atom.index_add(0, second, 0.5 * pair)
            atoms = torch.arange(len(system))
            if selected_atoms is not None:
                selected = selected_atoms.values
                atoms = selected[selected[:, 0] == s][:, 1].to(torch.long)
            atom_energies.append(per_atom[atoms])
            totals.append(per_atom[atoms].sum().reshape(1))
            sample_rows.append(
                torch.stack([torch.full_like(atoms, s), atoms], dim=1).to(torch.int32)
            )
        keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32))
        properties = Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32))
        result: Dict[str, TensorMap] = {}
        for name, output in outputs.items():
            if self.per_atom and output.sample_kind == "atom":
                values = torch.cat(atom_energies).reshape(-1, 1)
                samples = Labels(["system", "atom"], torch.cat(sample_rows))
            else:
                values = torch.cat(totals).reshape(-1, 1)
                samples = Labels(
                    ["system"],
                    torch.arange(len(systems), dtype=torch.int32).reshape(-1, 1),
                )
            result[name] = TensorMap(
                keys, [TensorBlock(values, samples, [], properties)]
            )
        return result

    def capabilities(self) -> ModelCapabilities:
        return ModelCapabilities(
            outputs={
                "energy": ModelOutput(
                    quantity="energy",
                    unit="eV",
                    sample_kind="atom" if self.per_atom else "system",
                )
            },
            atomic_types=self.atomic_types,
            interaction_range=self.interaction_range,
            length_unit="angstrom",
            supported_devices=["cpu"],
            dtype="float64",
        )


def save_pair_potential(path: str, **options) -> str:
    """Export a :class:`PairPotential` with metatomic's ``AtomisticModel``."""
    from metatomic.torch import AtomisticModel, ModelMetadata

    module = PairPotential(**options).eval()
    model = AtomisticModel(module, ModelMetadata(name="pair"), module.capabilities())
    model.save(path)
    return path

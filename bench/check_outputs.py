"""Check that a code change leaves PET's outputs unchanged (float64, fixed seeds).

Builds a few seeded float64 models (default hypers and variants covering every
branch: residual featurizer, PostLN, LayerNorm, SiLU, distance-only embedding),
evaluates energies (per system and per atom), forces, stress, features and
last-layer features on a periodic alloy box, a molecule, an isolated atom and a
batch, and saves or compares them::

    python bench/check_outputs.py --save /tmp/pet_reference.pt     # before a change
    python bench/check_outputs.py --compare /tmp/pet_reference.pt  # after it

The comparison fails (exit code 1) if any value differs by more than ``--rtol``
(default 1e-11, float64 round-off of reordered sums).
"""

import argparse
import sys
from typing import Dict, List

import ase
import ase.build
import numpy as np
import torch
from metatensor.torch import Labels
from metatomic.torch import ModelOutput, System

from pet_mta import PET
from pet_mta.neighbors import add_neighbor_lists

VARIANTS: Dict[str, Dict] = {
    "default": {},
    "residual": {"featurizer_type": "residual", "num_gnn_layers": 3},
    "postln": {
        "transformer_type": "PostLN",
        "normalization": "LayerNorm",
        "activation": "SiLU",
        "num_heads": 4,
        "num_attention_layers": 1,
    },
    "distance": {"edge_embedding": "distance", "cutoff_function": "Cosine"},
}


def frames() -> List[ase.Atoms]:
    rng = np.random.default_rng(7)
    box = ase.build.bulk("Cu", "fcc", a=3.8, cubic=True) * (2, 2, 2)
    box.numbers = rng.choice([13, 28, 29, 46, 47, 78, 79], len(box))
    box.positions += rng.normal(0.0, 0.1, box.positions.shape)
    tri = ase.build.bulk("Ni", "fcc", a=3.6) * (2, 1, 1)  # small triclinic cell
    tri.positions += rng.normal(0.0, 0.05, tri.positions.shape)
    molecule = ase.Atoms("AuCu3", positions=rng.uniform(0, 4.0, (4, 3)))
    lonely = ase.Atoms("Pt", positions=[[0.0, 0.0, 0.0]])
    far = ase.Atoms("AlNi", positions=[[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]])
    return [box, tri, molecule, lonely, far]


def make_systems(model: PET):
    """Systems whose positions and strains require gradients."""
    systems: List[System] = []
    positions: List[torch.Tensor] = []
    strains: List[torch.Tensor] = []
    for atoms in frames():
        pos = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
        strain = torch.eye(3, dtype=torch.float64, requires_grad=True)
        cell = torch.tensor(atoms.cell[:], dtype=torch.float64)
        system = System(
            types=torch.tensor(atoms.numbers, dtype=torch.int32),
            positions=pos @ strain,
            cell=cell @ strain,
            pbc=torch.tensor(atoms.pbc),
        )
        systems.append(system)
        positions.append(pos)
        strains.append(strain)
    return add_neighbor_lists(systems, model), positions, strains


def evaluate(name: str, hypers: Dict) -> Dict[str, torch.Tensor]:
    torch.manual_seed(1234)
    model = PET(
        atomic_types=[13, 28, 29, 46, 47, 78, 79],
        d_pet=32,
        d_node=48,
        d_head=24,
        d_feedforward=40,
        **hypers,
    )
    model = model.to(torch.float64)
    # non-trivial buffers
    model.set_baseline("energy", {29: -3.5, 79: 1.25})
    model.set_scale("energy", 0.7)
    results: Dict[str, torch.Tensor] = {}
    for scripted in (False, True):
        tag = name + ("/script" if scripted else "")
        m = torch.jit.script(model) if scripted else model
        systems, positions, strains = make_systems(model)
        out = m(
            systems,
            {
                "energy": ModelOutput(sample_kind="system"),
                "feature": ModelOutput(sample_kind="atom"),
                "mtt::aux::energy_last_layer_features": ModelOutput(sample_kind="atom"),
            },
            None,
        )
        energy = out["energy"].block().values
        grads = torch.autograd.grad(energy.sum(), positions + strains)
        results[tag + "/forces"] = -torch.cat(grads[: len(systems)])
        results[tag + "/strain_grad"] = torch.stack(grads[len(systems) :])
        results[tag + "/energy"] = energy.detach()
        results[tag + "/features"] = out["feature"].block().values.detach()
        results[tag + "/llf"] = (
            out["mtt::aux::energy_last_layer_features"].block().values.detach()
        )
        # per-atom energies of a subset
        selected = Labels(
            ["system", "atom"], torch.tensor([[0, 3], [0, 1], [2, 2], [3, 0]])
        )
        out = m(systems, {"energy": ModelOutput(sample_kind="atom")}, selected)
        results[tag + "/atomic_energy"] = out["energy"].block().values.detach()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", help="write the reference outputs here")
    group.add_argument("--compare", help="compare with the reference saved here")
    parser.add_argument("--rtol", type=float, default=1e-11)
    args = parser.parse_args()
    torch.set_num_threads(1)

    results: Dict[str, torch.Tensor] = {}
    for name, hypers in VARIANTS.items():
        results.update(evaluate(name, hypers))
    if args.save:
        torch.save(results, args.save)
        print(f"saved {len(results)} arrays to {args.save}")
        return 0

    reference = torch.load(args.compare)
    failed = False
    for key, ref in reference.items():
        new = results[key]
        scale = float(ref.abs().max()) if ref.numel() > 0 else 1.0
        error = float((new - ref).abs().max()) if ref.numel() > 0 else 0.0
        ok = new.shape == ref.shape and error <= args.rtol * max(scale, 1e-30)
        failed |= not ok
        print(
            f"{'ok ' if ok else 'BAD'} {key:40s} max|diff| {error:.2e} "
            f"(max|ref| {scale:.2e})"
        )
    print("FAILED" if failed else "all outputs unchanged")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

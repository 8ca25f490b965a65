"""ECSE local mode with a switch of the backbone on and off: cost ratio to the plain
backbone, in one process, the two settings alternating.

A switch is a boolean attribute of the backbone that changes no result, only the
work done (``read_tokens_only``: the last transformer block of every GNN layer but
the last computes only the tokens that are read). The backbone is the random-weight
PET of ``bench/ecse.py``, the structures those of ``bench/ecse_scaling.py``; energy
+ forces, 1 thread; the ECSE calls alternate off/on (then on/off, ...), three plain
calls after every pair; every time is the minimum over its calls, wall-clock and
CPU time of the process (the steadier one on a machine shared with other jobs).
Prints both ratios and how far the energies and forces of the two settings differ.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_switch.py alloy 108 --repeats 3
    python bench/ecse_switch.py fcc 108 --rule default --dtype float32
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from metatomic.torch import ModelOutput

from pet_mta import Symmetrized
from pet_mta.neighbors import systems_from_ase

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ecse_scaling import MARGIN, structure  # noqa: E402
from ecse_systems import bench_model  # noqa: E402


def energy_forces(model, atoms, dtype) -> Tuple[float, float, float, torch.Tensor]:
    """Wall and CPU time (s), energy (eV) and forces ``[N, 3]`` of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    systems = systems_from_ase(
        [atoms], model, dtype=dtype, positions_requires_grad=True
    )
    request = {"energy": ModelOutput(sample_kind="system")}
    energy = model(systems, request, None)["energy"].block().values.sum()
    (grad,) = torch.autograd.grad(energy, systems[0].positions)
    return (
        time.perf_counter() - start,
        time.process_time() - cpu,
        float(energy.detach()),
        -grad,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("structure", choices=["fcc", "alloy", "water"])
    parser.add_argument("atoms", type=int, help="32, 108, 256, 500 or 1000")
    parser.add_argument("--switch", default="read_tokens_only")
    parser.add_argument("--repeats", type=int, default=2, help="ECSE calls per side")
    parser.add_argument("--rule", choices=["margin", "default"], default="margin")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    pet = bench_model().to(dtype)
    if not isinstance(getattr(pet, args.switch, None), bool):
        raise ValueError(f"--switch: '{args.switch}' is not a boolean of the PET")
    atoms = structure(args.structure, args.atoms)
    options = {"spread_margin": MARGIN} if args.rule == "margin" else {}
    model = Symmetrized(pet, **options)
    energy_forces(pet, atoms, dtype)  # warm-up
    plain: List[Tuple[float, float]] = []
    ecse: Dict[bool, List[Tuple[float, float]]] = {False: [], True: []}
    last: Dict[bool, Tuple[float, torch.Tensor]] = {}
    for k in range(args.repeats):
        for value in (False, True) if k % 2 == 0 else (True, False):
            setattr(pet, args.switch, value)
            wall, cpu, energy, forces = energy_forces(model, atoms, dtype)
            ecse[value].append((wall, cpu))
            last[value] = (energy, forces)
            print(f"{args.switch}={value}: {wall:.2f} s wall, {cpu:.2f} s CPU")
        plain += [energy_forces(pet, atoms, dtype)[:2] for _ in range(3)]
    plain_wall, plain_cpu = (min(t[i] for t in plain) for i in (0, 1))
    for value in (False, True):
        wall, cpu = (min(t[i] for t in ecse[value]) for i in (0, 1))
        print(
            f"{args.switch}={value}: ratio {wall / plain_wall:.0f}x wall, "
            f"{cpu / plain_cpu:.0f}x CPU (plain {plain_cpu:.3f} s CPU)"
        )
    de = abs(last[True][0] - last[False][0])
    df = float((last[True][1] - last[False][1]).abs().max())
    print(f"on - off: energy {de:.1e} eV, forces {df:.1e} eV/A")


if __name__ == "__main__":
    main()

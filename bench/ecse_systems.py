"""What ``bench/ecse.py`` benchmarks: its structures and its random-weight backbone.

The backbone (a small float64 PET, fixed seed) and the structures (CH4, a 192-atom
water box, rattled fcc Cu/Ni cells of 32 to 1000 atoms) are shared by the other
ECSE benchmarks (``ecse_grid.py``, ``ecse_scaling.py``, ...).
"""

from typing import Dict, List

import ase
import ase.build
import numpy as np
import torch

from pet_mta import PET

BACKBONE = dict(
    cutoff=4.0,
    d_pet=32,
    d_head=32,
    d_node=32,
    d_feedforward=32,
    num_heads=2,
    num_gnn_layers=2,
)
ALLOY_REPEATS = {32: (2, 2, 2), 108: (3, 3, 3), 256: (4, 4, 4), 500: (5, 5, 5)}
ALLOY_REPEATS[1000] = (5, 5, 10)
# quadrature degree of the finer Lebedev grid (compared on small structures)
FINE_GRID = 11


def alloy(n: int) -> ase.Atoms:
    """Rattled fcc Cu/Ni cell of ``n`` atoms (every third atom Ni)."""
    cell = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(ALLOY_REPEATS[n])
    cell.numbers[::3] = 28
    cell.rattle(0.05, seed=0)
    return cell


def water_box() -> ase.Atoms:
    """64 randomly oriented water molecules on a grid, 12.4 Å box (192 atoms)."""
    water = ase.build.molecule("H2O")
    box = ase.Atoms(cell=[12.4, 12.4, 12.4], pbc=True)
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3), -1).reshape(-1, 3)
    for point in grid:
        molecule = water.copy()
        molecule.rotate(rng.uniform(0, 360), rng.normal(size=3))
        molecule.translate((point + 0.5) * 3.1)
        box += molecule
    return box


def structures(names: List[str]) -> Dict[str, ase.Atoms]:
    """The structures called ``names`` (``CH4``, ``water 192``, ``fcc alloy N``)."""
    makers = {"CH4": lambda: ase.build.molecule("CH4"), "water 192": water_box}
    for n in ALLOY_REPEATS:
        makers[f"fcc alloy {n}"] = lambda n=n: alloy(n)
    unknown = set(names) - set(makers)
    if unknown:
        raise SystemExit(f"unknown structures {sorted(unknown)}; know {list(makers)}")
    return {name: makers[name]() for name in names}


def bench_model() -> PET:
    """The random-weight float64 PET of the ECSE benchmarks (seed 0)."""
    torch.manual_seed(0)
    return PET(atomic_types=[1, 6, 8, 28, 29], **BACKBONE).double().eval()


def parameters(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())

"""Generate the small example dataset ``emt_alloys.xyz`` (ASE's EMT, no downloads).

Random fcc Cu/Ni/Au alloys: 2x2x2 conventional cells (32 atoms), random lattice
strain (+-4 %) and rattles (0.03-0.15 Angstrom), labelled with ASE's EMT calculator:
``energy`` (eV), ``forces`` (eV/Angstrom) and ``stress`` (eV/Angstrom^3, ASE
convention).

    python examples/data/make_emt_alloys.py            # writes emt_alloys.xyz
"""

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

METALS = ("Cu", "Ni", "Au")
LATTICE = {"Cu": 3.61, "Ni": 3.52, "Au": 4.08}


def random_alloy(rng: np.random.Generator) -> "ase.Atoms":
    """One strained, rattled fcc alloy of 2 or 3 of ``METALS``, labelled with EMT."""
    n_species = rng.integers(2, 4)
    species = rng.choice(METALS, size=n_species, replace=False)
    fractions = rng.dirichlet(np.ones(n_species))
    atoms = bulk("Cu", "fcc", a=1.0, cubic=True).repeat((2, 2, 2))
    symbols = rng.choice(species, size=len(atoms), p=fractions)
    atoms.set_chemical_symbols(symbols)
    a = float(np.mean([LATTICE[s] for s in symbols]))
    strain = np.eye(3) + rng.uniform(-0.04, 0.04, size=(3, 3))
    atoms.set_cell(a * np.asarray(atoms.cell) @ strain, scale_atoms=True)
    atoms.rattle(stdev=rng.uniform(0.03, 0.15), seed=int(rng.integers(1 << 31)))
    atoms.calc = EMT()
    results = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(voigt=False),
    }
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=150, help="number of structures")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "-o", default=str(Path(__file__).with_name("emt_alloys.xyz")), help="output"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    frames = [random_alloy(rng) for _ in range(args.n)]
    ase.io.write(args.o, frames)
    print(f"wrote {len(frames)} structures to {args.o}")


if __name__ == "__main__":
    main()

"""``pet-mta md MODEL.pt STRUCTURE``: short NVE run in ASE, prints the energy drift."""

import argparse

from .arguments import (
    add_command,
    add_model_on_structures,
    non_negative_float,
    positive_float,
    positive_int,
)


def add_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "md",
        run,
        help="run a short NVE simulation with an exported model and report the drift",
        description=__doc__,
    )
    add_model_on_structures(parser, "structure", "any structure file ASE can read")
    parser.add_argument("--index", type=int, default=0, help="frame of the file")
    parser.add_argument(
        "--steps", type=positive_int, default=200, help="velocity-Verlet steps"
    )
    parser.add_argument(
        "--timestep", type=positive_float, default=1.0, help="time step (fs)"
    )
    parser.add_argument(
        "--temperature",
        type=non_negative_float,
        default=300.0,
        help="temperature of the initial Maxwell-Boltzmann velocities (K)",
    )
    parser.add_argument(
        "--max-drift",
        type=non_negative_float,
        default=None,
        help="exit with status 1 if the drift exceeds this many meV/atom",
    )


def run(args: argparse.Namespace) -> int:
    from ..md import run_nve
    from .inputs import ase_calculator, read_structures

    atoms = read_structures(args.structure, args.index)[0]
    calculator = ase_calculator(args.model, args.device)
    print(
        f"NVE: {len(atoms)} atoms, {args.steps} steps of {args.timestep} fs, "
        f"initial T {args.temperature} K"
    )
    try:
        result = run_nve(
            atoms,
            calculator,
            steps=args.steps,
            timestep_fs=args.timestep,
            temperature_K=args.temperature,
        )
    except ValueError as error:  # NaN geometry, unknown species, a blow-up
        raise ValueError(f"'{args.structure}' frame {args.index}: {error}") from error
    drift = 1000 * result.drift_per_atom
    print(
        f"energy drift: {drift:.4f} meV/atom (max |E_tot(t) - E_tot(0)|), "
        f"{result.relative_drift:.2e} of the potential-energy fluctuation; "
        f"{1000 * result.seconds_per_step:.1f} ms/step"
    )
    if args.max_drift is not None and drift > args.max_drift:
        print(f"drift above the allowed {args.max_drift} meV/atom")
        return 1
    return 0

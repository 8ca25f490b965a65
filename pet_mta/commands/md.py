"""``pet-mta md MODEL.pt STRUCTURE``: short NVE run in ASE, prints the energy drift."""

import argparse

from .arguments import input_file, non_negative_float, positive_float, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "md",
        help="run a short NVE simulation with an exported model and report the drift",
        description=__doc__,
    )
    parser.add_argument("model", type=input_file, help="exported model (.pt)")
    parser.add_argument(
        "structure", type=input_file, help="any structure file ASE can read"
    )
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
        "--device", default=None, help="torch device (default: the model's first)"
    )
    parser.add_argument(
        "--max-drift",
        type=non_negative_float,
        default=None,
        help="exit with status 1 if the drift exceeds this many meV/atom",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metatomic_ase import MetatomicCalculator

    from ..md import run_nve
    from ..wrappers.loading import load_file
    from .inputs import read_structures

    atoms = read_structures(args.structure, args.index)[0]
    calculator = MetatomicCalculator(load_file(args.model), device=args.device)
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

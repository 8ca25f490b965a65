"""``pet-mta md MODEL.pt STRUCTURE``: short NVE run in ASE, prints the energy drift."""

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "md",
        help="run a short NVE simulation with an exported model and report the drift",
        description=__doc__,
    )
    parser.add_argument("model", help="exported model (.pt)")
    parser.add_argument("structure", help="any structure file ASE can read")
    parser.add_argument("--index", default="0", help="frame of the file (default 0)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--max-drift",
        type=float,
        default=None,
        help="exit with status 1 if the drift exceeds this many meV/atom",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import ase.io
    from metatomic_ase import MetatomicCalculator

    from ..md import run_nve

    atoms = ase.io.read(args.structure, index=args.index)
    calculator = MetatomicCalculator(args.model, device=args.device)
    print(
        f"NVE: {len(atoms)} atoms, {args.steps} steps of {args.timestep} fs, "
        f"initial T {args.temperature} K"
    )
    result = run_nve(
        atoms,
        calculator,
        steps=args.steps,
        timestep_fs=args.timestep,
        temperature_K=args.temperature,
    )
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

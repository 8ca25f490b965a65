"""``pet-mta errors MODEL.pt DATA.xyz``: MAE and RMSE of an exported model on data."""

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "errors",
        help="energy/forces/stress errors of an exported model on labelled data",
        description=__doc__,
    )
    parser.add_argument("model", help="exported model (.pt)")
    parser.add_argument("data", help="labelled structures (energy, forces, stress)")
    parser.add_argument("--index", default=":", help="frames to use (default all)")
    parser.add_argument("--device", default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import ase.io
    from metatomic_ase import MetatomicCalculator

    from ..metrics import prediction_errors

    frames = ase.io.read(args.data, index=args.index)
    calculator = MetatomicCalculator(args.model, device=args.device)
    errors = prediction_errors(frames, calculator)
    print(f"{len(frames)} structures from {args.data}")
    for name, (mae, rmse, unit) in errors.items():
        print(f"  {name:<16s} MAE {mae:10.3f}   RMSE {rmse:10.3f}   {unit}")
    return 0

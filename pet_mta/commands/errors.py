"""``pet-mta errors MODEL.pt DATA.xyz``: MAE and RMSE of an exported model on data."""

import argparse

from .arguments import add_command, add_model_on_structures, frame_selection


def add_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "errors",
        run,
        help="energy/forces/stress errors of an exported model on labelled data",
        description=__doc__,
    )
    add_model_on_structures(
        parser, "data", "labelled structures (energy, forces, stress)"
    )
    parser.add_argument(
        "--index",
        type=frame_selection,
        default=":",
        help="frames to use, in ASE's syntax (':' is all, '0:10', '-1')",
    )


def run(args: argparse.Namespace) -> int:
    from ..metrics import prediction_errors
    from .inputs import ase_calculator, read_structures

    frames = read_structures(args.data, args.index)
    calculator = ase_calculator(args.model, args.device)
    try:
        errors = prediction_errors(frames, calculator)
    except ValueError as error:  # no labels, NaN geometry: name the file
        selection = "" if args.index == ":" else f" (--index {args.index})"
        raise ValueError(f"'{args.data}'{selection}: {error}") from error
    print(f"{len(frames)} structures from {args.data}")
    for name, (mae, rmse, unit) in errors.items():
        print(f"  {name:<16s} MAE {mae:10.3f}   RMSE {rmse:10.3f}   {unit}")
    return 0

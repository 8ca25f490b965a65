"""``pet-mta ensemble A.pt B.pt ... -o OUT.pt``: several exported models as one."""

import argparse

from .arguments import add_command, add_extensions, add_output, input_file


def add_parser(subparsers) -> None:
    parser = add_command(
        subparsers,
        "ensemble",
        run,
        help="combine exported models into one ensemble model with uncertainties",
        description=(
            "Wrap N exported metatomic models with the same outputs into one model "
            "predicting their mean, energy_ensemble (every member) and "
            "energy_uncertainty (standard deviation over members)."
        ),
    )
    parser.add_argument(
        "models", nargs="+", type=input_file, help="exported models (.pt), at least two"
    )
    add_output(parser)
    parser.add_argument(
        "--no-stack",
        action="store_true",
        help="evaluate PET members one after another even when their weights "
        "could be stacked into one batched pass",
    )
    add_extensions(parser)


def run(args: argparse.Namespace) -> int:
    from ..wrappers.ensemble import Ensemble
    from ..wrappers.loading import load_file
    from .inputs import save_model

    members = [load_file(path, args.extensions) for path in args.models]
    ensemble = Ensemble(members, stack=not args.no_stack)
    save_model(ensemble.export(), args.output)
    outputs = ", ".join(ensemble.capabilities().outputs)
    how = (
        "one batched pass (stacked weights)"
        if ensemble.is_stacked
        else "one member after another"
    )
    print(f"saved the ensemble of {len(members)} models to {args.output}")
    print(f"outputs: {outputs}; members are evaluated in {how}")
    return 0

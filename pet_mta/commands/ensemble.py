"""``pet-mta ensemble A.pt B.pt ... -o OUT.pt``: several exported models as one."""

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="combine exported models into one ensemble model with uncertainties",
        description=(
            "Wrap N exported metatomic models with the same outputs into one model "
            "predicting their mean, energy_ensemble (every member) and "
            "energy_uncertainty (standard deviation over members)."
        ),
    )
    parser.add_argument("models", nargs="+", help="exported models (.pt), at least two")
    parser.add_argument("-o", "--output", required=True, help="file to write (.pt)")
    parser.add_argument(
        "--no-stack",
        action="store_true",
        help="evaluate PET members one after another even when their weights "
        "could be stacked into one batched pass",
    )
    parser.add_argument(
        "--extensions",
        default=None,
        help="directory of the TorchScript extensions the models need",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metatomic.torch import load_atomistic_model

    from ..wrappers.ensemble import Ensemble

    if len(args.models) < 2:
        print("an ensemble needs at least two models")
        return 1
    members = [load_atomistic_model(path, args.extensions) for path in args.models]
    ensemble = Ensemble(members, stack=not args.no_stack)
    ensemble.export().save(args.output)
    outputs = ", ".join(ensemble.capabilities().outputs)
    how = (
        "one batched pass (stacked weights)"
        if ensemble.is_stacked
        else "one member after another"
    )
    print(f"ensemble of {len(members)} models written to {args.output}: {outputs}")
    print(f"members are evaluated in {how}")
    return 0

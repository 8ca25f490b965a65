"""ECSE benchmark: cost, frames, equivariance error, accuracy of a trained model.

Part ``cost`` (a small random-weight float64 PET, energy + forces):

- time of one energy+forces evaluation of the plain backbone, of ECSE in local and
  whole mode and of metatomic's Lebedev-grid ``SymmetrizedModel`` (default grid),
  and the ratios to the plain backbone, on CH4, a 192-atom water box and fcc
  alloy cells of 32 to 1000 atoms (the scaling series);
- ECSE frames: local mode per atom (mean, max), whole mode per structure;
- equivariance error: relative std of the total energy over random rotations
  (proper rotations; ECSE without ``inversion`` is exact for SO(3)).

Whole mode (and any model) is skipped where its estimated cost (frames x plain time)
exceeds ``--max-seconds``; the estimated frame count is reported instead. The number
of rotations per model and structure is ``--rotations``, capped so that the
rotations take at most about ``--rotation-seconds`` (at least 3); the count used is
reported. Times are medians over the rotated evaluations.

Part ``accuracy`` (``--trained MODEL.pt --test TEST.xyz``): an exported model and
its local-mode ECSE wrapper, float32, evaluated on the first ``--n-test``
structures; energy MAE (meV/atom) and force MAE (meV/Å) against the references in
the file, and the spread over rotations of one structure.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse.py --parts cost accuracy \\
        --trained model.pt --test test.xyz
    python bench/ecse.py --report-only     # rewrite ecse.md/.png from ecse.json

Results go to ``docs/src/bench/ecse.{json,md,png}`` (``--out``); parts that are
not run keep their previous results in the JSON file.
"""

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict

import torch
from ecse_part_accuracy import accuracy_part
from ecse_part_cost import cost_part
from ecse_plot import write_plots
from ecse_report import write_report
from ecse_systems import ALLOY_REPEATS
from provenance import machine, source_commit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "src" / "bench"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["cost"])
    parser.add_argument(
        "--structures",
        nargs="+",
        default=["CH4", "water 192"] + [f"fcc alloy {n}" for n in ALLOY_REPEATS],
    )
    parser.add_argument("--rotations", type=int, default=100)
    parser.add_argument("--min-rotations", type=int, default=2)
    parser.add_argument("--rotation-seconds", type=float, default=30.0)
    parser.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="atoms per ECSE local-mode call (0: one call, as a user makes it; its "
        "default low_memory bounds the memory)",
    )
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument(
        "--max-whole-atoms",
        type=int,
        default=10000,
        help="whole mode and the fine Lebedev grid are not run above this number "
        "of rotated copies x atoms (memory: every copy's graph is kept for forces)",
    )
    parser.add_argument("--trained", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument(
        "--trained-description",
        default="an exported pet_mta model",
        help="for the report",
    )
    parser.add_argument("--accuracy-rotations", type=int, default=10)
    parser.add_argument(
        "--modes", nargs="+", default=["local"], help="ECSE modes (accuracy part)"
    )
    parser.add_argument(
        "--ecse-options",
        default="{}",
        help="JSON dict of Symmetrized frame settings (accuracy part)",
    )
    parser.add_argument(
        "--accuracy-key",
        default="accuracy",
        help="name of this accuracy run in ecse.json (several can be reported)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", help="a remark on the cost part, for the report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.out / "ecse.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if not args.report_only:
        meta = {
            "command": shlex.join(["python", "bench/ecse.py", *sys.argv[1:]]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "commit": source_commit(),
        }
        args.out.mkdir(parents=True, exist_ok=True)

        def save(part: str, result: Dict[str, Any]) -> None:
            results[part] = dict(result, meta=meta)
            path.write_text(json.dumps(results, indent=1))

        if "accuracy" in args.parts and (args.trained is None or args.test is None):
            raise SystemExit("the accuracy part needs --trained and --test")
        if "cost" in args.parts:
            cost_part(args, lambda result: save("cost", result))
        if "accuracy" in args.parts:
            save(args.accuracy_key, accuracy_part(args))
    if args.note and "cost" in results:
        results["cost"]["note"] = args.note
        path.write_text(json.dumps(results, indent=1))
    write_report(results, args.out)
    write_plots(results, args.out)


if __name__ == "__main__":
    main()

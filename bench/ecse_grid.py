"""ECSE against metatomic's Lebedev-grid average at matched accuracy.

The same random-weight float64 PET as ``bench/ecse.py``, on a molecule (CH4) and a
small periodic cell (the 32-atom rattled Cu/Ni alloy of ``bench/ecse.py``), energy
+ forces, 1 thread. For every quadrature degree ``L`` of metatomic's
``SymmetrizedModel(pet, max_angular_momentum_target=0,
max_angular_momentum_grid=L)`` and for ECSE (``Symmetrized(pet)``, its defaults,
and the opt-in ``spread_margin`` rule on the periodic cell):

- equivariance error over ``--rotations`` random proper rotations of the structure:
  the standard deviation of the total energy relative to its mean, and the RMS
  deviation of the back-rotated forces from their mean over the rotations,
  relative to the RMS force;
- cost: the CPU time of one energy + forces evaluation (minimum over the rotated
  evaluations) over that of the plain model, measured just before (minimum of
  three calls), in the same process.

``SymmetrizedModel`` averages over O(3): every grid rotation is evaluated as a
proper and as an improper copy, and with forces it keeps the autograd graph of
every copy (memory grows with the grid). The grid average is therefore evaluated
here copy batch by copy batch (``grid_average``: the same rotations, weights and
copies, ``--batch`` copies per backbone call as ``SymmetrizedModel``'s
``batch_size``), each batch differentiated at once; on the grids small enough for
``SymmetrizedModel`` itself (``--check-copies``), its energy, forces and time are
compared with ``grid_average``'s and reported.

Degrees go up until the error reaches the float64 floor, or until the next one
would take more than ``--max-seconds`` for its rotated evaluations.

Usage::

    OMP_NUM_THREADS=1 python bench/ecse_grid.py
    python bench/ecse_grid.py --report-only

Results go to ``docs/src/bench/ecse_grid.{json,md,png}``.
"""

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import ase
import ase.build
import torch

from pet_mta.files import atomic_write

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ecse_grid_average import DTYPE  # noqa: E402
from ecse_grid_measure import structure_rows  # noqa: E402
from ecse_grid_plot import write_plot  # noqa: E402
from ecse_grid_report import write_report  # noqa: E402
from ecse_measure import energy_forces  # noqa: E402
from ecse_systems import alloy, bench_model  # noqa: E402
from provenance import machine, source_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "src" / "bench"
ORDERS = (1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 29, 35, 41, 47, 53)
"""Quadrature degrees tried (``max_angular_momentum_grid``), in this order."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", nargs="+", default=["CH4", "alloy 32"])
    parser.add_argument("--rotations", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=240.0,
        help="CPU seconds: no grid degree whose rotated evaluations would take longer",
    )
    parser.add_argument(
        "--orders",
        type=int,
        nargs="+",
        default=list(ORDERS),
        help="grid degrees (max_angular_momentum_grid) to try, in this order",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the results in the JSON file and measure only the degrees of "
        "--orders that a structure lacks",
    )
    parser.add_argument(
        "--check-copies",
        type=int,
        default=2000,
        help="compare with SymmetrizedModel itself up to this many copies x atoms",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    path = args.out / "ecse_grid.json"
    if args.report_only:
        results = json.loads(path.read_text())
    else:
        torch.set_num_threads(1)
        makers = {
            "CH4": lambda: ase.build.molecule("CH4"),
            "alloy 32": lambda: alloy(32),
        }
        pet = bench_model()
        energy_forces(pet, makers["CH4"](), DTYPE)  # warm-up
        command = shlex.join(["python", "bench/ecse_grid.py", *sys.argv[1:]])
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if args.append:
            results = json.loads(path.read_text())
            if results["commit"] != source_commit():
                raise SystemExit(
                    "--append: the results were measured at commit "
                    f"{results['commit']}, not {source_commit()}"
                )
            results["command"] += f"`, then `{command}"
            results["date"] += f", then {date}"
        else:
            results = {
                "command": command,
                "date": date,
                "commit": source_commit(),
                "machine": machine(),
                "batch": args.batch,
                "rows": [],
            }
        if args.note:
            results["note"] = args.note
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.structures:
            rows = [row for row in results["rows"] if row["structure"] == name]
            previous = rows[0] if rows else None
            row = structure_rows(pet, name, makers[name](), args, previous)
            if previous is None:
                results["rows"].append(row)
            text = json.dumps(results, indent=1)
            atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    write_report(results, args.out)
    write_plot(results, args.out)


if __name__ == "__main__":
    main()

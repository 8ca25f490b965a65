"""Accuracy benchmark: pet_mta vs metatrain's own ``pet``, same data, same hypers.

Both architectures are trained with ``mtt train`` from the *same* options (only
``architecture.name`` differs: the hyper-parameter names are shared), on the same
training subsets of each data set of ``../shared/data`` with the same seed, and
evaluated with ``mtt eval`` on the same held-out structures. Data sets (see
``accuracy_sets.py``): ``hea`` (energy, forces, stress), ``ch4`` and ``water``
(energy, forces), ``water-dipole`` and ``ch4-dipole`` (the dipole vector alone).
Reported for every training set size of the learning curve: energy MAE (meV/atom),
force MAE (meV/Å), dipole MAE (me·Å), time per epoch, parameters, and the epoch
metatrain picked as the best model next to the last one, with the test errors
of both.

    python bench/accuracy.py --sizes 16 32 64 --epochs 2 --out /tmp/acc  # quick look
    python bench/accuracy.py --steps 400 --jobs 2               # short budget
    python bench/accuracy.py --epochs 100 --jobs 2 --reuse      # converged budget
    python bench/accuracy.py --datasets water --arch-model pet_mta:d_pet=128
    python bench/accuracy.py --datasets ch4 --reuse --symmetrize  # plain vs ECSE
    python bench/accuracy.py --datasets hea --sizes 1000 --epochs 100 \
        --checkpoint-interval 2 --reuse          # hours: rerun to continue if stopped

With ``--steps`` every training set size gets about the same number of optimiser
steps (epochs = steps x batch size / structures), so the learning curve compares
data, not compute. ``--model KEY=VALUE`` changes a hyper-parameter of both
architectures, ``--arch-model ARCH:KEY=VALUE`` of one only (to compare at matched
parameter count). With ``--jobs 2`` two trainings run side by side, one thread
each (``OMP_NUM_THREADS=1``), so both see the same machine load.

Results are merged into ``--out/accuracy.json`` (one record per data set,
architecture, training set size, budget and overrides: later runs replace earlier
ones with the same key, others accumulate), and the report is rewritten from all of
them: ``accuracy.md``, ``accuracy.png`` (learning curves) and ``accuracy_cost.png``
(error against training time) when matplotlib is installed. ``--report-only``
rewrites the report alone. ``--symmetrize`` also evaluates every pet_mta model
wrapped by ``pet-mta symmetrize`` (options in ``--symmetrize-options``): plain and
symmetrized errors side by side. With ``--checkpoint-interval N`` every training
saves a checkpoint every N epochs, and ``--reuse`` continues a training that was
stopped (same options, no exported model yet) from its newest checkpoint
(``mtt train --restart``; for pet_mta the result is the same as without the
stop), and its log joins the logs of all parts. Not a test: it takes hours at
full size on a laptop CPU; the numbers depend on the machine (the report says
which).
"""

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml
from accuracy_report import KEY, SETUP, merge, write_reports
from accuracy_sets import (
    DATASETS,
    DEFAULT_DATASETS,
    DIPOLE,
    MODEL,
    NO_CHECKPOINTS,
    DataSet,
    Metric,
    dipole_mae,
    eval_options,
    options,
    write_splits,
)
from provenance import cpu_name

from pet_mta.commands.arguments import positive_int

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "src" / "bench"
_LOAD = threading.Lock()


# --- command line ------------------------------------------------------------------


def assignments(items: List[str]) -> Dict[str, object]:
    """``KEY=VALUE`` strings as a dict, values read as YAML (``32`` is an int)."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"expected KEY=VALUE, got '{item}'")
        result[key] = yaml.safe_load(value)
    return result


def arch_assignments(items: List[str]) -> Dict[str, Dict[str, object]]:
    """``ARCH:KEY=VALUE`` strings as ``{arch: {key: value}}``."""
    result: Dict[str, Dict[str, object]] = {}
    for item in items:
        architecture, sep, assignment = item.partition(":")
        if not sep:
            raise SystemExit(f"expected ARCH:KEY=VALUE, got '{item}'")
        result.setdefault(architecture, {}).update(assignments([assignment]))
    return result


def canonical(values: dict) -> str:
    """A dict as ``a=1,b=2`` (sorted keys): the overrides part of a result key."""
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


def budget_label(args) -> str:
    return f"steps={args.steps}" if args.steps is not None else f"epochs={args.epochs}"


def epochs_for(n_train: int, args) -> int:
    """``--epochs``, or the epochs giving about ``--steps`` optimiser steps."""
    if args.steps is None:
        return args.epochs
    return max(1, round(args.steps * args.batch_size / n_train))


# --- logs --------------------------------------------------------------------------

EPOCH_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]\[INFO\] - Epoch:\s*(\d+) \|(.*)$", re.M
)
MAE_FIELD = re.compile(
    r"^(.+?) MAE(?: \(per atom\))?:\s+([-+.\deE]+|nan)(?:\s+(\S+))?$"
)
RESTART = "Restarting training from"  # metatrain's log line when it continues
BEST_EPOCH = re.compile(r"(?:best model: epoch|Using best model from epoch) (\d+)")


def mae_fields(text: str, prefix: str = "") -> Dict[str, Tuple[float, str]]:
    """``{target: (MAE, unit)}`` from the ``|``-separated fields of log lines
    (``prefix``: only fields starting with it, e.g. ``"validation "``)."""
    result = {}
    for line in text.splitlines():
        for field in line.split(" | "):
            field = re.sub(r"^.*\]\[INFO\] - ", "", field.strip())
            if not field.startswith(prefix):
                continue
            match = MAE_FIELD.match(field[len(prefix) :])
            if match:
                result[match[1]] = (float(match[2]), match[3] or "")
    return result


def milli(value: float, unit: str) -> float:
    """A logged MAE in milli-units: metatrain prints energies in meV already, other
    quantities (the dipole, ``e*angstrom``) in their own unit."""
    return value if unit.startswith("m") else 1000.0 * value


def metric_value(metric: Metric, fields: Dict[str, Tuple[float, str]]) -> float:
    """The value of ``metric`` among logged fields (NaN when it is not there)."""
    for name in metric.log_names:
        if name in fields:
            return milli(*fields[name])
    return float("nan")


def epochs_logged(log: str) -> Dict[int, Tuple[datetime, str]]:
    """``{epoch: (time stamp, line)}`` of the ``Epoch:`` lines of a training log."""
    return {
        int(epoch): (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"), rest)
        for stamp, epoch, rest in EPOCH_LINE.findall(log)
    }


def epoch_seconds(log: str) -> float:
    """Mean time per epoch between the first and last ``Epoch:`` lines of every
    uninterrupted part of the log (split where a training restarts, so the time
    it was stopped does not count; 1 s resolution; includes the validation pass)."""
    seconds, intervals = 0.0, 0
    for part in log.split(RESTART):
        epochs = epochs_logged(part)
        if len(epochs) >= 2:
            first, last = min(epochs), max(epochs)
            seconds += (epochs[last][0] - epochs[first][0]).total_seconds()
            intervals += last - first
    return seconds / intervals if intervals else float("nan")


def selection(log: str, metrics: Tuple[Metric, ...]) -> dict:
    """Best epoch (as logged by metatrain or pet_mta), last epoch, and the
    validation MAEs of both, so a report can tell whether the shipped model is the
    last one."""
    epochs = epochs_logged(log)
    best = BEST_EPOCH.findall(log)
    best_epoch = int(best[-1]) if best else None
    last_epoch = max(epochs) if epochs else None

    def validation(epoch: Optional[int]) -> Dict[str, float]:
        if epoch not in epochs:
            return {}
        fields = mae_fields(epochs[epoch][1], "validation ")
        return {m.key: metric_value(m, fields) for m in metrics if m.log_names}

    return {
        "epoch_seconds": epoch_seconds(log),
        "best_epoch": best_epoch,
        "last_epoch": last_epoch,
        "validation_best": validation(best_epoch),
        "validation_last": validation(last_epoch),
    }


# --- one training run --------------------------------------------------------------


@dataclass
class Job:
    """One training run: data set, architecture, size and model hypers.

    ``setup``: training settings other than the defaults (``SETUP``);
    ``shared_model``: hyper-parameters changed for both architectures;
    ``arch_overrides``: those changed for this architecture only.
    """

    dataset: DataSet
    architecture: str
    n_train: int
    setup: dict
    shared_model: dict
    arch_overrides: dict

    @property
    def model(self) -> dict:
        return {**MODEL, **self.shared_model, **self.arch_overrides}

    @property
    def overrides(self) -> str:
        """Everything that differs from the defaults: the overrides part of the key."""
        return canonical({**self.setup, **_changed(self.model)})

    @property
    def shared(self) -> str:
        """What differs from the defaults for both architectures."""
        return canonical({**self.setup, **_changed(self.shared_model)})

    def folder(self, args) -> Path:
        name = f"{self.architecture}-n{self.n_train}-{budget_label(args)}"
        if self.overrides:
            name += "-" + re.sub(r"[^\w.=,+-]", "_", self.overrides)
        return args.work / "runs" / self.dataset.name / name


def _changed(model: dict) -> dict:
    return {k: v for k, v in model.items() if MODEL.get(k) != v}


def tool(name: str) -> str:
    """The command ``name`` next to this Python (a venv need not be activated)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def mtt() -> str:
    return tool("mtt")


def run(command: List[str], cwd: Path, log_name: str) -> str:
    """Run a command with one thread (unless OMP_NUM_THREADS says otherwise);
    keep its output in ``cwd / log_name``."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    log = result.stdout + result.stderr
    (cwd / log_name).write_text(log)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{log[-3000:]}")
    return log


def count_parameters(path: Path) -> int:
    """Parameters of an exported model (the whole model: heads and baselines too)."""
    import metatomic.torch

    with _LOAD:
        model = metatomic.torch.load_atomistic_model(str(path))
    return sum(p.numel() for p in model.parameters())


def train(job: Job, files: dict, work: Path, args) -> Tuple[str, dict]:
    """Train unless ``--reuse`` finds a model trained with the same options.

    Returns the training log, and the wall time and provenance of the training run
    (kept in ``run.json``, so a reused model keeps those of the run that made it).
    """
    epochs = epochs_for(job.n_train, args)
    opts = options(
        job.architecture, job.dataset, files, job.n_train, job.model, epochs, args
    )
    text = yaml.safe_dump(opts)
    options_file, record, log_file = (
        work / name for name in ("options.yaml", "run.json", "train.txt")
    )
    same = options_file.exists() and options_file.read_text() == text
    done = all(p.exists() for p in (work / "model.pt", log_file))
    if args.reuse and same and done:
        earlier = json.loads(record.read_text()) if record.exists() else {}
        meta = {"train_seconds": math.nan, **provenance(args), **earlier}
        return log_file.read_text(), meta
    command = [mtt(), "train", "options.yaml", "-o", "model.pt"]
    earlier_logs = ""
    saved = checkpoints(work)
    if args.reuse and same and saved:
        command += ["--restart", str(saved[-1])]  # a stopped training: continue it
        earlier_logs = "".join(p.read_text() for p in training_logs(work))
    options_file.write_text(text)
    start = time.perf_counter()
    log = earlier_logs + run(command, work, log_file.name)
    log_file.write_text(log)
    meta = {"train_seconds": time.perf_counter() - start, **provenance(args)}
    if earlier_logs:
        meta["continued"] = True  # train_seconds: the last part only
    record.write_text(json.dumps(meta, indent=2))
    return log, meta


def checkpoints(work: Path) -> List[Path]:
    """The model checkpoints ``mtt train`` in ``work`` saved on its way
    (``--checkpoint-interval``), oldest first."""
    saved = (work / "outputs").glob("*/*/model_*.ckpt")
    return sorted(saved, key=lambda path: path.stat().st_mtime)


def training_logs(work: Path) -> List[Path]:
    """The logs of the earlier parts of a training in ``work``, oldest first."""
    return sorted((work / "outputs").glob("*/*/train.log"))


def evaluate(
    job: Job, files: dict, work: Path, model: str = "model.pt"
) -> Tuple[Dict[str, float], Dict[str, list]]:
    """Test-set MAEs of an exported model in ``work``, from ``mtt eval`` (and from
    its predictions, for the dipole per structure), and every ``(MAE, unit)``
    that ``mtt eval`` printed, by name."""
    (work / "eval.yaml").write_text(yaml.safe_dump(eval_options(job.dataset, files)))
    stem = Path(model).stem
    predictions = f"predictions-{stem}.xyz"
    command = [mtt(), "eval", model, "eval.yaml", "-o", predictions]
    fields = mae_fields(run(command, work, f"eval-{stem}.txt"))
    result = {
        m.key: metric_value(m, fields) for m in job.dataset.metrics if m.log_names
    }
    if DIPOLE in job.dataset.metrics:
        result[DIPOLE.key] = dipole_mae(files["test"], work / predictions)
    return result, {name: list(value) for name, value in fields.items()}


def last_epoch(job: Job, files: dict, work: Path, best: dict) -> dict:
    """Test-set MAEs of the last epoch's weights (``test_last``), next to those
    of the exported (best) epoch: the checkpoint keeps both, so a copy with the
    last epoch's weights in the best model's place is exported and evaluated.
    With a small validation set the best-model rule can ship a noisy middle
    epoch; this tells how much that costs."""
    import metatomic.torch  # noqa: F401  (the checkpoint holds its classes)
    import torch

    if not (work / "model.ckpt").exists():
        return {}  # a reused run from before checkpoints were kept: not measured
    with _LOAD:
        checkpoint = torch.load(work / "model.ckpt", weights_only=False)
    if checkpoint["best_epoch"] == checkpoint["epoch"]:
        return {"test_last": best}
    last = checkpoint["model_state_dict"]
    average = checkpoint.get("ema_state_dict")  # averaged weights (ema_decay)
    if average is not None:
        last = {**last, **average["weights"]}
    checkpoint["best_model_state_dict"] = last
    checkpoint["best_epoch"] = checkpoint["epoch"]
    torch.save(checkpoint, work / "model-last.ckpt")
    command = [mtt(), "export", "model-last.ckpt", "-o", "model-last.pt"]
    run(command, work, "export-last.txt")
    (work / "model-last.ckpt").unlink()
    return {"test_last": evaluate(job, files, work, "model-last.pt")[0]}


def symmetrized(job: Job, files: dict, work: Path, args) -> dict:
    """With ``--symmetrize``: test-set MAEs of the trained pet_mta model wrapped
    by ``pet-mta symmetrize`` (ECSE, with ``--symmetrize-options``), and the
    wall time of ``mtt eval`` of both (s per test structure, start-up included)."""
    if not args.symmetrize or job.architecture != "pet_mta":
        return {}
    options = shlex.split(args.symmetrize_options)
    command = [tool("pet-mta"), "symmetrize", "model.pt", "-o", "symmetrized.pt"]
    run(command + options, work, "symmetrize.txt")
    seconds = {}
    for model in ("model.pt", "symmetrized.pt"):
        start = time.perf_counter()
        errors = evaluate(job, files, work, model)[0]
        seconds[model] = (time.perf_counter() - start) / args.n_test
    return {
        "symmetrized": errors,
        "symmetrize_options": args.symmetrize_options,
        "eval_seconds": seconds["model.pt"],
        "symmetrized_eval_seconds": seconds["symmetrized.pt"],
    }


def benchmark(job: Job, files: dict, args) -> dict:
    """Train, evaluate and describe one run: a record of ``accuracy.json``."""
    work = job.folder(args)
    work.mkdir(parents=True, exist_ok=True)
    log, meta = train(job, files, work, args)
    errors, fields = evaluate(job, files, work)
    return {
        "dataset": job.dataset.name,
        "architecture": job.architecture,
        "n_train": job.n_train,
        "budget": budget_label(args),
        "overrides": job.overrides,
        "shared_overrides": job.shared,
        "arch_overrides": canonical(job.arch_overrides),
        "model": job.model,
        "epochs": epochs_for(job.n_train, args),
        **{k: getattr(args, k) for k in SETUP},
        "params": count_parameters(work / "model.pt"),
        **selection(log, job.dataset.metrics),
        **errors,
        "test_fields": fields,
        **last_epoch(job, files, work, errors),
        **symmetrized(job, files, work, args),
        **meta,
    }


def provenance(args) -> dict:
    """How a result was produced: command, machine, versions, date."""
    cpu = cpu_name()
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    versions = []
    for package in ("torch", "metatrain", "pet_mta"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} ?")
    return {
        "command": " ".join(["python", "bench/accuracy.py", *sys.argv[1:]]),
        "machine": f"{cpu}, {os.cpu_count()} cores, {args.jobs} training run(s) at "
        f"a time with `OMP_NUM_THREADS={threads}`",
        "versions": ", ".join(versions),
        "date": datetime.now().strftime("%Y-%m-%d"),
    }


# --- main --------------------------------------------------------------------------


def jobs(args) -> List[Tuple[Job, dict]]:
    """Every training run of this invocation, with the data files it reads."""
    shared_model = assignments(args.model)
    per_arch = arch_assignments(args.arch_model)
    unknown = set(per_arch) - set(args.architectures)
    if unknown:
        raise SystemExit(f"--arch-model for architectures not run: {sorted(unknown)}")
    setup = {k: getattr(args, k) for k in SETUP if getattr(args, k) != SETUP[k]}
    result = []
    for name in args.datasets:
        files = write_splits(DATASETS[name], args.sizes, args)
        for n_train in files["train"]:
            for architecture in args.architectures:
                job = Job(
                    DATASETS[name],
                    architecture,
                    n_train,
                    setup,
                    shared_model,
                    per_arch.get(architecture, {}),
                )
                result.append((job, files))
    return result


def run_all(todo: List[Tuple[Job, dict]], args) -> Tuple[List[dict], int]:
    """Run the jobs, ``--jobs`` at a time; a failed run is reported, not fatal."""
    results, failures = [], 0
    with ThreadPoolExecutor(max_workers=args.jobs) as executor:
        futures = [executor.submit(benchmark, job, files, args) for job, files in todo]
        for (job, _), future in zip(todo, futures):
            try:
                result = future.result()
            except Exception:
                failures += 1
                print(f"FAILED: {job.folder(args)}", file=sys.stderr)
                traceback.print_exc()
                continue
            print(json.dumps({k: result[k] for k in KEY}), flush=True)
            results.append(result)
    return results, failures


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=DEFAULT_DATASETS, choices=list(DATASETS)
    )
    parser.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "all"])
    parser.add_argument("--architectures", nargs="+", default=["pet_mta", "pet"])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=100)
    budget.add_argument(
        "--steps", type=int, default=None, help="optimiser steps per training run"
    )
    parser.add_argument(
        "--model",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="model hyper-parameters of both architectures",
    )
    parser.add_argument(
        "--arch-model",
        nargs="+",
        default=[],
        metavar="ARCH:KEY=VALUE",
        help="model hyper-parameters of one architecture, e.g. pet_mta:d_pet=128",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="training runs at the same time"
    )
    parser.add_argument("--batch-size", type=int, default=SETUP["batch_size"])
    parser.add_argument("--learning-rate", type=float, default=SETUP["learning_rate"])
    parser.add_argument("--n-test", type=int, default=SETUP["n_test"])
    parser.add_argument("--n-val", type=int, default=SETUP["n_val"])
    parser.add_argument("--seed", type=int, default=SETUP["seed"])
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "pet_mta-accuracy"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the splits and models in --work trained with the same options",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=positive_int,
        default=NO_CHECKPOINTS,
        metavar="N",
        help="save a checkpoint every N epochs, so that --reuse can continue a "
        "stopped training (results do not change)",
    )
    parser.add_argument(
        "--symmetrize",
        action="store_true",
        help="also evaluate each pet_mta model symmetrized by `pet-mta symmetrize`",
    )
    parser.add_argument(
        "--symmetrize-options",
        default="",
        metavar="OPTIONS",
        help="options of `pet-mta symmetrize`, e.g. '--mode whole'",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report and plots from --out/accuracy.json",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.report_only:
        write_reports(merge(args.out, []), args.out)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    results, failures = run_all(jobs(args), args)
    write_reports(merge(args.out, results), args.out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Accuracy benchmark: pet_mta vs metatrain's own ``pet``, same data, same hypers.

Both architectures are trained with ``mtt train`` from the *same* options (only
``architecture.name`` differs: the hyper-parameter names are shared), on the same
training subsets of each data set of ``../shared/data`` with the same seed, and
evaluated with ``mtt eval`` on the same held-out structures. Data sets (see
``accuracy_sets.py``): ``hea`` (energy, forces, stress), ``ch4`` and ``water``
(energy, forces), ``water-dipole`` and ``ch4-dipole`` (the dipole vector alone).
Reported for every training set size of the learning curve: energy MAE (meV/atom),
force MAE (meV/Å), dipole MAE (me·Å), time per epoch, parameters, and the epoch
metatrain picked as the best model next to the last one.

    python bench/accuracy.py --sizes 16 32 64 --epochs 2 --out /tmp/acc  # quick look
    python bench/accuracy.py --steps 400 --jobs 2               # short budget
    python bench/accuracy.py --epochs 100 --jobs 2 --reuse      # converged budget
    python bench/accuracy.py --datasets water --arch-model pet_mta:d_pet=128

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
rewrites the report alone. Not a test: it takes hours at full size on a laptop CPU;
the numbers depend on the machine (the report says which).
"""

import argparse
import json
import math
import os
import platform
import re
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
from typing import Callable, Dict, List, Optional, Tuple

import yaml
from accuracy_sets import (
    DATASETS,
    DEFAULT_DATASETS,
    DIPOLE,
    MODEL,
    DataSet,
    Metric,
    dipole_mae,
    eval_options,
    options,
    write_splits,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "src" / "bench"
# training settings; a value other than these is part of a result's key
SETUP = {"batch_size": 8, "learning_rate": 1e-3, "seed": 0, "n_test": 200, "n_val": 100}
KEY = ("dataset", "architecture", "n_train", "budget", "overrides")
REFERENCE = "pet"  # the ratio columns are <architecture> / pet
NOTES = "<!-- notes: the text below this line is kept when the report is rewritten -->"
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


def epoch_seconds(epochs: Dict[int, Tuple[datetime, str]]) -> float:
    """Mean time per epoch between the first and last ``Epoch:`` lines (1 s
    resolution; includes the validation pass)."""
    if len(epochs) < 2:
        return float("nan")
    first, last = min(epochs), max(epochs)
    return (epochs[last][0] - epochs[first][0]).total_seconds() / (last - first)


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
        "epoch_seconds": epoch_seconds(epochs),
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


def mtt() -> str:
    """The ``mtt`` next to this Python (a venv need not be activated)."""
    candidate = Path(sys.executable).with_name("mtt")
    return str(candidate) if candidate.exists() else "mtt"


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
    done = all(p.exists() for p in (work / "model.pt", options_file, log_file))
    if args.reuse and done and options_file.read_text() == text:
        earlier = json.loads(record.read_text()) if record.exists() else {}
        meta = {"train_seconds": math.nan, **provenance(args), **earlier}
        return log_file.read_text(), meta
    options_file.write_text(text)
    start = time.perf_counter()
    log = run([mtt(), "train", "options.yaml", "-o", "model.pt"], work, log_file.name)
    meta = {"train_seconds": time.perf_counter() - start, **provenance(args)}
    record.write_text(json.dumps(meta, indent=2))
    return log, meta


def evaluate(job: Job, files: dict, work: Path) -> Dict[str, float]:
    """Test-set MAEs of the trained model, from ``mtt eval`` (and from its
    predictions, for the dipole per structure)."""
    (work / "eval.yaml").write_text(yaml.safe_dump(eval_options(job.dataset, files)))
    command = [mtt(), "eval", "model.pt", "eval.yaml", "-o", "predictions.xyz"]
    fields = mae_fields(run(command, work, "eval.txt"))
    result = {
        m.key: metric_value(m, fields) for m in job.dataset.metrics if m.log_names
    }
    if DIPOLE in job.dataset.metrics:
        result[DIPOLE.key] = dipole_mae(files["test"], work / "predictions.xyz")
    result["test_fields"] = {name: list(value) for name, value in fields.items()}
    return result


def benchmark(job: Job, files: dict, args) -> dict:
    """Train, evaluate and describe one run: a record of ``accuracy.json``."""
    work = job.folder(args)
    work.mkdir(parents=True, exist_ok=True)
    log, meta = train(job, files, work, args)
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
        **evaluate(job, files, work),
        **meta,
    }


def provenance(args) -> dict:
    """How a result was produced: command, machine, versions, date."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line for line in cpuinfo if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
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


# --- results -----------------------------------------------------------------------


def key(record: dict) -> tuple:
    return tuple(record.get(k) for k in KEY)


def legacy(record: dict) -> dict:
    """A record of the HEA-only benchmark, with the fields of a key."""
    defaults = {"dataset": "hea", "budget": "legacy", "overrides": ""}
    return {**defaults, **record}


def merge(out: Path, new: List[dict]) -> List[dict]:
    """Earlier results of ``out/accuracy.json`` with ``new`` ones (which replace
    earlier ones of the same key), sorted for the report."""
    path = out / "accuracy.json"
    old = [legacy(r) for r in json.loads(path.read_text())] if path.exists() else []
    merged = {key(r): r for r in old + new}
    order = {name: i for i, name in enumerate(DATASETS)}

    def sort_key(r: dict) -> tuple:
        return (
            order.get(r["dataset"], len(order)),
            budget_order(r["budget"]),
            r.get("shared_overrides", ""),
            r["n_train"],
            r["architecture"] == REFERENCE,
            r["architecture"],
            r["overrides"],
        )

    return sorted(merged.values(), key=sort_key)


def budget_order(label: str) -> tuple:
    """``epochs=20`` before ``epochs=100``; ``steps=N`` after all ``epochs=N``."""
    kind, _, number = label.partition("=")
    return (kind, int(number) if number.isdigit() else 0)


def save(results: List[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")


# --- report ------------------------------------------------------------------------


def fmt(value, digits: int = 3) -> str:
    """About ``digits`` significant figures, no exponent; a dash for no value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value) or 1))))
    return f"{value:.{decimals}f}"


def partner(record: dict, results: List[dict]) -> Optional[dict]:
    """The ``pet`` run a record is compared with: same data set, size, budget and
    shared settings; the same overrides if there is one, else the plain one."""
    if record["architecture"] == REFERENCE:
        return None
    candidates = [
        r
        for r in results
        if r["architecture"] == REFERENCE
        and all(r[k] == record[k] for k in ("dataset", "n_train", "budget"))
        and r.get("shared_overrides", "") == record.get("shared_overrides", "")
    ]
    for wanted in (record.get("arch_overrides", ""), ""):
        for r in candidates:
            if r.get("arch_overrides", "") == wanted:
                return r
    return candidates[0] if len(candidates) == 1 else None


def ratio(record: dict, metric: Metric, results: List[dict]) -> str:
    other = partner(record, results)
    if other is None:
        return ""
    a, b = record.get(metric.key), other.get(metric.key)
    return fmt(a / b, 2) if a is not None and b else "–"


def table(rows: List[List[str]]) -> List[str]:
    """A markdown table: header row first."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return lines + ["| " + " | ".join(row) + " |" for row in rows[1:]]


def common_overrides(records: List[dict]) -> List[str]:
    """The overrides (``key=value``) of every record of a table."""
    sets = [set(filter(None, r["overrides"].split(","))) for r in records]
    return sorted(set.intersection(*sets)) if sets else []


def run_columns(records: List[dict]) -> List[Tuple[str, Callable[[dict], str]]]:
    """The columns naming a run; budget and overrides only when they vary (the
    overrides common to all rows are listed above the table)."""
    common = set(common_overrides(records))

    def overrides(r: dict) -> str:
        rest = [o for o in filter(None, r["overrides"].split(",")) if o not in common]
        return ",".join(rest) or "–"

    columns = [("architecture", lambda r: r["architecture"])]
    if any(overrides(r) != "–" for r in records):
        columns.append(("overrides", overrides))
    if len({r["budget"] for r in records}) > 1:
        columns.append(("budget", lambda r: r["budget"]))
    columns.append(("training structures", lambda r: str(r["n_train"])))
    return columns


def accuracy_table(dataset: DataSet, records: List[dict]) -> List[str]:
    """Test errors, their ratio to ``pet``, cost and size of every run."""
    columns = run_columns(records) + [("epochs", lambda r: fmt(r.get("epochs")))]
    for m in dataset.metrics:
        columns.append((f"{m.label} ({m.unit})", lambda r, m=m: fmt(r.get(m.key))))
        columns.append((f"/ {REFERENCE}", lambda r, m=m: ratio(r, m, records)))
    columns += [
        ("time per epoch (s)", lambda r: fmt(r.get("epoch_seconds"))),
        ("parameters", lambda r: fmt(r.get("params"))),
        (
            "best / last epoch",
            lambda r: f"{fmt(r.get('best_epoch'))} / {fmt(r.get('last_epoch'))}",
        ),
    ]
    return table(
        [[name for name, _ in columns]]
        + [[cell(r) for _, cell in columns] for r in records]
    )


def selection_table(dataset: DataSet, records: List[dict]) -> List[str]:
    """Validation MAEs of the shipped (best) and the last epoch."""
    columns = run_columns(records)
    for m in (m for m in dataset.metrics if m.log_names):
        for which in ("best", "last"):
            columns.append(
                (
                    f"validation {m.label}, {which} epoch ({m.unit})",
                    lambda r, m=m, w=which: fmt(
                        r.get(f"validation_{w}", {}).get(m.key)
                    ),
                )
            )
    return table(
        [[name for name, _ in columns]]
        + [[cell(r) for _, cell in columns] for r in records]
    )


def header(results: List[dict]) -> List[str]:
    """How the numbers were produced: data, settings, commands, machines."""
    names = [n for n in DATASETS if any(r["dataset"] == n for r in results)]
    hypers = ", ".join(f"`{k}={v}`" for k, v in MODEL.items())
    lines = ["# Training accuracy against metatrain's PET", "", "Data sets:", ""]
    for name in names:
        dataset = DATASETS[name]
        splits = sorted(
            {
                f"{r.get('n_test', '?')} test, {r.get('n_val', '?')} validation, "
                f"seed {r.get('seed', '?')}"
                for r in results
                if r["dataset"] == name
            }
        )
        lines.append(
            f"- `{name}`: {dataset.description}; `{dataset.file}`, fixed-seed split "
            f"({'; '.join(splits)}), training sets nested, drawn from the rest."
        )
    lines += [
        "",
        "Both architectures train from the same options (only `architecture.name` "
        f"differs): {hypers} unless a row lists overrides, batch "
        f"{SETUP['batch_size']}, learning rate {SETUP['learning_rate']}, warm-up "
        "5 %, float32 (other values are listed as overrides). Budgets: `epochs=N` "
        "is N epochs per run, `steps=N` about N optimiser steps (epochs = steps x "
        "batch / structures). MAEs from `mtt eval` on the test split; the dipole "
        "MAE is per structure and Cartesian component (from the predictions), next "
        "to what `mtt eval` prints (the same divided by the number of atoms). "
        f"`/ {REFERENCE}`: the MAE over that of `{REFERENCE}` at the same size, "
        "budget and overrides (or the plain `pet`). Time per epoch: mean interval "
        "between epoch log lines (1 s resolution; includes the validation pass). "
        "Parameters: of the exported model. Best / last epoch: the epoch whose "
        "weights were exported (the lowest validation metric) and the last one.",
        "",
        "Commands:",
        "",
    ]
    lines += [f"- `{c}`" for c in sorted({r.get("command", "?") for r in results})]
    lines += ["", "Machines:", ""]
    machines = {f"{r.get('machine', '?')}; {r.get('versions', '?')}" for r in results}
    return lines + [f"- {m}" for m in sorted(machines)] + [""]


def notes(path: Path) -> List[str]:
    """Hand-written text after the ``NOTES`` marker of an existing report."""
    if not path.exists():
        return [NOTES, ""]
    text = path.read_text()
    return [NOTES + text.split(NOTES, 1)[1].rstrip("\n")] if NOTES in text else [NOTES]


def report(results: List[dict], out: Path) -> None:
    """Write ``accuracy.md``: a header, then two tables per data set."""
    lines = header(results)
    for name, dataset in DATASETS.items():
        records = [r for r in results if r["dataset"] == name]
        if not records:
            continue
        lines += [f"**`{name}`: {dataset.description}**", ""]
        common = common_overrides(records)
        if common:
            lines += [f"All runs of `{name}` with `{','.join(common)}`.", ""]
        lines += accuracy_table(dataset, records) + [""]
        lines += [f"Model selection (`{name}`):", ""]
        lines += selection_table(dataset, records) + [""]
    lines += notes(out / "accuracy.md")
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# --- plots -------------------------------------------------------------------------


def series(records: List[dict]) -> Dict[str, List[dict]]:
    """Records by architecture, budget and overrides, each sorted by size; the
    labels leave out what all records share."""
    common = set(common_overrides(records))
    budgets = len({r["budget"] for r in records}) > 1
    result: Dict[str, List[dict]] = {}
    for r in sorted(records, key=lambda r: r["n_train"]):
        rest = [o for o in filter(None, r["overrides"].split(",")) if o not in common]
        parts = [r["architecture"], r["budget"] if budgets else "", ",".join(rest)]
        result.setdefault(" ".join(p for p in parts if p), []).append(r)
    return result


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _cost(r: dict) -> Optional[float]:
    """Training time: epochs x time per epoch (s)."""
    seconds = r.get("epoch_seconds")
    return r["epochs"] * seconds if r.get("epochs") and _finite(seconds) else None


def draw(axis, records: List[dict], metric: Metric, cost: bool) -> None:
    """One panel: a line per series, MAE against size (or training time)."""
    for label, runs in series(records).items():
        points = [
            (_cost(r) if cost else r["n_train"], r.get(metric.key), r["n_train"])
            for r in runs
        ]
        points = [p for p in points if _finite(p[0]) and _finite(p[1])]
        if not points:
            continue
        x, y, _ = zip(*points)
        (line,) = axis.loglog(x, y, "o-", label=label)
        if cost:  # the training set size next to each point
            for xi, yi, n in points:
                axis.annotate(str(n), (xi, yi), fontsize=6, color=line.get_color())
    axis.set_ylabel(f"{metric.label} / {metric.unit}", fontsize=8)
    axis.set_xlabel("training time (s)" if cost else "training structures", fontsize=8)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=6)
    else:
        axis.text(0.5, 0.5, "no data", ha="center", transform=axis.transAxes)


def plot(results: List[dict], out: Path, cost: bool) -> None:
    """Learning curves (MAE against training structures), or with ``cost`` the MAE
    against training time; log-log, one row per data set, one panel per metric."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = [n for n in DATASETS if any(r["dataset"] == n for r in results)]
    if not names:
        return
    columns = max(len(DATASETS[n].plotted) for n in names)
    figure, axes = plt.subplots(
        len(names), columns, figsize=(4.5 * columns, 3.3 * len(names)), squeeze=False
    )
    for row, name in zip(axes, names):
        records = [r for r in results if r["dataset"] == name]
        for axis, metric in zip(row, DATASETS[name].plotted):
            draw(axis, records, metric, cost)
            axis.set_title(f"{name}: {metric.label}", fontsize=9)
        for axis in row[len(DATASETS[name].plotted) :]:
            axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(out / ("accuracy_cost.png" if cost else "accuracy.png"), dpi=150)
    plt.close(figure)


def write_reports(results: List[dict], out: Path) -> None:
    save(results, out)
    report(results, out)
    plot(results, out, cost=False)
    plot(results, out, cost=True)


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

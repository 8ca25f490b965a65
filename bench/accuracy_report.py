"""Report of the accuracy benchmark (``bench/accuracy.py``): merges results into
``accuracy.json`` and writes ``accuracy.md`` (tables per data set), ``accuracy.png``
(learning curves) and ``accuracy_cost.png`` (error against training time)."""

import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from accuracy_sets import DATASETS, MODEL, DataSet, Metric

# training settings; a value other than these is part of a result's key
SETUP = {"batch_size": 8, "learning_rate": 1e-3, "seed": 0, "n_test": 200, "n_val": 100}
KEY = ("dataset", "architecture", "n_train", "budget", "overrides")
REFERENCE = "pet"  # the ratio columns are <architecture> / pet
NOTES = "<!-- notes: the text below this line is kept when the report is rewritten -->"


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
    """Validation MAEs of the shipped (best) and the last epoch, and the test
    MAEs of the last epoch (those of the best one are in the accuracy table)."""
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
    for m in dataset.metrics:
        columns.append(
            (
                f"test {m.label}, last epoch ({m.unit})",
                lambda r, m=m: fmt(r.get("test_last", {}).get(m.key)),
            )
        )
    return table(
        [[name for name, _ in columns]]
        + [[cell(r) for _, cell in columns] for r in records]
    )


def symmetrized_table(dataset: DataSet, records: List[dict]) -> List[str]:
    """Plain and ECSE-symmetrized test errors of the runs evaluated both ways."""
    records = [r for r in records if r.get("symmetrized")]
    if not records:
        return []
    columns = run_columns(records)
    columns.append(("`pet-mta symmetrize` options", lambda r: _options(r)))
    for m in dataset.metrics:
        columns += [
            (f"{m.label}, plain ({m.unit})", lambda r, m=m: fmt(r.get(m.key))),
            (
                f"{m.label}, symmetrized ({m.unit})",
                lambda r, m=m: fmt(r["symmetrized"].get(m.key)),
            ),
            ("ratio", lambda r, m=m: _sym_ratio(r, m)),
        ]
    columns.append(
        (
            "`mtt eval` s / structure (start-up included), plain / symmetrized",
            lambda r: (
                f"{fmt(r.get('eval_seconds'))} / "
                f"{fmt(r.get('symmetrized_eval_seconds'))}"
            ),
        )
    )
    rows = [[name for name, _ in columns]]
    return table(rows + [[cell(r) for _, cell in columns] for r in records])


def _options(record: dict) -> str:
    return f"`{record['symmetrize_options']}`" if record["symmetrize_options"] else "–"


def _sym_ratio(record: dict, metric: Metric) -> str:
    a, b = record["symmetrized"].get(metric.key), record.get(metric.key)
    return fmt(a / b, 3) if a is not None and b else "–"


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
        "weights were exported (the lowest validation metric) and the last one; "
        "the model-selection tables give the test MAEs of the last epoch's "
        "weights too (a dash: not measured for that run).",
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
        symmetrized = symmetrized_table(dataset, records)
        if symmetrized:
            lines += [f"Plain and symmetrized (ECSE) pet_mta models (`{name}`):", ""]
            lines += symmetrized + [""]
    lines += notes(out / "accuracy.md")
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# --- plots -------------------------------------------------------------------------


def series(records: List[dict]) -> Dict[str, List[dict]]:
    """Records by architecture, budget and overrides, each sorted by size. Labels
    name the architecture, the budget (when budgets differ) and the overrides of
    that architecture alone; the shared overrides (listed in the report) only when
    they are needed to tell two series apart."""
    budgets = len({r["budget"] for r in records}) > 1
    groups: Dict[tuple, List[dict]] = {}
    for r in sorted(records, key=lambda r: r["n_train"]):
        group = (r["architecture"], r["budget"], r["overrides"])
        groups.setdefault(group, []).append(r)

    def label(runs: List[dict], full: bool) -> str:
        r = runs[0]
        own = _size(r) if r.get("arch_overrides") else ""
        own = _rest(r, records) if full else own
        parts = [r["architecture"], r["budget"] if budgets else "", own]
        return " ".join(p for p in parts if p)

    short = [label(runs, False) for runs in groups.values()]
    full = len(set(short)) < len(short)
    return {label(runs, full): runs for runs in groups.values()}


def _size(record: dict) -> str:
    """``(106k parameters)``: how a legend tells a resized model apart."""
    params = record.get("params")
    return f"({params / 1000:.0f}k parameters)" if params else record["overrides"]


def _rest(record: dict, records: List[dict]) -> str:
    """The overrides of ``record`` not shared by every record."""
    common = set(common_overrides(records))
    overrides = filter(None, record["overrides"].split(","))
    return ",".join(o for o in overrides if o not in common)


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
        axis.legend(fontsize=6, framealpha=0.5)
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

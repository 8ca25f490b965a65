"""The markdown page of ``bench/ecse.py``: ``ecse.md`` from the results in
``ecse.json`` (cost and equivariance tables, reading notes, accuracy runs)."""

from pathlib import Path
from typing import Any, Dict, List

from ecse_systems import FINE_GRID


def meta_lines(meta: Dict[str, Any]) -> List[str]:
    machine = meta["machine"]
    commit = (
        f"pet_mta at commit {meta['commit']}"
        if meta.get("commit")
        else "commit not recorded (measured with the code of that date, before "
        "this page recorded commits; not rerun since)"
    )
    return [
        f"Command: `{meta['command']}` ({meta['date']}; {commit}).",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores (shared with other "
        f"jobs), {machine['threads']} torch thread; torch {machine['torch']}, "
        f"Python {machine['python']}.",
        "",
    ]


def fmt_seconds(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def model_cell(row, key) -> str:
    result = row["models"].get(key)
    if result is None:
        return "-"
    if result.get("failed"):
        return f"failed ({result['failed']})"
    if result.get("skipped"):
        copies = {
            "whole": f"{row['frames_whole']} frames",
            "lebedev_fine": f"{row.get('lebedev_fine_rotations')} copies",
        }
        what = f"{copies[key]} × {row['atoms']} atoms, " if key in copies else ""
        return f"not run ({what}est. {fmt_seconds(result['estimate_s'])} s)"
    return f"{fmt_seconds(result['seconds'])} s ({result['ratio']:.3g}×)"


def std_cell(row, key) -> str:
    result = row["models"].get(key)
    if result is None or "relative_std" not in result:
        return "-"
    return f"{result['relative_std']:.1e} ({result['rotations']})"


KEYS = ("plain", "local", "whole", "lebedev", "lebedev_fine")


def cost_table(cost: Dict[str, Any]) -> List[str]:
    lines = [
        "| structure | N | plain | ECSE local | ECSE whole | Lebedev | "
        "Lebedev, fine | frames/atom, local (mean, max) | frames, whole |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cost["rows"]:
        cells = " | ".join(model_cell(row, k) for k in KEYS)
        lines.append(
            f"| {row['structure']} | {row['atoms']} | {cells} "
            f"| {row['frames_local_mean']:.1f}, {row['frames_local_max']} "
            f"| {row['frames_whole']} |"
        )
    return lines


def std_table(cost: Dict[str, Any]) -> List[str]:
    lines = [
        "| structure | N | plain | ECSE local | ECSE whole | Lebedev | Lebedev, fine |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cost["rows"]:
        cells = " | ".join(std_cell(row, k) for k in KEYS)
        lines.append(f"| {row['structure']} | {row['atoms']} | {cells} |")
    return lines


def accuracy_lines(acc: Dict[str, Any]) -> List[str]:
    options = acc.get("ecse_options") or {}
    settings = (
        ", ".join(f"`{k}={v}`" for k, v in options.items())
        if options
        else "default settings"
    )
    modes = [key for key in acc["models"] if key != "plain"]
    kind = "periodic" if acc.get("periodic", True) else "non-periodic"
    lines = [
        f"**Accuracy of a trained model, plain and symmetrized ({acc['test']})**",
        "",
        *meta_lines(acc["meta"]),
        f"Model `{acc['model']}`: {acc['description']} ({acc['parameters']} "
        f"parameters, interaction range {acc['interaction_range']:g} Å, float32); "
        f"ECSE: `Symmetrized(model, mode=...)`, {settings}. Held-out set "
        f"`{acc['test']}`: first {acc['structures']} structures "
        f"({acc['atoms'][0]}-{acc['atoms'][1]} atoms, {kind}). Errors against the "
        "reference energies and forces of the file; *vs plain*: mean absolute "
        "difference to the plain model's predictions.",
        "",
        "| model | energy MAE (meV/atom) | force MAE (meV/Å) | energy vs plain "
        "(meV/atom) | forces vs plain (meV/Å) | s per structure | "
        f"energy std over {acc['rotations']} rotations (meV/atom) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, model in acc["models"].items():
        versus = ("-", "-")
        if "vs_plain_force_mev_a" in model and key != "plain":
            versus = (
                f"{model['vs_plain_energy_mev_atom']:.2f}",
                f"{model['vs_plain_force_mev_a']:.1f}",
            )
        lines.append(
            f"| {key} | {model['energy_mae_mev_atom']:.2f} | "
            f"{model['force_mae_mev_a']:.1f} | {versus[0]} | {versus[1]} | "
            f"{model['seconds_per_structure']:.3g} | "
            f"{acc['rotation_std_mev_atom'][key]:.2e} |"
        )
    lines += [
        "",
        "The rotation spread is measured on the smallest of these structures "
        f"({acc['rotation_structure_atoms']} atoms); in float32 the spread of "
        f"{' and '.join(modes)} is rounding noise, not a symmetry error.",
        "",
    ]
    return lines


def write_report(results: Dict[str, Any], out: Path) -> None:
    lines = ["# ECSE: cost, frames and equivariance error", ""]
    cost = results.get("cost")
    if cost:
        lines += [
            "Cost part measured at commit "
            f"{cost['meta'].get('commit', 'not recorded')} ({cost['meta']['date']}). "
            "Matched accuracy against metatomic's Lebedev grid: `ecse_grid.md`; "
            "cost and peak memory against N for every frame rule: "
            "`ecse_scaling.md`.",
            "",
        ]
        backbone = cost["backbone"]
        hypers = ", ".join(
            f"`{k}={v}`" for k, v in backbone.items() if k not in ("parameters",)
        )
        lines += [
            "**Cost and equivariance error**",
            "",
            *meta_lines(cost["meta"]),
            *([cost["note"], ""] if cost.get("note") else []),
            f"Backbone: a random-weight pet_mta PET ({hypers}; "
            f"{backbone['parameters']} parameters; interaction range "
            f"{cost['interaction_range']:g} Å). ECSE: `pet_mta.Symmetrized` with its "
            "default frame settings (the published frame rule: frames from the "
            "neighbour pairs within the backbone's cutoff, `spread_margin=1.0`, no "
            "pruning, no inversion: exact SO(3)); local mode with its default "
            "`low_memory` (each batch of rotated copies differentiated at once). "
            "Lebedev: metatomic's "
            "`SymmetrizedModel(pet, max_angular_momentum_target=0)`, its default "
            f"grid ({cost['rows'][0]['lebedev_rotations']} rotations); *Lebedev, "
            f"fine*: the same with `max_angular_momentum_grid={FINE_GRID}` "
            f"({cost['rows'][0]['lebedev_fine_rotations']} rotations), run only "
            "where it fits in memory. `SymmetrizedModel` averages over O(3): every "
            "grid rotation is evaluated as a proper and an improper copy, twice as "
            "many backbone evaluations as rotations.",
            "",
            *cost_table(cost),
            "",
            "- **plain, ECSE local, ECSE whole, Lebedev**: wall time of one energy + "
            "forces evaluation (forward, and backward to the positions; neighbour "
            "lists included), median over the rotated evaluations of the table "
            "below, and in brackets the ratio to the plain backbone. *not run*: the "
            "estimated cost (frames or rotations × plain time, given) is above the "
            "time limit of the run (`--max-seconds`), or the rotated copies × atoms "
            "exceed `--max-whole-atoms` (memory: with forces, the autograd graph "
            "of every copy is kept; about 0.5 MB per atom here).",
            "- **frames/atom, local**: frames of each atom's environment (after "
            "pruning, if any; none by default); local mode evaluates the backbone "
            "once per frame on the "
            "atom's cut-out receptive field (only the centre's output is kept, and "
            "PET computes only what that output needs). Mean and maximum over the "
            "atoms.",
            "- **frames, whole**: frames pooled over the whole structure; whole "
            "mode evaluates the backbone once per frame on the *whole* (rotated) "
            "structure.",
            chunk_note(cost.get("chunk", 0)),
            "",
            "Equivariance error: standard deviation of the total energy over random "
            "proper rotations of the structure, relative to its mean (float64); in "
            "brackets the number of rotations (up to `--rotations`, fewer where "
            "they would take longer than `--rotation-seconds`). ECSE is exact, so "
            "its spread is rounding noise; the plain backbone and the Lebedev "
            "average (a finite quadrature) are not exactly invariant.",
            "",
            *std_table(cost),
            "",
        ]
        lines += cost_notes(cost)
    for key in sorted(k for k in results if k.startswith("accuracy")):
        lines += accuracy_lines(results[key])
    (out / "ecse.md").write_text("\n".join(lines))


def chunk_note(chunk: int) -> str:
    if chunk > 0:
        return (
            f"- Local mode is evaluated {chunk} atoms at a time (`selected_atoms`), "
            "each part differentiated at once: the same energy and forces, without "
            "holding the autograd graphs of all frames of all atoms at once."
        )
    return (
        "- Local mode is evaluated in one call per structure, as a user makes it "
        "(its default `low_memory` keeps one batch of rotated copies' graph alive "
        "at a time; peak memory against N: `ecse_scaling.md`)."
    )


def cost_notes(cost: Dict[str, Any]) -> List[str]:
    rows = {row["structure"]: row for row in cost["rows"]}
    notes = ["Reading the results (where ECSE costs more, and why):", ""]

    def ratio(row, key) -> float:
        return row["models"].get(key, {}).get("ratio", float("nan"))

    ch4 = rows.get("CH4")
    if ch4:
        notes.append(
            f"- Molecule (CH4): whole mode is exact at {ratio(ch4, 'whole'):.3g}× "
            f"the backbone ({ch4['frames_whole']} frames, one batched call), "
            + (
                "cheaper than"
                if ratio(ch4, "whole") < ratio(ch4, "lebedev")
                else "more than"
            )
            + f" the default Lebedev average ({ratio(ch4, 'lebedev'):.3g}×, "
            f"{ch4['lebedev_rotations']} rotations, {2 * ch4['lebedev_rotations']} "
            "copies), which is not exact. Local "
            f"mode costs {ratio(ch4, 'local'):.3g}× ("
            f"{ch4['frames_local_mean']:.1f} frames per atom, each on the atom's "
            "cut-out cluster). Pruning frames (`n_prunings=1` or the published 4) "
            "makes ECSE "
            "cheaper for single points, at the price of energy conservation in "
            "MD (see the NVE benchmark)."
        )
        fine = ch4["models"].get("lebedev_fine", {})
        if "relative_std" in fine:
            notes.append(
                f"- A finer Lebedev grid ({ch4['lebedev_fine_rotations']} rotations, "
                f"{fine['ratio']:.3g}× the backbone on CH4) still leaves a relative "
                f"spread of {fine['relative_std']:.1e} over rotations: a quadrature "
                "only converges to invariance, ECSE is invariant by construction."
            )
    alloys = [r for r in cost["rows"] if r["structure"].startswith("fcc alloy")]
    local = [r for r in alloys if "ratio" in r["models"].get("local", {})]
    if len(local) >= 2:
        per_atom = ", ".join(
            f"{1000 * r['models']['local']['seconds'] / r['atoms']:.0f} ms "
            f"({r['atoms']})"
            for r in local
        )
        ratios = ", ".join(f"{ratio(r, 'local'):.0f}×" for r in local)
        lebedev = ", ".join(f"{ratio(r, 'lebedev'):.3g}×" for r in local)
        notes.append(
            "- Bulk: the local mode scales linearly, its cost per atom is flat "
            f"({per_atom}), but it costs much more than the backbone ({ratios}). "
            "Every frame of every atom needs the backbone on a rotated copy of the "
            "atom's cut-out cluster (copies batched 32 per call), so the ratio is "
            "about frames per atom × the cost of one centre's output relative to "
            "one atom's share of a full evaluation. The default Lebedev average "
            f"costs {lebedev} here, a fixed number of full evaluations: much "
            "cheaper in bulk, but only approximately invariant (table below); the "
            "grid degree and cost it needs to reach a given error are in "
            "`ecse_grid.md`."
        )
    skipped = [
        r
        for r in cost["rows"]
        if r["models"].get("whole", {}).get("skipped")
        or r["models"].get("whole", {}).get("failed")
    ]
    if skipped:
        names = ", ".join(
            f"{r['structure']} ({r['frames_whole']} frames)" for r in skipped
        )
        notes.append(
            "- Whole mode in bulk: the number of frames grows with N and each "
            "frame re-evaluates the whole structure, so the cost is O(N²), and "
            "with forces the autograd graph of every rotated copy is kept (memory "
            f"∝ frames × N). Not run for {names}: the frame count is computed "
            "(cheaply) and the time estimated as frames × plain time."
        )
    return notes + [""]

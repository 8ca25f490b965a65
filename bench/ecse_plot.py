"""The figures of ``bench/ecse.py``: ``ecse.png`` (cost against N, local mode) and
``ecse_<accuracy run>.png`` (predicted against reference energies and forces)."""

import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np


def write_plots(results: Dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        print(f"no figures (matplotlib: {error})", file=sys.stderr)
        return
    cost = results.get("cost")
    if cost:
        rows = [
            r
            for r in cost["rows"]
            if r["structure"].startswith("fcc alloy")
            and "seconds" in r["models"].get("local", {})
        ]
        if rows:
            n = np.array([r["atoms"] for r in rows])
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for key, label in (
                ("plain", "plain backbone"),
                ("local", "ECSE local"),
                ("whole", "ECSE whole"),
                ("lebedev", "Lebedev (default grid)"),
            ):
                points = [
                    (r["atoms"], 1000 * r["models"][key]["seconds"] / r["atoms"])
                    for r in rows
                    if "seconds" in r["models"].get(key, {})
                ]
                if points:
                    x, y = zip(*points)
                    axes[0].plot(x, y, "o-", label=label)
            axes[0].set_xscale("log")
            axes[0].set_yscale("log")
            axes[0].set_xlabel("atoms N (fcc alloy)")
            axes[0].set_ylabel("time per atom (ms), energy + forces")
            axes[0].set_title("cost per atom: flat = linear scaling")
            axes[0].legend()
            ratio = [r["models"]["local"]["ratio"] for r in rows]
            axes[1].plot(n, ratio, "o-", label="ECSE local / plain")
            axes[1].set_xscale("log")
            axes[1].set_xlabel("atoms N (fcc alloy)")
            axes[1].set_ylabel("cost ratio to the plain backbone")
            twin = axes[1].twinx()
            twin.plot(
                n,
                [r["frames_local_mean"] for r in rows],
                "s--",
                color="tab:gray",
                label="frames per atom (mean)",
            )
            twin.set_ylabel("frames per atom")
            axes[1].set_ylim(bottom=0)
            twin.set_ylim(0, 1.15 * max(r["frames_local_mean"] for r in rows))
            handles = axes[1].get_legend_handles_labels()
            extra = twin.get_legend_handles_labels()
            axes[1].legend(handles[0] + extra[0], handles[1] + extra[1])
            axes[1].set_title("local mode: ratio and frames vs N")
            for ax in axes:  # the measured sizes as ticks (log axes crowd them)
                ax.set_xticks(n, [str(v) for v in n])
                ax.minorticks_off()
            fig.tight_layout()
            fig.savefig(out / "ecse.png", dpi=110)
            plt.close(fig)
    for name in sorted(k for k in results if k.startswith("accuracy")):
        acc = results[name]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        ref = np.array(acc["energies_per_atom_reference"])
        fref = np.array(acc["forces_sample_reference"]).ravel()
        for key, marker in zip(acc["models"], ("o", "x", "+")):
            model = acc["models"][key]
            axes[0].plot(ref, model["energies_per_atom"], marker, label=key)
            forces = np.array(model["forces_sample"]).ravel()
            axes[1].plot(fref, forces, marker, ms=3, label=key, alpha=0.6)
        for ax, what in zip(axes, ("energy (eV/atom)", "force component (eV/Å)")):
            low = min(ax.get_xlim()[0], ax.get_ylim()[0])
            high = max(ax.get_xlim()[1], ax.get_ylim()[1])
            ax.plot([low, high], [low, high], "k-", lw=0.5)
            ax.set_xlabel(f"reference {what}")
            ax.set_ylabel(f"predicted {what}")
            ax.legend()
        axes[0].set_title(f"trained PET: plain vs ECSE ({Path(acc['test']).name})")
        fig.tight_layout()
        fig.savefig(out / f"ecse_{name}.png", dpi=110)
        plt.close(fig)

"""The figure of ``bench/ecse_grid.py``: ``ecse_grid.png``, equivariance error
against cost for every grid degree, the plain model and ECSE."""

from pathlib import Path
from typing import Any, Dict

from ecse_grid_report import TARGETS


def write_plot(results: Dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = ("tab:blue", "tab:orange", "tab:green")
    for res, color in zip(results["rows"], colors):
        for ax, key in zip(axes, ("energy_rel", "force_rel")):
            rows = res["lebedev"]
            x = [r["ratio"] for r in rows]
            y = [max(r[key], 1e-17) for r in rows]
            ax.plot(x, y, "o-", color=color, label=f"Lebedev, {res['structure']}")
            for r, xi, yi in zip(rows, x, y):
                ax.annotate(
                    str(r["order"]),
                    (xi, yi),
                    fontsize=7,
                    color=color,
                    textcoords="offset points",
                    xytext=(3, 3),
                )
            ax.plot(
                res["plain"]["ratio"],
                res["plain"][key],
                "x",
                color=color,
                ms=8,
                label=f"plain, {res['structure']}",
            )
            for (label, row), marker in zip(res["ecse"].items(), ("*", "P")):
                ax.plot(
                    row["ratio"],
                    max(row[key], 1e-17),
                    marker,
                    color=color,
                    ms=11,
                    label=f"{label}, {res['structure']}",
                )
    for ax, what in zip(axes, ("energy", "forces")):
        for target in TARGETS:
            ax.axhline(target, color="k", lw=0.5, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cost: CPU time / plain model (energy + forces)")
        ax.set_ylabel(f"relative {what} error over rotations")
        ax.grid(alpha=0.3)
    axes[0].set_title("Lebedev degree L (labels) vs ECSE (exact)")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out / "ecse_grid.png", dpi=120)
    plt.close(fig)

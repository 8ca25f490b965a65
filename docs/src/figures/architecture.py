"""Figure of the PET architecture: tokens, cutoff-weighted attention, messages."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

CUTOFF, WIDTH = 4.5, 0.5


def bump(r):
    """pet_mta's default ``Bump`` switch (1 inside, 0 beyond the cutoff)."""
    s = np.clip((r - (CUTOFF - WIDTH)) / WIDTH, 1e-9, 1 - 1e-9)
    f = 0.5 * (1 + np.tanh(1 / np.tan(np.pi * s)))
    return np.where(r <= CUTOFF - WIDTH, 1.0, np.where(r >= CUTOFF, 0.0, f))


def arrow(ax, a, b, color="k", **kw):
    ax.add_patch(
        FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=9, color=color, **kw)
    )


def box(ax, xy, w, h, text, color, fontsize=8):
    ax.add_patch(
        FancyBboxPatch(xy, w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=0.8)
    )
    ax.text(
        xy[0] + w / 2, xy[1] + h / 2, text, ha="center", va="center", fontsize=fontsize
    )


fig = plt.figure(figsize=(10, 3.6))
grid = fig.add_gridspec(1, 3, width_ratios=[1, 1.35, 1.2], wspace=0.08)

# (a) one atomic environment: neighbour j inside the sphere become tokens
ax = fig.add_subplot(grid[0])
angles = np.radians([20, 80, 140, 195, 250, 295, 340])
radii = np.array([2.5, 3.4, 4.2, 2.9, 4.4, 3.2, 5.3])
points = radii[:, None] * np.c_[np.cos(angles), np.sin(angles)]
ax.add_patch(Circle((0, 0), CUTOFF, fc="none", ec="C0", lw=1.2))
ax.add_patch(Circle((0, 0), CUTOFF - WIDTH, fc="C0", alpha=0.08, ec="none"))
ax.add_patch(Circle((0, 0), CUTOFF, fc="C0", alpha=0.04, ec="none"))
weights = bump(radii)
for (x, y), w in zip(points, weights):
    inside = w > 0
    ax.plot(
        [0, x],
        [0, y],
        color="C1" if inside else "0.7",
        alpha=max(w, 0.25),
        lw=1.5,
        ls="-" if inside else ":",
    )
    ax.add_patch(Circle((x, y), 0.32, fc="C2" if inside else "0.85", ec="0.3"))
    if inside:
        ax.text(
            x * 1.25,
            y * 1.25,
            f"{w:.2f}",
            fontsize=7,
            ha="center",
            va="center",
            color="C1",
        )
ax.add_patch(Circle((0, 0), 0.4, fc="C3", ec="0.3"))
ax.text(0, 0, "i", ha="center", va="center", color="w", fontsize=9)
ax.text(
    0,
    -CUTOFF - 2.1,
    "circle: cutoff; shaded ring: switch $f_c$\n"
    "(numbers: $f_c(r_{ij})$; grey: outside, no token)",
    ha="center",
    fontsize=7,
)
ax.set_xlim(-6.2, 6.2)
ax.set_ylim(-7.2, 6.0)
ax.set_aspect("equal")
ax.axis("off")
ax.set_title("(a) environment of atom i:\none token per neighbour edge", fontsize=9)

# (b) the token sequence and the attention weighted by f_c
ax = fig.add_subplot(grid[1])
ax.set_xlim(0, 10)
ax.set_ylim(-0.6, 10)
ax.axis("off")
ax.set_title("(b) one GNN layer = transformer on the sequence", fontsize=9)
n_tokens = 1 + int((weights > 0).sum())
xs = np.linspace(1.0, 9.0, n_tokens)
for k, x in enumerate(xs):
    central = k == 0
    w = 1.0 if central else weights[weights > 0][k - 1]
    label = ("i" if central else f"ij{k}") + f"\n{w:.2f}"
    box(ax, (x - 0.42, 0.6), 0.84, 1.0, label, "#f4c7c3" if central else "#fde2b8", 6.5)
ax.text(
    5,
    -0.2,
    r"token$_{ij}$ = MLP[ Linear(x, y, z, |r|), message $m_{ij}$ ];"
    r"  below: weight $w$",
    ha="center",
    fontsize=7,
)
box(ax, (0.6, 2.9), 8.8, 3.3, "", "#e8eef8")
ax.text(5, 5.55, "num_attention_layers x transformer block", ha="center", fontsize=8)
ax.text(
    5,
    4.55,
    r"$\alpha_{qk} = \frac{e^{\ell_{qk}}\, w_k}{\sum_{k'} e^{\ell_{qk'}}\, w_{k'}}$"
    r"$\quad w_k = f_c(r_{ik})$",
    ha="center",
    fontsize=9,
)
ax.text(5, 3.4, "weight 0 at the cutoff: smooth in positions", ha="center", fontsize=7)
for x in xs:
    arrow(ax, (x, 1.65), (x, 2.85))
    arrow(ax, (x, 6.25), (x, 7.2))
for k, x in enumerate(xs):
    box(
        ax,
        (x - 0.42, 7.25),
        0.84,
        1.0,
        "h$_i$" if k == 0 else f"o{k}",
        "#f4c7c3" if k == 0 else "#d9ecd0",
        7,
    )
ax.text(
    5,
    8.95,
    "outputs: node feature + one output token per edge",
    ha="center",
    fontsize=7.5,
)

# (c) message passing and read-out
ax = fig.add_subplot(grid[2])
ax.set_xlim(0, 10)
ax.set_ylim(0, 10)
ax.axis("off")
ax.set_title("(c) message passing and read-out", fontsize=9)
for row, y in enumerate((7.6, 4.6)):
    box(ax, (0.4, y), 3.6, 1.1, f"layer {row + 1}: seq. of i", "#e8eef8", 7.5)
    box(ax, (6.0, y), 3.6, 1.1, f"layer {row + 1}: seq. of j", "#e8eef8", 7.5)
arrow(ax, (7.8, 7.55), (2.2, 5.75), color="C2")
arrow(ax, (2.2, 7.55), (7.8, 5.75), color="C2")
ax.text(
    5,
    9.1,
    r"output token $o_{j\to i}$ of one layer is the"
    "\n"
    r"message $m_{ij}$ of edge $i\to j$ in the next",
    ha="center",
    fontsize=7.5,
    color="C2",
)
ax.text(5, 3.55, "x num_gnn_layers\nrange = layers x cutoff", ha="center", fontsize=7)
box(ax, (0.4, 0.9), 9.2, 1.9, "", "#f7f0da")
ax.text(
    5,
    2.25,
    r"$y_i = s\,[\,\mathrm{head}(h_i) + \sum_j f_c(r_{ij})\,"
    r"\mathrm{head}_e(o_{ij})\,] + b_{Z_i}$",
    ha="center",
    fontsize=8.5,
)
ax.text(5, 1.3, r"$E = \sum_i y_i$;  forces, stress: autograd", ha="center", fontsize=8)
arrow(ax, (2.2, 4.55), (2.2, 2.85))
arrow(ax, (7.8, 4.55), (7.8, 2.85))

plt.show()

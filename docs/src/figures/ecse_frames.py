"""Figure of ECSE: pair frames of one environment and their smooth weights.

An illustration of the published method with its default parameters, computed here
with numpy from the formulas given on the page (not with the wrapper's code).
"""

import itertools

import matplotlib.pyplot as plt
import numpy as np

BETA, DELTA_R, W, DELTA_W = 5.0, 0.15, 0.20, 0.15
LAMBERT_W0_INV_E = 0.2784645427610738  # W0(1/e): soft-max offset, see the text


def stitch(x):
    """C-infinity step from 1 (x <= -1) to 0 (x >= 1)."""
    x = np.asarray(x, dtype=float)
    inside = np.abs(x) < 1
    xs = np.where(inside, x, 0.0)
    with np.errstate(divide="ignore"):
        value = 0.5 + 0.5 * np.tanh(1 / (xs + 1) + 1 / (xs - 1))
    return np.where(x <= -1, 1.0, np.where(x >= 1, 0.0, value))


def f_cut(r, radius, width):
    """1 below ``radius - width``, 0 above ``radius``."""
    return stitch(2 * (r - (radius - width / 2)) / width)


def q_gate(s):
    """0 for nearly collinear pairs, growing linearly for well-spread ones."""
    start = W - DELTA_W
    return (1 - stitch(2 * (s - (start + DELTA_W / 2)) / DELTA_W)) * np.maximum(
        (s - start) / DELTA_W, 0
    )


def soft_max(values, weights, beta):
    e = weights * np.exp(beta * (values - values.max() if beta > 0 else values))
    return (e * values).sum() / e.sum()


# a small molecular environment (Å), centre at the origin
rng = np.random.default_rng(7)
neighbors = np.array(
    [
        [1.05, 0.10, 0.05],
        [-0.30, 1.00, 0.10],
        [-0.40, -0.45, 0.85],
        [-0.45, -0.40, -0.95],
        [2.30, 1.40, -0.60],
        [-1.90, 2.00, 1.10],
        [0.60, -2.60, 0.40],
    ]
) + rng.normal(0, 0.03, (7, 3))
lengths = np.linalg.norm(neighbors, axis=1)
unit = neighbors / lengths[:, None]
r_out = 5.0

# adaptive inner cutoff: soft-min over well-spread pairs of their (soft) larger radius
candidates, cweights = [r_out], [1.0]
for a, b in itertools.combinations(range(len(neighbors)), 2):
    s = np.linalg.norm(np.cross(unit[a], unit[b])) ** 2
    pair = np.array([lengths[a], lengths[b]])
    candidates.append(soft_max(pair, np.ones(2), BETA) + LAMBERT_W0_INV_E / BETA)
    cweights.append(float(q_gate(s) > 0) * min(q_gate(s), 1.0))
candidates, cweights = np.array(candidates), np.array(cweights)
r_in = soft_max(candidates, cweights + 1e-12, -BETA) + DELTA_R

# weights of every ordered pair (a, b)
pairs, weights = [], []
for a, b in itertools.permutations(range(len(neighbors)), 2):
    s = np.linalg.norm(np.cross(unit[a], unit[b])) ** 2
    w = f_cut(lengths[a], r_in, DELTA_R) * f_cut(lengths[b], r_in, DELTA_R) * q_gate(s)
    if w > 1e-10:
        pairs.append((a, b))
        weights.append(float(w))
weights = np.array(weights)
best = soft_max(weights, weights, 1.0)
kept = weights * (1 - stitch(2 * (weights - 0.95 * best) / (0.1 * best)))

fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), width_ratios=[1.1, 1, 1])

# (a) environment projected on (x, y) with the two heaviest frames
ax = axes[0]
theta = np.linspace(0, 2 * np.pi, 200)
ax.fill(r_in * np.cos(theta), r_in * np.sin(theta), color="C0", alpha=0.1)
ax.plot(r_in * np.cos(theta), r_in * np.sin(theta), "C0", lw=1)
ax.text(0.7 * r_in, -0.95 * r_in, r"$r_{in}$", color="C0")
inside = lengths < r_in
ax.scatter(
    *neighbors[:, :2].T, c=np.where(inside, "C2", "0.7"), s=60, ec="0.3", zorder=3
)
for k, (x, y) in enumerate(neighbors[:, :2]):
    ax.text(x + 0.12, y + 0.12, str(k), fontsize=7)
ax.scatter([0], [0], c="C3", s=80, ec="0.3", zorder=3)
order = np.argsort(-weights)
for rank, style in zip(order[:2], ["-", "--"]):
    a, b = pairs[rank]
    e1 = unit[a]
    e2 = np.cross(e1, unit[b])
    e2 /= np.linalg.norm(e2)
    e3 = np.cross(e1, e2)
    for vec, color in zip((e1, e2, e3), ("C3", "C2", "C0")):
        ax.annotate(
            "",
            1.6 * vec[:2],
            (0, 0),
            arrowprops=dict(arrowstyle="-|>", color=color, ls=style, lw=1.3),
        )
    ax.text(*(1.7 * e1[:2]), f"({a},{b})", fontsize=7, color="C3")
ax.set_aspect("equal")
ax.set_xlim(-2.6, 2.8)
ax.set_ylim(-2.9, 2.4)
ax.set_title("(a) environment (x-y view),\nframes of the 2 heaviest pairs", fontsize=9)
ax.set_xlabel("x (Å)")
ax.set_ylabel("y (Å)")

# (b) the two ingredients of a weight
ax = axes[1]
r = np.linspace(0, r_in + 0.3, 300)
ax.plot(r / r_in, f_cut(r, r_in, DELTA_R), label=r"$f_c(r; r_{in})$ vs $r/r_{in}$")
s = np.linspace(0, 1, 300)
ax.plot(s, q_gate(s) / q_gate(1.0), label=r"$q(\sin^2\theta_{ab})$ / q(1)")
ax.axvspan(W - DELTA_W, W, color="C1", alpha=0.1)
ax.set_xlabel(r"$r / r_{in}$  or  $\sin^2\theta_{ab}$")
ax.set_ylim(-0.05, 1.1)
ax.legend(fontsize=7, loc="lower right")
ax.set_title(r"(b) $w_{ab} = f_c(r_a)\,f_c(r_b)\,q(\sin^2\theta_{ab})$", fontsize=9)

# (c) all frames with a non-zero weight, before and after smooth pruning
ax = axes[2]
x = np.arange(len(weights))
ax.bar(x, weights[order], color="0.75", label="weight")
ax.bar(x, kept[order], color="C2", label="after pruning")
ax.axhspan(0.9 * best, best, color="C3", alpha=0.15, label="pruning switch")
ax.set_xticks(x)
ax.set_xticklabels(
    [f"{pairs[k][0]}{pairs[k][1]}" for k in order], fontsize=6, rotation=90
)
ax.set_xlabel("ordered pair (a, b)")
ax.set_ylabel("frame weight")
ax.legend(fontsize=7, loc="lower left", framealpha=0.9)
ax.set_title(f"(c) {len(weights)} frames, {int((kept > 1e-3).sum())} kept", fontsize=9)

fig.tight_layout()
plt.show()

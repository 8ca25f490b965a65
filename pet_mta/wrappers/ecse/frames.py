"""ECSE frames of atomic environments: switching functions, adaptive inner cutoff,
candidate frames, weights and smooth pruning.

Every function here is TorchScript-compatible and differentiable with respect to the
neighbour vectors. Lengths are in the backbone's length unit. Environments are
*padded*: ``vectors[n, m]`` is the ``m``-th neighbour of environment ``n`` and
``mask[n, m]`` says whether that slot is a real neighbour.

Notation (Pozdnyakov & Ceriotti, NeurIPS 2023): an ordered pair ``(a, b)`` of
neighbours defines the right-handed frame ``e1 = r_a / |r_a|``,
``e2 = e1 x r_b / |e1 x r_b|``, ``e3 = e1 x e2``, and its angular spread is
``s_ab = |r^_a x r^_b|^2 = sin^2(theta_ab)``.
"""

from typing import List, Tuple

import torch


def lambert_margin() -> float:
    """``W0(1/e)``, the maximum of ``d / (1 + e^d)``: a soft maximum of two values
    plus ``W0(1/e) / beta`` is never below their true maximum."""
    return 0.2784645427610738


def stitch(x: torch.Tensor) -> torch.Tensor:
    """C-infinity step from 1 (``x <= -1``) to 0 (``x >= 1``).

    ``1/2 + 1/2 tanh(1/(x + 1) + 1/(x - 1))`` inside ``(-1, 1)``; all derivatives
    vanish at both ends, and the gradient is finite (zero) outside.
    """
    inside = (x > -1.0) & (x < 1.0)
    safe = torch.where(inside, x, torch.zeros_like(x))
    value = 0.5 + 0.5 * torch.tanh(1.0 / (safe + 1.0) + 1.0 / (safe - 1.0))
    outside = torch.where(x <= -1.0, torch.ones_like(x), torch.zeros_like(x))
    return torch.where(inside, value, outside)


def cutoff_switch(r: torch.Tensor, radius: torch.Tensor, width: float) -> torch.Tensor:
    """``f_c(r; R, D)``: 1 below ``R - D``, 0 above ``R``, C-infinity in between.

    :param radius: ``R``, broadcastable to ``r`` (may depend on positions)
    """
    return stitch(2.0 * (r - (radius - 0.5 * width)) / width)


def gate(s: torch.Tensor, start: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``q(s; w, D)``: 0 below ``w``, 1 above ``w + D``, C-infinity in between."""
    return 1.0 - stitch(2.0 * (s - (start + 0.5 * width)) / width)


def linear_gate(s: torch.Tensor, start: float, width: float) -> torch.Tensor:
    """``q(s; w, D) * (s - w) / D``: the gate times a linear ramp (keeps growing)."""
    start_t = torch.full_like(s, start)
    width_t = torch.full_like(s, width)
    ramp = torch.clamp(s - start, min=0.0) / width
    return gate(s, start_t, width_t) * ramp


def soft_max(
    values: torch.Tensor, weights: torch.Tensor, beta: float, dim: int
) -> torch.Tensor:
    """Weighted soft maximum ``sum u v e^(b v) / sum u e^(b v)`` along ``dim``.

    ``beta < 0`` gives a soft minimum. The exponent is shifted by a (detached)
    extreme value for numerical stability, which leaves the result unchanged.
    Entries with zero weight do not contribute; an all-zero row gives 0.
    """
    scaled = beta * values
    masked = torch.where(weights > 0, scaled, torch.full_like(scaled, -1e30))
    shift = torch.amax(masked, dim=dim, keepdim=True).detach()
    shift = torch.where(shift > -1e29, shift, torch.zeros_like(shift))
    exponent = torch.where(weights > 0, scaled - shift, torch.zeros_like(scaled))
    factors = weights * torch.exp(exponent)
    numerator = torch.sum(factors * values, dim=dim)
    denominator = torch.sum(factors, dim=dim)
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.zeros_like(numerator))


class FrameHypers:
    """Hyper-parameters of the ECSE frames (lengths in the model's unit).

    :param outer_cutoff: ``r_out``: neighbours farther away never define frames
    :param cutoff_width: ``Dr``: width of the radial switches
    :param beta: ``beta`` (1/length) of the soft min/max of the adaptive inner cutoff
    :param spread_start: ``W``: pairs with ``sin^2`` below it do not set ``r_in``
    :param spread_width: ``DW``: width of the angular gates; frames need
        ``sin^2 > W - DW``
    :param weight_beta: ``beta`` of the soft maximum of the frame weights
    :param aux_threshold: frames stop mattering and the auxiliary prediction takes
        over below this (soft) maximum frame weight ...
    :param aux_width: ... over this width
    :param prune_threshold: frames below this fraction of the (soft) best weight are
        pruned ...
    :param prune_width: ... with a switch of this relative width
    :param n_prunings: rounds of pruning (0: none; the published method uses 4).
        Pruning saves frames (about 3.5x) but makes weights switch faster than an MD
        time step resolves: energy is not conserved (``docs/src/ecse.rst``)
    :param prune_on: pruning is fully on above this soft-max weight ...
    :param prune_on_width: ... and off below ``prune_on - prune_on_width``
    :param spread_margin: (periodic systems in local mode, see
        :func:`frames_per_group`) a pair's frames fade out as pairs spread better by
        more than this margin (``sin^2``) come inside ``r_in``, and are gone once
        one such pair is fully inside (:func:`better_pair_gate`).
        Values ``>= 1`` switch it off (the published method)
    :param spread_margin_width: ... a pair counts fully as better from a lead of
        ``spread_margin + spread_margin_width`` in ``sin^2`` on
    :param spread_penalty: ``L``: in the adaptive inner cutoff, a pair counts as
        if it were ``L * (1 - g(s_ab))`` farther away, ``g`` a smooth step from 0
        at ``sin^2 = W - DW`` to 1 at ``spread_penalty_end``: the nearest pair
        turning collinear moves ``r_in`` by at most about ``2 L / (end - W + DW)``
        per unit of ``sin^2``. 0: the published rule, where such a pair leaves
        ``r_in`` through a multiplicative gate inside the soft minimum, which moves
        ``r_in`` up to ~50 A per unit of ``sin^2`` (the energy of a trained water
        model then jumps in NVE, ``docs/src/ecse.rst``)
    :param spread_penalty_end: ``sin^2`` above which pairs have no penalty
    """

    def __init__(
        self,
        outer_cutoff: float = 10.0,
        cutoff_width: float = 0.3,
        beta: float = 5.0,
        spread_start: float = 0.2,
        spread_width: float = 0.15,
        weight_beta: float = 1.0,
        aux_threshold: float = 0.5,
        aux_width: float = 0.5,
        prune_threshold: float = 0.9,
        prune_width: float = 0.1,
        n_prunings: int = 0,
        prune_on: float = 0.5,
        prune_on_width: float = 0.25,
        spread_margin: float = 1.0,
        spread_margin_width: float = 0.2,
        spread_penalty: float = 0.5,
        spread_penalty_end: float = 0.5,
    ):
        if not spread_start - spread_width > 0:
            raise ValueError("spread_start must be larger than spread_width")
        self.outer_cutoff = float(outer_cutoff)
        self.cutoff_width = float(cutoff_width)
        self.beta = float(beta)
        self.spread_start = float(spread_start)
        self.spread_width = float(spread_width)
        self.weight_beta = float(weight_beta)
        self.aux_threshold = float(aux_threshold)
        self.aux_width = float(aux_width)
        self.prune_threshold = float(prune_threshold)
        self.prune_width = float(prune_width)
        self.n_prunings = int(n_prunings)
        self.prune_on = float(prune_on)
        self.prune_on_width = float(prune_on_width)
        self.spread_margin = float(spread_margin)
        self.spread_margin_width = float(spread_margin_width)
        self.spread_penalty = float(spread_penalty)
        self.spread_penalty_end = float(spread_penalty_end)


def pad_environments(
    centers: torch.Tensor, vectors: torch.Tensor, n_centers: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Group per-pair rows by centre into a padded ``[n_centers, M, F]`` array.

    :param centers: ``[P]`` centre index of every pair
    :param vectors: ``[P, F]`` rows (neighbour vectors, ``F = 3``, or any values)
    :return: padded rows (zeros in padding) and the ``[n_centers, M]`` mask; rows
        of one centre keep their order, so ``padded[mask]`` lists them sorted by
        centre (stably)
    """
    order = torch.argsort(centers, stable=True)
    centers = centers[order]
    vectors = vectors[order]
    features = vectors.shape[1]
    counts = torch.bincount(centers, minlength=n_centers)
    if centers.shape[0] > 0:
        width = int(torch.max(counts))
    else:
        width = 0
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(centers.shape[0], device=centers.device) - first[centers]
    padded = torch.zeros(
        (n_centers * max(width, 1), features),
        dtype=vectors.dtype,
        device=vectors.device,
    )
    flat = centers * max(width, 1) + slot
    padded = padded.index_put((flat,), vectors)
    mask = torch.zeros(
        n_centers * max(width, 1), dtype=torch.bool, device=vectors.device
    )
    mask[flat] = True
    return (
        padded.reshape(n_centers, max(width, 1), features),
        mask.reshape(n_centers, max(width, 1)),
    )


def pair_spreads(unit: torch.Tensor) -> torch.Tensor:
    """``[n, M, M]`` ``s_ab = |r^_a x r^_b|^2`` of the ``[n, M, 3]`` unit vectors."""
    n, width = unit.shape[0], unit.shape[1]
    cross = torch.cross(
        unit[:, :, None, :].expand(n, width, width, 3),
        unit[:, None, :, :].expand(n, width, width, 3),
        dim=-1,
    )
    return torch.sum(cross * cross, dim=-1)


def inner_cutoff(
    distances: torch.Tensor,
    spreads: torch.Tensor,
    pair_mask: torch.Tensor,
    hypers: FrameHypers,
) -> torch.Tensor:
    """Adaptive inner cutoff ``r_in`` of every environment.

    ``r_in = softmin_beta({r_out: 1} U {softmax_beta(|r_a|, |r_b|) + W0(1/e)/beta
    + p_ab : u_ab}) + Dr`` with ``u_ab = f_c(|r_a|; r_out) f_c(|r_b|; r_out)``.
    With a spread penalty ``L > 0`` (the default), ``p_ab = L (1 - g(s_ab))``, ``g``
    a smooth step from ``W - DW`` to ``spread_penalty_end``: every pair takes part,
    a poorly spread one as if it were farther away, so ``r_in`` follows the spreads
    with a bounded slope. With ``L = 0`` (the published rule) ``p_ab = 0`` and
    ``u_ab`` has the factor ``q(s_ab; W, DW)``, which drops poorly spread pairs
    through their weight. Since the Lambert-W margin makes each pair value at least
    the larger of its two lengths, the pair of smallest value always lies fully
    inside ``r_in``.

    :param distances: ``[n, M]`` neighbour lengths (any value in padding)
    :param spreads: ``[n, M, M]`` ``sin^2`` of every pair
    :param pair_mask: ``[n, M, M]`` real, distinct, unordered (``a < b``) pairs
    :return: ``[n]`` inner cutoffs
    """
    r_out = torch.full_like(distances, hypers.outer_cutoff)
    radial = cutoff_switch(distances, r_out, hypers.cutoff_width)
    da = distances[:, :, None].expand_as(spreads)
    db = distances[:, None, :].expand_as(spreads)
    pair_lengths = torch.stack([da, db], dim=-1)
    larger = (
        soft_max(pair_lengths, torch.ones_like(pair_lengths), hypers.beta, dim=-1)
        + lambert_margin() / hypers.beta
    )
    weights = radial[:, :, None] * radial[:, None, :]
    if hypers.spread_penalty > 0:
        low = hypers.spread_start - hypers.spread_width
        well_spread = gate(
            spreads,
            torch.full_like(spreads, low),
            torch.full_like(spreads, hypers.spread_penalty_end - low),
        )
        larger = larger + hypers.spread_penalty * (1.0 - well_spread)
    else:
        weights = weights * gate(
            spreads,
            torch.full_like(spreads, hypers.spread_start),
            torch.full_like(spreads, hypers.spread_width),
        )
    weights = torch.where(pair_mask, weights, torch.zeros_like(weights))
    n = distances.shape[0]
    values = torch.cat(
        [
            torch.full(
                (n, 1),
                hypers.outer_cutoff,
                dtype=distances.dtype,
                device=distances.device,
            ),
            larger.reshape(n, -1),
        ],
        dim=1,
    )
    all_weights = torch.cat(
        [
            torch.ones((n, 1), dtype=distances.dtype, device=distances.device),
            weights.reshape(n, -1),
        ],
        dim=1,
    )
    return soft_max(values, all_weights, -hypers.beta, dim=1) + hypers.cutoff_width


def environment_frames(
    vectors: torch.Tensor,
    mask: torch.Tensor,
    hypers: FrameHypers,
    spread_margin: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidate frames and their (unpruned) weights for padded environments.

    :param vectors: ``[n, M, 3]`` neighbour vectors
    :param mask: ``[n, M]`` real neighbours (within ``r_out``)
    :param spread_margin: apply ``hypers.spread_margin`` (:func:`better_pair_gate`)
    :return: ``frames [K, 3, 3]`` (columns ``e1, e2, e3``), ``weights [K]`` (all
        positive) and ``owner [K]`` (environment of every frame)
    """
    width = mask.shape[1]
    distances = torch.linalg.vector_norm(vectors, dim=-1)
    mask = mask & (distances < hypers.outer_cutoff) & (distances > 0)
    safe_d = torch.where(mask, distances, torch.ones_like(distances))
    spreads = pair_spreads(vectors / safe_d[:, :, None])
    index = torch.arange(width, device=vectors.device)
    distinct = index[:, None] != index[None, :]
    ordered = mask[:, :, None] & mask[:, None, :] & distinct[None, :, :]
    upper = (index[:, None] < index[None, :])[None, :, :] & ordered

    r_in = inner_cutoff(safe_d, spreads, upper, hypers)
    # r_in may exceed r_out by up to W0(1/e)/beta + Dr: the outer switch keeps
    # weights continuous as neighbours leave the frame neighbour list
    outer = cutoff_switch(
        safe_d, torch.full_like(safe_d, hypers.outer_cutoff), hypers.cutoff_width
    )
    outer = torch.where(mask, outer, torch.zeros_like(outer))
    radial = cutoff_switch(safe_d, r_in[:, None], hypers.cutoff_width) * outer
    angular = linear_gate(
        spreads, hypers.spread_start - hypers.spread_width, hypers.spread_width
    )
    pair_radial = radial[:, :, None] * radial[:, None, :]
    if spread_margin and hypers.spread_margin < 1.0:
        angular = angular * better_pair_gate(spreads, pair_radial, upper, hypers)
    weights = pair_radial * angular
    weights = torch.where(ordered, weights, torch.zeros_like(weights))

    alive = torch.nonzero(weights > 0)
    owner, a, b = alive[:, 0], alive[:, 1], alive[:, 2]
    w = weights[owner, a, b]
    ra = vectors[owner, a]
    rb = vectors[owner, b]
    return frames_from_pairs(ra, rb), w, owner


def better_pair_gate(
    spreads: torch.Tensor,
    pair_radial: torch.Tensor,
    pair_mask: torch.Tensor,
    hypers: FrameHypers,
    budget: int = 1 << 22,
) -> torch.Tensor:
    """Angular factor ``[n, M, M]`` dropping pairs once better spread pairs are
    well inside ``r_in``.

    Every pair ``p`` inside ``r_in`` gets ``f_c(B_p; 1, 1)`` (1 at ``B_p = 0``,
    0 from ``B_p = 1`` on), with ``B_p`` the :func:`norm_of_terms` of
    ``u_b q(s_b; W, DW) h(s_b - s_p)`` over the other pairs ``b``: their radial
    weight (``u_b``) where they are spread better by more than the margin,
    ``h = q(.; margin, width)`` (0 below ``spread_margin``, 1 above
    ``spread_margin + spread_margin_width``). A better pair entering ``r_in``
    removes the pair it outdoes at the pace of its own radial switch (a threshold
    relative to a soft maximum of the spreads instead moved with it many times
    faster, and MD energies jumped), and ``k`` pairs pulling ahead together
    remove it at most ``k^(1/8)`` times faster than one (their sum did it ``k``
    times faster: on a trained HEA cell, frames entered within two MD steps).
    In perfect fcc it keeps the 24 right-angle pairs of the 120 (``sin^2`` 1
    against 0.75).

    :param pair_radial: ``[n, M, M]`` product of the radial switches (``r_in``)
    :param pair_mask: ``[n, M, M]`` real, distinct, unordered (``a < b``) pairs
    :param budget: largest ``[environments, pairs, pairs]`` array built at once
    """
    n, width = spreads.shape[0], spreads.shape[1]
    inside = torch.nonzero(pair_mask & (pair_radial > 0))
    env, a, b = inside[:, 0], inside[:, 1], inside[:, 2]
    s = spreads[env, a, b]
    better = pair_radial[env, a, b] * gate(
        s,
        torch.full_like(s, hypers.spread_start),
        torch.full_like(s, hypers.spread_width),
    )
    # env is sorted (torch.nonzero), so padded[mask] is in the order of (env, a, b)
    padded, mask = pad_environments(env, torch.stack([s, better], dim=1), n)
    padded_s, padded_v = padded[:, :, 0], padded[:, :, 1]
    size = padded_s.shape[1]
    outdone = torch.zeros_like(padded_s)
    step = max(budget // (size * size), 1)
    for first in range(0, n, step):
        last = min(first + step, n)
        chunk_s = padded_s[first:last]
        # [c, target, better]: s_better - s_target
        lead = chunk_s[:, None, :] - chunk_s[:, :, None]
        h = gate(
            lead,
            torch.full_like(lead, hypers.spread_margin),
            torch.full_like(lead, hypers.spread_margin_width),
        )
        outdone[first:last] = norm_of_terms(h * padded_v[first:last, None, :])
    mass = outdone[mask]
    factor = cutoff_switch(mass, torch.ones_like(mass), 1.0)
    result = torch.ones((n, width, width), dtype=spreads.dtype, device=spreads.device)
    result = result.index_put((env, a, b), factor)
    return result.index_put((env, b, a), factor)


def norm_of_terms(terms: torch.Tensor, power: float = 8.0) -> torch.Tensor:
    """``(sum_b t_b^p)^(1/p)`` over the last axis of non-negative ``terms``.

    Between their maximum and ``k^(1/p)`` times it for ``k`` terms, smooth where
    not all are zero, and 0 (with finite gradients) where they are. Computed as
    ``m (sum_b (t_b / m)^p)^(1/p)``, ``m`` the largest term, so that small terms
    do not underflow.
    """
    top = torch.amax(terms, dim=-1)
    alive = top > 0
    safe_top = torch.where(alive, top, torch.ones_like(top))
    total = torch.sum((terms / safe_top.unsqueeze(-1)) ** power, dim=-1)
    total = torch.where(alive, total, torch.ones_like(total))
    return torch.where(alive, top * total ** (1.0 / power), torch.zeros_like(top))


def frames_from_pairs(ra: torch.Tensor, rb: torch.Tensor) -> torch.Tensor:
    """Right-handed frames ``[K, 3, 3]`` with columns ``(e1, e2, e3)``.

    ``e1 = r^_a``, ``e2 = e1 x r_b / |e1 x r_b|``, ``e3 = e1 x e2``. Pairs must not be
    collinear (ECSE only builds frames from pairs with ``sin^2 > W - DW``).
    """
    e1 = ra / torch.linalg.vector_norm(ra, dim=-1, keepdim=True)
    e2 = torch.cross(e1, rb, dim=-1)
    e2 = e2 / torch.linalg.vector_norm(e2, dim=-1, keepdim=True)
    e3 = torch.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def group_soft_max(
    weights: torch.Tensor, groups: torch.Tensor, n_groups: int, beta: float
) -> torch.Tensor:
    """``[n_groups]`` soft maximum ``sum w w e^(b w) / sum w e^(b w)`` per group."""
    factors = weights * torch.exp(beta * weights)
    zeros = torch.zeros(n_groups, dtype=weights.dtype, device=weights.device)
    numerator = zeros.index_add(0, groups, factors * weights)
    denominator = zeros.index_add(0, groups, factors)
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, zeros)


def prune_frames(
    weights: torch.Tensor, groups: torch.Tensor, n_groups: int, hypers: FrameHypers
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Smoothly prune the frames of every group, and weigh the auxiliary model.

    :param weights: ``[K]`` positive frame weights
    :param groups: ``[K]`` group (system or atom) of every frame
    :return: pruned weights ``[K]`` (some exactly zero) and the auxiliary weights
        ``[n_groups]`` (1 without frames, 0 once the best frame weight reaches
        ``aux_threshold``)
    """
    best = group_soft_max(weights, groups, n_groups, hypers.weight_beta)
    aux = cutoff_switch(
        best, torch.full_like(best, hypers.aux_threshold), hypers.aux_width
    )
    # t = 1: pruning off (all frames weak); t = 0: pruning fully on
    off = cutoff_switch(
        best, torch.full_like(best, hypers.prune_on), hypers.prune_on_width
    )[groups]
    for _ in range(hypers.n_prunings):
        top = group_soft_max(weights, groups, n_groups, hypers.weight_beta)[groups]
        safe_top = torch.where(top > 0, top, torch.ones_like(top))
        keep = gate(
            weights,
            hypers.prune_threshold * safe_top,
            hypers.prune_width * safe_top,
        )
        weights = weights * (keep * (1.0 - off) + off)
    return weights, aux


def mirror(frames: torch.Tensor) -> torch.Tensor:
    """The improper partners ``F diag(1, -1, 1)`` of right-handed frames."""
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=frames.dtype, device=frames.device)
    return frames * signs


def frames_per_group(
    centers: torch.Tensor,
    vectors: torch.Tensor,
    n_centers: int,
    center_group: torch.Tensor,
    n_groups: int,
    hypers: FrameHypers,
    inversion: bool,
    chunk: int = 256,
    spread_margin: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every frame of every group, pruned; environments processed in chunks.

    :param centers: ``[P]`` centre of every neighbour pair (``0..n_centers-1``)
    :param vectors: ``[P, 3]`` neighbour vectors
    :param center_group: ``[n_centers]`` group of every centre (its system in the
        whole-structure mode, itself in the local mode)
    :param inversion: add the mirrored frames (exact O(3) instead of SO(3))
    :param spread_margin: keep only pairs nearly as well spread as the best
        (``hypers.spread_margin``; ECSE uses it for condensed phases)
    :return: ``frames [K, 3, 3]``, ``weights [K] > 0``, ``groups [K]``,
        ``aux_weights [n_groups]``
    """
    keep = torch.linalg.vector_norm(vectors, dim=1) < hypers.outer_cutoff
    centers = centers[keep]
    vectors = vectors[keep]
    frame_list: List[torch.Tensor] = []
    weight_list: List[torch.Tensor] = []
    owner_list: List[torch.Tensor] = []
    for start in range(0, n_centers, chunk):
        stop = min(start + chunk, n_centers)
        selected = (centers >= start) & (centers < stop)
        padded, mask = pad_environments(
            centers[selected] - start, vectors[selected], stop - start
        )
        frames, weights, owner = environment_frames(padded, mask, hypers, spread_margin)
        frame_list.append(frames)
        weight_list.append(weights)
        owner_list.append(owner + start)
    if len(frame_list) > 0:
        frames = torch.cat(frame_list)
        weights = torch.cat(weight_list)
        owner = torch.cat(owner_list)
    else:
        frames = torch.zeros((0, 3, 3), dtype=vectors.dtype, device=vectors.device)
        weights = torch.zeros(0, dtype=vectors.dtype, device=vectors.device)
        owner = torch.zeros(0, dtype=torch.long, device=vectors.device)
    groups = center_group[owner]
    weights, aux = prune_frames(weights, groups, n_groups, hypers)
    alive = weights > 0
    frames = frames[alive]
    weights = weights[alive]
    groups = groups[alive]
    if inversion:
        frames = torch.cat([frames, mirror(frames)])
        weights = torch.cat([weights, weights])
        groups = torch.cat([groups, groups])
    return frames, weights, groups, aux

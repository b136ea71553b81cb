"""Global motion of the known frames, and the nearest known frame moved along it (``motion_fill``).

A network that must draw "the known digit, 9 pixels further on" from a copy of the known frame at its old
place has to learn translation by arbitrary offsets; convolutions and attention do that poorly at a small
budget. This module estimates the clip's global translation from the known frames alone (phase correlation
between consecutive known frames, the fraction of a pixel from the phase at the lowest frequencies), follows
it to every frame (linear between known frames, extrapolated with the nearest pair's velocity outside them)
and moves the nearest known frame there. It is a hint the network sees beside the plain copy, never the answer:
with one known frame nothing moves; a bounce or an object that turns is the network's to correct. With
``motion_warp`` the network makes that correction by moving the known frame itself: it outputs, per frame,
weights over every whole-pixel move of rows and of columns, starting from a bump at the estimated move
(:func:`shift_prior`), and the frame is moved by their mixture (:func:`shift_mixture`). With ``walls`` (the
range of content centres measured on the training clips, :func:`content_walls`) the motion extrapolated beyond
the known frames reflects there, as content that bounces inside a box does (:func:`bounce_shift`); with
``speed`` (the one speed of the training clips' content, :func:`content_speed`) it moves at that speed in the
direction the known frames give.

Shapes: ``cond: (B, T, C + 1, H, W)`` (known frames, zero where unknown, and the mask as the last
channel); displacements ``(B, T, 2)`` in pixels, (rows, columns).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .known import known_neighbours


def phase_shift(a: Tensor, b: Tensor) -> Tensor:
    """The translation d (pixels, (rows, columns)) that best maps ``a`` onto ``b``, ``b(p) ~ a(p - d)``.

    The whole pixels from the peak of the normalised cross-power spectrum's inverse (phase correlation);
    the fraction left from the phase of the cross-power at the three lowest frequencies of each axis, once
    the whole pixels are taken out (exact for a circular translation; a fraction of a pixel keeps those
    phases below pi, so they do not wrap). That gives the move modulo the frame's size: of the two candidates
    per axis, the one under which ``a`` moved matches ``b`` best. ``a, b: (N, C, H, W)`` -> ``(N, 2)``."""
    n, _, h, w = a.shape
    fa = torch.fft.fft2(a - a.mean((-2, -1), keepdim=True))
    fb = torch.fft.fft2(b - b.mean((-2, -1), keepdim=True))
    cross = (fb * fa.conj()).sum(1)  # (N, H, W), channels pooled
    r = torch.fft.ifft2(cross / (cross.abs() + 1e-8)).real  # (N, H, W): a peak at the shift
    peak = r.flatten(1).argmax(1)
    whole = torch.stack([(peak // w + h // 2) % h - h // 2, (peak % w + w // 2) % w - w // 2], -1)  # (N, 2)

    def fraction(c: Tensor, size: int, d: Tensor) -> Tensor:  # c: (N, K) cross-power at frequencies 1..K
        k = torch.arange(1, c.shape[1] + 1, device=a.device, dtype=a.dtype)
        c = c * torch.exp(2j * torch.pi * k * d[:, None].to(a.dtype) / size)  # the whole pixels taken out
        est = -torch.angle(c) * size / (2 * torch.pi * k)  # (N, K)
        wts = c.abs()
        return (est * wts).sum(1) / wts.sum(1).clamp(min=1e-12)

    kmax = min(3, h // 4, w // 4)
    dy = whole[:, 0].to(a.dtype) + fraction(cross[:, 1:kmax + 1, 0], h, whole[:, 0])
    dx = whole[:, 1].to(a.dtype) + fraction(cross[:, 0, 1:kmax + 1], w, whole[:, 1])
    d = torch.stack([dy, dx], -1)
    # a move is known only modulo the frame's size; frames are not periodic, so of d and d - (H, W) * sign(d)
    # per axis keep the one under which a, moved (border continued), matches b best
    size = torch.tensor([h, w], dtype=a.dtype, device=a.device)
    alt = d - size * torch.sign(d)
    cands = torch.stack([d, torch.stack([alt[:, 0], d[:, 1]], -1), torch.stack([d[:, 0], alt[:, 1]], -1), alt], 1)
    err = torch.stack([(translate(a, cands[:, i]) - b).pow(2).mean((1, 2, 3)) for i in range(4)], 1)  # (N, 4)
    return cands[torch.arange(n, device=a.device), err.argmin(1)]


def steady_velocity(step: Tensor, gap: Tensor, pair: Tensor) -> Tensor:
    """At every known frame that ends a pair of known frames, the velocity (pixels per frame, per axis)
    averaged over the run of pairs up to it whose move has the same sign on that axis; zero elsewhere.
    ``step: (B, T, 2)`` each pair's move, ``gap: (B, T, 1)`` its frames, ``pair: (B, T)`` where one ends.

    Why not the last pair's velocity alone: places are measured to a hundredth of a pixel, but content drawn
    at whole pixels moves by whole pixels (a speed of 1.5 pixels per frame shows as steps of 1 and 2), so one
    pair's velocity can be off by half a pixel per frame, an error that grows with every frame extrapolated.
    A reversed move (a bounce) starts a new run, so the average never mixes the two directions."""
    b, frames, _ = step.shape
    total, span, last = step.new_zeros(b, 2), step.new_zeros(b, 2), step.new_zeros(b, 2)
    out = torch.zeros_like(step)
    for t in range(frames):
        ends = pair[:, t, None]
        move, g = step[:, t], gap[:, t].expand(-1, 2)
        go_on = (torch.sign(move) == torch.sign(last)) & (span > 0)
        total = torch.where(ends, torch.where(go_on, total + move, move), total)
        span = torch.where(ends, torch.where(go_on, span + g, g), span)
        last = torch.where(ends, move, last)
        out[:, t] = torch.where(ends, total / span.clamp(min=1), 0.0)
    return out


def at_speed(vel: Tensor, speed: float, min_share: float = 0.25) -> Tensor:
    """Velocities ``(..., 2)`` rescaled to ``speed``, their direction kept; those under ``min_share`` of it stay
    (content about at rest has no direction to trust)."""
    norm = vel.norm(dim=-1, keepdim=True)
    return torch.where(norm >= min_share * speed, vel / norm.clamp(min=1e-12) * speed, vel)


def known_motion(cond: Tensor, steady: bool = True, speed: float | None = None) -> tuple[Tensor, Tensor]:
    """``cond: (B, T, C + 1, H, W)`` -> ``(target, source)``, each ``(B, T, 2)``: where every frame's content
    is estimated to be (relative to the clip's first known frame) and where the frame it is filled from
    (the nearest known one, the previous first) has it. Their difference is the move to apply. Beyond the
    last known frame the content goes on at :func:`steady_velocity` (``steady=False``: the last pair's);
    with ``speed`` (:func:`content_speed`, the one speed of the training clips) the velocities extrapolated
    beyond the known frames keep their direction and move at that speed. Why: four known frames give the
    velocity to about 0.1 px a frame (content drawn at whole pixels), an error that grows with every frame
    extrapolated, and most of it is in the speed."""
    known, mask = cond[:, :, :-1], cond[:, :, -1, 0, 0] > 0.5  # (B, T, C, H, W), (B, T)
    b, frames = mask.shape
    idx = torch.arange(frames, device=cond.device).expand_as(mask)
    before, after = known_neighbours(mask)  # last known index <= t (-1: none), first >= t (T: none)
    prev = torch.cat([idx.new_full((b, 1), -1), before[:, :-1]], 1)  # last known index < t
    pair = mask & (prev >= 0)  # known frames with a known frame before them
    gather = lambda v, at: v.gather(1, at.clamp(0, frames - 1)[..., None].expand(-1, -1, v.shape[-1]))  # noqa: E731
    step = torch.zeros(b, frames, 2, dtype=cond.dtype, device=cond.device)
    if pair.any():
        bi, ti = pair.nonzero(as_tuple=True)
        step[bi, ti] = phase_shift(known[bi, prev[bi, ti]], known[bi, ti])
    pos = step.cumsum(1)  # at a known frame: its content's place relative to the first known frame
    gap = (idx - prev).clamp(min=1).to(cond.dtype)[..., None]
    vel = torch.where(pair[..., None], step / gap, torch.zeros_like(step))  # per frame of the pair ending here
    # the first pair's velocity, for frames before the first known one
    second = torch.where(pair, idx, frames).min(1, keepdim=True).values.expand(-1, frames)
    v_first = torch.where((second < frames)[..., None], gather(vel, second), torch.zeros_like(step))
    p_before, p_after = gather(pos, before), gather(pos, after)
    has_b, has_a = (before >= 0)[..., None], (after < frames)[..., None]
    frac = ((idx - before) / (after - before).clamp(min=1)).to(cond.dtype)[..., None]
    between = p_before + frac * (p_after - p_before)
    ahead = steady_velocity(step, gap, pair) if steady else vel
    if speed is not None:
        ahead, v_first = at_speed(ahead, speed), at_speed(v_first, speed)
    forward = p_before + gather(ahead, before) * (idx - before).to(cond.dtype)[..., None]
    backward = p_after - v_first * (after - idx).to(cond.dtype)[..., None]
    target = torch.where(has_b & has_a, between, torch.where(has_b, forward, backward))
    source = torch.where(has_b, p_before, p_after)
    nothing = ~mask.any(1)[:, None, None]
    return target.masked_fill(nothing, 0.0), source.masked_fill(nothing, 0.0)


def translate(frames: Tensor, shift: Tensor) -> Tensor:
    """``frames: (N, C, H, W)`` moved by ``shift: (N, 2)`` pixels (rows, columns), ``out(p) = frames(p - shift)``,
    bilinear between pixels, the border's values continued where the frame moves in from outside."""
    n, _, h, w = frames.shape
    theta = frames.new_zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = -2 * shift[:, 1] / w, -2 * shift[:, 0] / h
    grid = torch.nn.functional.affine_grid(theta, list(frames.shape), align_corners=False)
    return torch.nn.functional.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def known_shift(cond: Tensor, steady: bool = True, speed: float | None = None) -> Tensor:
    """``cond: (B, T, C + 1, H, W)`` -> ``(B, T, 2)``: the move (pixels, rows and columns) that takes the nearest
    known frame to where every frame's content is estimated to be (zero at known frames), without gradient."""
    with torch.no_grad(), torch.autocast(cond.device.type, enabled=False):  # an input: float32, no gradient
        target, source = known_motion(cond.float(), steady, speed)
    return target - source


def shift_prior(shift: Tensor, size: int, spread: float = 0.5, floor: float = 0.05) -> Tensor:
    """Log-weights over the whole-pixel moves ``-(size - 1) .. size - 1`` of one axis, ``shift: (N,)`` ->
    ``(N, 2 * size - 1)``: ``1 - floor`` of the mass in a narrow bump (``spread`` pixels) at ``shift``, ``floor``
    spread over every move, so that a learned correction can reach any of them (:func:`shift_mixture`)."""
    moves = torch.arange(1 - size, size, dtype=shift.dtype, device=shift.device)
    bump = torch.softmax(-(moves - shift[:, None]) ** 2 / (2 * spread**2), -1)
    return torch.log((1 - floor) * bump + floor / moves.numel())


def shift_mixture(frames: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``frames: (N, C, H, W)`` moved by a mixture of whole-pixel moves, ``out(p) = sum_(a, b) rows[a] cols[b]
    frames(p - (a, b))`` (the border's values continued), with ``rows: (N, 2H - 1)`` and ``cols: (N, 2W - 1)``
    weights over the moves ``-(H - 1) .. H - 1`` and ``-(W - 1) .. W - 1``. One weight 1 is a plain
    translation; spread weights are a blur along the moves the network is unsure of. A move of every row,
    then of every column: two banded (H, H) and (W, W) matrices per frame."""
    n, _, h, w = frames.shape

    def band(k: Tensor, size: int) -> Tensor:  # (N, 2 size - 1) -> (N, size, size), m[i, j]: weight of row j at i
        moves = torch.arange(1 - size, size, device=k.device)
        j = (torch.arange(size, device=k.device)[:, None] - moves).clamp(0, size - 1)  # (size, 2 size - 1)
        return k.new_zeros(n, size, size).scatter_add_(2, j.expand(n, -1, -1), k[:, None, :].expand(-1, size, -1))

    if rows.shape != (n, 2 * h - 1) or cols.shape != (n, 2 * w - 1):
        raise ValueError(f"need move weights ({n}, {2 * h - 1}) and ({n}, {2 * w - 1}), got {tuple(rows.shape)} "
                         f"and {tuple(cols.shape)}")
    return torch.einsum("nij,ncjk,nlk->ncil", band(rows, h), frames, band(cols, w))


def content_centre(frames: Tensor) -> Tensor:
    """``frames: (..., C, H, W)`` -> ``(..., 2)``: the centre (row, column) of each frame's content, its
    intensity above the frame's darkest value as weight (NaN where a frame is flat: no content)."""
    grey = frames.float().mean(-3)
    grey = grey - grey.amin((-2, -1), keepdim=True)  # (..., H, W)
    mass = grey.sum((-2, -1))
    rows = torch.arange(grey.shape[-2], dtype=grey.dtype, device=grey.device)
    cols = torch.arange(grey.shape[-1], dtype=grey.dtype, device=grey.device)
    centre = torch.stack([(grey.sum(-1) * rows).sum(-1), (grey.sum(-2) * cols).sum(-1)], -1) / mass[..., None]
    return torch.where((mass > 1e-6)[..., None], centre, float("nan"))


def on_flat_background(frames: Tensor, min_background: float = 0.5) -> bool:
    """Whether ``frames: (N, T, C, H, W)`` are objects on a flat background: in the median frame at least
    ``min_background`` of the pixels lie within 5% of the frame's range of its darkest value. A scene that fills
    the frame is not: its content centre stays near the middle whatever moves."""
    grey = frames.float().mean(-3).flatten(0, -3)  # (N T, H, W)
    above = grey - grey.amin((-2, -1), keepdim=True)  # intensity above the frame's darkest value
    background = (above <= 0.05 * above.amax((-2, -1), keepdim=True)).float().mean((-2, -1))  # (N T,)
    return bool(background.median() >= min_background)


def content_walls(clips: Tensor, quantile: float = 0.001, max_clips: int = 2000,
                  min_background: float = 0.5) -> tuple[float, float, float, float] | None:
    """Where content stays: ``(row low, row high, column low, column high)``, the ``quantile`` and
    ``1 - quantile`` of the content centres of every frame of (the first ``max_clips`` of) ``clips: (N, T, C,
    H, W)``. On Moving MNIST the digit's centre turns back there (its 28-pixel box meets the canvas's edge).

    None (nothing to bounce at) where no frame has content, or where the clips are not objects on a flat
    background (:func:`on_flat_background`): the centre of a scene that fills the frame stays near the middle
    whatever moves, and walls there would fold every move of the camera."""
    frames = clips[:max_clips].float()
    centre = content_centre(frames).flatten(0, -2)  # (N T, 2)
    centre = centre[~centre.isnan().any(1)].double()
    if len(centre) == 0 or not on_flat_background(frames, min_background):
        return None
    lo, hi = torch.quantile(centre, quantile, dim=0), torch.quantile(centre, 1 - quantile, dim=0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def content_speed(clips: Tensor, max_clips: int = 2000, spread: float = 0.1, min_speed: float = 0.25,
                  min_background: float = 0.5) -> float | None:
    """The one speed (pixels per frame) at which content moves in ``clips: (N, T, C, H, W)``, if they share one.

    Per clip, the mean of the middle half of its frame-to-frame moves of the content centre (a bounce's short
    move and the steps of content drawn at whole pixels, 1 and 2 for 1.5, fall outside it or average out); the
    median over (the first ``max_clips``) clips. None unless the clips agree (the interquartile range of their
    speeds under ``spread`` of the median: Moving MNIST draws every digit at one speed, 1.5 px a frame at
    32x32, and measures 1.52 with a range of 4%), move (median at least ``min_speed``), and are objects on a flat
    background (:func:`on_flat_background`)."""
    frames = clips[:max_clips].float()
    if frames.shape[1] < 3 or not on_flat_background(frames, min_background):
        return None
    centre = content_centre(frames).double()  # (N, T, 2)
    centre = centre[~centre.isnan().any(-1).any(-1)]
    if len(centre) == 0:
        return None
    moves = (centre[:, 1:] - centre[:, :-1]).norm(dim=-1).sort(1).values  # (N, T - 1)
    k = moves.shape[1]
    per_clip = moves[:, k // 4:k - k // 4].mean(1)
    q1, median, q3 = torch.quantile(per_clip, torch.tensor([0.25, 0.5, 0.75], dtype=per_clip.dtype))
    if median < min_speed or q3 - q1 > spread * median:
        return None
    return float(median)


def reflect(pos: Tensor, lo: Tensor | float, hi: Tensor | float) -> Tensor:
    """``pos`` folded into ``[lo, hi]`` as a point bouncing between two walls (a triangle wave of period
    ``2 (hi - lo)``); positions inside stay; with ``hi <= lo`` the point stays at ``lo``."""
    span = torch.as_tensor(hi, dtype=pos.dtype, device=pos.device) - lo
    width = span.clamp(min=1e-6)
    u = torch.remainder(pos - lo, 2 * width)
    return torch.where(span > 0, lo + torch.where(u <= width, u, 2 * width - u), lo + torch.zeros_like(pos))


def bounced_between(start: Tensor, end: Tensor, gap: Tensor, frac: Tensor, lo: Tensor, hi: Tensor,
                    speed: float) -> Tensor:
    """Where content that bounces between ``lo`` and ``hi`` (per axis, ``(2,)``) at ``speed`` pixels a frame is
    at ``frac`` of the way from ``start`` to ``end`` (``(..., 2)`` content centres ``gap`` frames apart): the
    method of images. Unfolded, the bouncing path is a straight line from ``start`` to one of the images of
    ``end`` (``end + 2kL`` or ``2 lo - end + 2kL`` per axis, ``L = hi - lo``); the line whose length over the
    gap is nearest the speed is the path, folded back by :func:`reflect`. ``gap, frac: (...)``."""
    span = (hi - lo).clamp(min=1e-6)  # (2,)
    reach = int(math.ceil(speed * float(gap.max()) / (2 * float(span.min())))) + 1  # images far enough to reach
    k = torch.arange(-reach, reach + 1, dtype=start.dtype, device=start.device)
    images = torch.cat([end[..., None] + 2 * k * span[:, None],
                        2 * lo[:, None] - end[..., None] + 2 * k * span[:, None]], -1)  # (..., 2, M)
    d = images - start[..., None]
    m = d.shape[-1]
    length = (d[..., 0, :, None] ** 2 + d[..., 1, None, :] ** 2).sqrt()  # (..., M, M): rows' image x columns'
    best = (length / gap[..., None, None].clamp(min=1) - speed).abs().flatten(-2).argmin(-1)  # (...)
    dy = d[..., 0, :].gather(-1, (best // m)[..., None])[..., 0]
    dx = d[..., 1, :].gather(-1, (best % m)[..., None])[..., 0]
    return reflect(start + torch.stack([dy, dx], -1) * frac[..., None], lo, hi)


def bounce_shift(shift: Tensor, fill: Tensor, cond: Tensor, walls: tuple[float, ...],
                 speed: float | None = None) -> Tensor:
    """``shift: (B, T, 2)`` (:func:`known_shift`) with the moves beyond the known frames (after the last one,
    before the first) reflected at ``walls`` (:func:`content_walls`): the content of ``fill: (B, T, C, H, W)``
    (the frame each one is moved from) goes to ``reflect(centre + shift)`` instead of ``centre + shift``.
    Between known frames the straight move is left as it is, unless ``speed`` (:func:`content_speed`) says how
    far content went in between: then the path that bounces from one known frame to the next at that speed
    (:func:`bounced_between`; a digit 15 frames apart from itself has bounced in most clips)."""
    mask = cond[:, :, -1, 0, 0] > 0.5  # (B, T)
    frames = mask.shape[1]
    before, after = known_neighbours(mask)
    outside = ((before < 0) | (after >= frames)) & mask.any(1, keepdim=True)
    with torch.no_grad():
        centre = content_centre(fill)  # (B, T, 2)
        lo = shift.new_tensor([walls[0], walls[2]])
        hi = shift.new_tensor([walls[1], walls[3]])
        bounced = reflect(centre + shift, lo, hi) - centre
        out = torch.where(outside[..., None] & ~centre.isnan(), bounced, shift)
        between = (before >= 0) & (after < frames) & ~mask
        if speed is None or not between.any():
            return out
        rows = torch.arange(len(mask), device=mask.device)[:, None]
        end = content_centre(cond[rows, after.clamp(max=frames - 1), :-1])  # (B, T, 2): the next known frame's
        idx = torch.arange(frames, device=mask.device)
        gap = (after - before).to(shift.dtype)
        frac = (idx - before).to(shift.dtype) / gap.clamp(min=1)
        path = bounced_between(centre.nan_to_num(), end.nan_to_num(), gap, frac, lo, hi, speed)
        use = between[..., None] & ~centre.isnan() & ~end.isnan()
    return torch.where(use, path - centre, out)


def moved_known(cond: Tensor, fill: Tensor, steady: bool = True, walls: tuple[float, ...] | None = None,
                speed: float | None = None) -> Tensor:
    """``fill: (B, T, C, H, W)``, the nearest known frame at every frame (:func:`..model.nearest_known`), moved
    by the clip's estimated motion (at ``speed`` and reflected at ``walls`` beyond the known frames,
    :func:`known_motion`, :func:`bounce_shift`); known frames stay exactly as given, and nothing known stays
    zeros."""
    shift = known_shift(cond, steady, speed)
    if walls is not None:
        shift = bounce_shift(shift, fill, cond, walls, speed)
    with torch.no_grad(), torch.autocast(fill.device.type, enabled=False):  # an input: float32, no gradient
        moved = translate(fill.float().flatten(0, 1), shift.flatten(0, 1)).view_as(fill).to(fill.dtype)
    mask = cond[:, :, -1:, :1, :1] > 0.5  # (B, T, 1, 1, 1)
    return torch.where(mask, fill, moved) * mask.any(1, keepdim=True).to(fill.dtype)


__all__ = ["at_speed", "bounce_shift", "bounced_between", "content_centre", "content_speed", "content_walls",
           "known_motion", "known_shift", "moved_known", "on_flat_background", "phase_shift", "reflect",
           "shift_mixture", "shift_prior", "steady_velocity", "translate"]

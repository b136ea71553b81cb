"""Known frames: which frames of a clip are given, the condition built from them, what every frame has of
them (the nearest known frame, the distances to the known frames), and sampling that keeps them.

A mask ``(B, T)`` marks the known frames. In training each clip draws one: none known
(unconditional, 25%), a prefix of 1..T-1 frames (prediction, 40%), the first and last frames
(interpolation, 15%), or a random subset (20%); the loss counts only the unknown frames. The
condition is ``(B, T, C + 1, H, W)``: the known frames (zero elsewhere) and the mask as a channel;
the empty mask is the null condition, so classifier-free guidance over the known frames works as
for labels. Clips longer than the model's T are made block by block, each block given the last
frames of the one before.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError

MASK_SHARES = {"none": 0.25, "prefix": 0.40, "ends": 0.15, "subset": 0.20}


def draw_masks(b: int, frames: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """``(b, frames)`` bool masks from the training mixture (:data:`MASK_SHARES`)."""
    u = torch.rand(b, generator=generator, device=device)  # which kind
    k = torch.randint(1, frames, (b,), generator=generator, device=device)  # prefix length 1..T-1
    subset = torch.rand(b, frames, generator=generator, device=device) < 0.5
    idx = torch.arange(frames, device=device)[None]
    prefix = idx < k[:, None]
    ends = (idx == 0) | (idx == frames - 1)
    edges = torch.tensor(list(MASK_SHARES.values()), device=device).cumsum(0)
    kind = torch.bucketize(u, edges, right=True)[:, None]  # 0 none, 1 prefix, 2 ends, 3 subset
    mask = torch.where(kind == 1, prefix, torch.where(kind == 2, ends, torch.where(kind == 3, subset, False)))
    full = mask.all(1)  # a subset can draw every frame: then nothing is left to learn; drop the last
    mask[full, -1] = False
    return mask


def make_condition(known: Tensor, mask: Tensor) -> Tensor:
    """``known: (B, T, C, H, W)``, ``mask: (B, T)`` -> the condition ``(B, T, C + 1, H, W)``."""
    m = mask.to(known.dtype)[:, :, None, None, None]  # (B, T, 1, 1, 1)
    return torch.cat([known * m, m.expand(-1, -1, 1, *known.shape[3:])], dim=2)


def known_neighbours(mask: Tensor) -> tuple[Tensor, Tensor]:
    """``mask: (B, T)`` -> ``(before, after)``, each ``(B, T)``: the last known index <= t (-1 where none)
    and the first known index >= t (T where none)."""
    frames = mask.shape[1]
    idx = torch.arange(frames, device=mask.device).expand_as(mask)
    before = torch.where(mask, idx, -1).cummax(1).values
    after = torch.where(mask, idx, frames).flip(1).cummin(1).values.flip(1)
    return before, after


def unknown_weight(cond: Tensor) -> Tensor:
    """Loss weights ``(B, T, 1, 1, 1)``: 1 on unknown frames, 0 on known ones (the mask channel is last)."""
    return 1 - cond[:, :, -1:, :1, :1]


def training_condition(x1: Tensor, cond: Tensor | None, generator: torch.Generator) -> Tensor:
    """A batch's condition drawn from its clips ``x1: (B, T, C, H, W)`` (``cond`` is unused: clips carry theirs)."""
    return make_condition(x1, draw_masks(x1.shape[0], x1.shape[1], generator, x1.device))


def parse_known(text: str, frames: int) -> list[int]:
    """``--known 0,15`` -> frame indices, checked against ``frames``."""
    try:
        idx = sorted({int(v) for v in text.split(",")})
    except ValueError:
        raise UserError(f"--known takes frame indices i,j,... (from 0); got {text!r}") from None
    bad = [i for i in idx if not 0 <= i < frames]
    if bad:
        raise UserError(f"--known frame(s) {bad} out of range: clips have frames 0..{frames - 1}")
    if len(idx) == frames:
        raise UserError(f"--known gives all {frames} frames: nothing is left to generate")
    return idx


def known_mask(n: int, frames: int, *, context_frames: int | None = None, known: list[int] | None = None) -> Tensor:
    """``(n, frames)``: a prefix of ``context_frames`` or the frames ``known`` (none: unconditional)."""
    mask = torch.zeros(n, frames, dtype=torch.bool)
    if context_frames is not None:
        if not 1 <= context_frames < frames:
            raise UserError(f"--context-frames must be 1..{frames - 1} (the run's clips have {frames} frames), "
                            f"got {context_frames}")
        mask[:, :context_frames] = True
    if known:
        mask[:, known] = True
    return mask


def nearest_known(cond: Tensor) -> Tensor:
    """``cond: (B, T, C + 1, H, W)`` -> ``(B, T, C, H, W)``: at every frame the nearest known frame before
    it (itself if known), else the first known frame after it; zeros where nothing is known."""
    known, mask = cond[:, :, :-1], cond[:, :, -1, 0, 0] > 0.5  # (B, T, C, H, W), (B, T)
    frames = mask.shape[1]
    before, after = known_neighbours(mask)
    src = torch.where(before >= 0, before, after).clamp(max=frames - 1)  # (B, T)
    fill = known.gather(1, src[:, :, None, None, None].expand_as(known))
    return fill * mask.any(1).to(fill.dtype)[:, None, None, None, None]


def known_distance(cond: Tensor, scale: int) -> Tensor:
    """``cond: (B, T, C + 1, H, W)`` -> ``(B, T, 2)``: at every frame the number of frames since the previous
    known frame and until the next one (0 at a known frame), divided by ``scale`` (the training length, so a
    distance means the same on longer clips); -1 where there is no such frame."""
    mask = cond[:, :, -1, 0, 0] > 0.5  # (B, T)
    frames = mask.shape[1]
    idx = torch.arange(frames, device=cond.device).expand_as(mask)
    before, after = known_neighbours(mask)
    since = torch.where(before >= 0, (idx - before).to(cond.dtype) / scale, -1.0)
    until = torch.where(after < frames, (after - idx).to(cond.dtype) / scale, -1.0)
    return torch.stack([since, until], -1)

"""What every noise2data model does with its condition: one embedding of time plus label.

Labels are integers ``0..num_classes - 1``; ``num_classes`` itself is the reserved null label
(no condition), used for classifier-free guidance and for sampling without a label.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import UserError
from .embeddings import make_time_embedding


def resolve_labels(cond: Tensor | None, batch: int, num_classes: int, device: torch.device) -> Tensor | None:
    """Checked labels ``(B,)`` (the null label when ``cond`` is None), or None for an unconditional model."""
    if not num_classes:
        if cond is not None:
            raise UserError("this model was trained without labels; sample it without a condition")
        return None
    if cond is None:  # unconditional: the reserved null label
        return torch.full((batch,), num_classes, device=device, dtype=torch.long)
    if cond.shape != (batch,) or cond.dtype.is_floating_point:
        raise UserError(f"labels must be integers of shape ({batch},), got {cond.dtype} {tuple(cond.shape)}")
    if int(cond.min()) < 0 or int(cond.max()) > num_classes:
        raise UserError(f"labels must lie in 0..{num_classes - 1} (or {num_classes} for 'no label'), "
                        f"got {int(cond.min())}..{int(cond.max())}")
    return cond


class Conditioning(nn.Module):
    """``(t: (B,), cond: (B,) | None) -> (B, dim)``: embedded time, plus the embedded label if any."""

    def __init__(self, time_embedding: str, time_dim: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.time_embed = make_time_embedding(time_embedding, time_dim)
        self.embed_mlp = nn.Sequential(nn.Linear(time_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.class_embed = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: Tensor, cond: Tensor | None) -> Tensor:
        e = self.embed_mlp(self.time_embed(t))
        labels = resolve_labels(cond, len(t), self.num_classes, e.device)
        return e if labels is None else e + self.class_embed(labels)

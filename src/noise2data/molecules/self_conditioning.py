"""Self-conditioning (Chen, Zhang and Hinton 2022): the EGNN also reads its own earlier estimate of the molecule.

A network that predicts the clean molecule ``x1`` can be handed the estimate it made a moment ago
(``EGNN.forward(..., x1_prev=...)``, entering through the estimate's atom types and pair distances,
so the network stays equivariant), and refine it instead of starting over at each step.

* Training (:func:`self_conditioned_prediction`, the modality's ``predict`` hook): on a share ``SHARE``
  of the batches the network first estimates ``x1`` with no estimate (zeros), without gradient, and is
  trained on its prediction given that estimate; the other batches train the estimate-free prediction,
  which sampling's first evaluation needs. One coin per batch, drawn from the training generator, so
  every process of a torchrun job and a resumed run decide alike.
* Sampling (:func:`recycling`): each evaluation hands the next its estimate. One :class:`Recycling` per
  field, so a guided sampler's conditional and null fields each keep their own.
* A likelihood needs a field of ``(x, t)`` alone: it uses the estimate-free prediction (``x1_prev``
  None), which the network learned on the other share of the batches.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SHARE = 0.5  # of the batches trained with an estimate (the usual choice)


def self_conditioned_prediction(model: nn.Module, x_t: Tensor, t: Tensor, cond: Tensor | None,
                                generator: torch.Generator, share: float = SHARE) -> Tensor:
    """The prediction ``(B, N, 3 + T)`` a training step regresses: with probability ``share`` (one coin for the
    batch) given the network's own no-gradient estimate from ``x_t``, otherwise given none."""
    coin = torch.rand((), generator=generator, device=x_t.device)  # drawn every step: the stream stays aligned
    if float(coin) >= share:
        return model(x_t, t, cond)
    with torch.no_grad():
        first = model(x_t, t, cond)
    return model(x_t, t, cond, x1_prev=first.detach())


class Recycling(nn.Module):
    """``model`` fed its previous output: ``forward(x, t, cond, r)`` passes ``x1_prev`` = the last estimate
    (none at the first call, or when the batch's shape changes)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.prev: Tensor | None = None

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, r: Tensor | None = None) -> Tensor:
        prev = self.prev if self.prev is not None and self.prev.shape == x.shape else None
        out = self.model(x, t, cond, r, x1_prev=prev)
        self.prev = out.detach()
        return out


def is_self_conditioned(model: nn.Module) -> bool:
    return bool(getattr(getattr(model, "config", None), "self_condition", False))


def recycling(model: nn.Module) -> nn.Module:
    """A fresh :class:`Recycling` around a self-conditioned network (one per sampled field); others as they are."""
    return Recycling(model) if is_self_conditioned(model) else model


__all__ = ["SHARE", "Recycling", "is_self_conditioned", "recycling", "self_conditioned_prediction"]

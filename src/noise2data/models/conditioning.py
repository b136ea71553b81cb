"""What every noise2data model does with its condition: one embedding of time plus condition.

Two kinds of condition, one per model:

- class labels, integers ``(B,)`` in ``0..num_classes - 1``; ``num_classes`` itself is the
  reserved null label (no condition), used for classifier-free guidance;
- vectors ``y: (B, cond_dim)`` of real numbers (attributes), embedded by a small MLP; a row of
  NaN is the null condition, which maps to a learned embedding of its own.

Every check of a condition (training data, a model's input, guidance) goes through
:func:`check_condition`, so the rules are stated once.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import UserError
from .embeddings import make_time_embedding


def condition_kind(model: nn.Module) -> tuple[int, int]:
    """``(num_classes, cond_dim)`` of a model (both 0 for an unconditional one)."""
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "num_classes", 0) or 0), int(getattr(cfg, "cond_dim", 0) or 0)


def check_condition_sizes(num_classes: int, cond_dim: int) -> None:
    """A model takes class labels (``num_classes > 0``) or vectors (``cond_dim > 0``), or neither."""
    if num_classes < 0 or cond_dim < 0:
        raise UserError(f"num_classes and cond_dim must be >= 0, got {num_classes} and {cond_dim}")
    if num_classes and cond_dim:
        raise UserError("a model takes either class labels or vector conditions, not both "
                        f"(got num_classes={num_classes}, cond_dim={cond_dim})")


def check_condition(cond: Tensor, n: int, num_classes: int, cond_dim: int, *, allow_null: bool,
                    what: str = "condition") -> Tensor:
    """Validate ``cond`` for ``n`` samples against a model's kind; returns it unchanged.

    Labels: integers ``(n,)`` in ``0..num_classes - 1`` (``num_classes``, the null label, only
    with ``allow_null``). Vectors: floats ``(n, cond_dim)``, finite (rows entirely NaN, the null
    condition, only with ``allow_null``).
    """
    if not num_classes and not cond_dim:
        raise UserError(f"a {what} was given but the model is unconditional: train it with labels "
                        "(--labels/--cond label) or vector conditions (--cond-file), or sample without one")
    if num_classes:
        if cond.shape != (n,) or cond.dtype.is_floating_point or cond.dtype == torch.bool:
            raise UserError(f"class labels must be {n} integers, one per sample; got {cond.dtype} "
                            f"{tuple(cond.shape)}")
        top = num_classes if allow_null else num_classes - 1
        if n and (int(cond.min()) < 0 or int(cond.max()) > top):
            null = f" (or {num_classes} for 'no label')" if allow_null else ""
            raise UserError(f"class labels must lie in 0..{num_classes - 1}{null} for this model, got "
                            f"{int(cond.min())}..{int(cond.max())}")
        return cond
    if cond.shape != (n, cond_dim) or not cond.dtype.is_floating_point:
        raise UserError(f"vector conditions must be floats of shape ({n}, {cond_dim}), got {cond.dtype} "
                        f"{tuple(cond.shape)}")
    nan = torch.isnan(cond)
    null_rows = nan.all(1)
    if not allow_null and null_rows.any():
        raise UserError(f"{int(null_rows.sum())} condition rows are NaN: every sample needs a finite condition")
    bad = (nan & ~null_rows[:, None]) | torch.isinf(cond)
    if bad.any():
        row = int(bad.any(1).nonzero()[0])
        raise UserError(f"condition row {row} has NaN/Inf entries: conditions must be finite "
                        "(a row that is entirely NaN means 'no condition')")
    return cond


def null_condition(cond: Tensor, num_classes: int) -> Tensor:
    """The null condition shaped like ``cond``: the null label, or rows of NaN."""
    if num_classes:
        return torch.full_like(cond, num_classes)
    return torch.full_like(cond, float("nan"))


def drop_condition(cond: Tensor, p: float, num_classes: int, generator: torch.Generator) -> Tensor:
    """Replace each sample's condition by the null one with probability ``p`` (classifier-free guidance)."""
    drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < p  # (B,)
    mask = drop.view(-1, *([1] * (cond.ndim - 1)))
    return torch.where(mask, null_condition(cond, num_classes), cond)


def check_end_time(r: Tensor | None, t: Tensor, mean_flow: bool) -> Tensor | None:
    """Validate a second time ``r: (B,)`` (the end of a jump from ``t``) for a model with or without one."""
    if r is None:
        return None
    if not mean_flow:
        raise UserError("this model predicts an instantaneous velocity and takes no end time r: train it with "
                        "--objective meanflow (or distill it: noise2data distill) for jumps over [t, r]")
    if r.shape != t.shape:
        raise UserError(f"the end times r must match t, {tuple(t.shape)}; got {tuple(r.shape)}")
    return r


class Conditioning(nn.Module):
    """``(t: (B,), cond, r=None) -> (B, dim)``: embedded time, plus the embedded condition if any.

    ``cond`` is None (the null condition), labels ``(B,)`` (``num_classes > 0``) or vectors
    ``(B, cond_dim)`` (``cond_dim > 0``). With ``mean_flow``, the model also takes the end ``r: (B,)``
    of the interval [t, r] its average velocity spans (MeanFlow); the gap ``r - t`` gets an embedding
    of its own whose last layer starts at zero, so a new mean-flow model (or one initialised from a
    flow model's weights) starts as u(x, t, r) = v(x, t). ``r = None`` means ``r = t``.
    """

    def __init__(self, time_embedding: str, time_dim: int, dim: int, num_classes: int = 0, cond_dim: int = 0,
                 mean_flow: bool = False) -> None:
        super().__init__()
        check_condition_sizes(num_classes, cond_dim)
        self.num_classes, self.cond_dim = num_classes, cond_dim
        self.time_embed = make_time_embedding(time_embedding, time_dim)
        self.embed_mlp = nn.Sequential(nn.Linear(time_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.gap_mlp = None
        if mean_flow:
            self.gap_mlp = nn.Sequential(nn.Linear(time_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
            nn.init.zeros_(self.gap_mlp[-1].weight)
            nn.init.zeros_(self.gap_mlp[-1].bias)
        self.class_embed = nn.Embedding(num_classes + 1, dim) if num_classes else None
        self.vector_embed = (nn.Sequential(nn.Linear(cond_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
                             if cond_dim else None)
        self.null_embed = nn.Parameter(torch.zeros(dim)) if cond_dim else None

    def forward(self, t: Tensor, cond: Tensor | None, r: Tensor | None = None) -> Tensor:
        e = self.embed_mlp(self.time_embed(t))  # (B, dim)
        if self.gap_mlp is not None:
            r = check_end_time(r, t, True)
            e = e + self.gap_mlp(self.time_embed(r - t if r is not None else torch.zeros_like(t)))
        else:
            check_end_time(r, t, False)
        b = len(t)
        if not self.num_classes and not self.cond_dim:
            if cond is not None:
                raise UserError("this model was trained without a condition; sample it without one")
            return e
        if self.num_classes:
            if cond is None:
                cond = torch.full((b,), self.num_classes, device=e.device, dtype=torch.long)
            check_condition(cond, b, self.num_classes, 0, allow_null=True)
            return e + self.class_embed(cond)
        if cond is None:
            return e + self.null_embed
        check_condition(cond, b, 0, self.cond_dim, allow_null=True)
        null = torch.isnan(cond).all(1, keepdim=True)  # (B, 1)
        y = self.vector_embed(torch.nan_to_num(cond, nan=0.0).to(e.dtype))
        return e + torch.where(null, self.null_embed.to(e.dtype), y)

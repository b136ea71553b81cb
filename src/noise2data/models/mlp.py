"""A residual MLP over flattened data of any shape, conditioned on time (and a class label)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from .conditioning import Conditioning, check_condition_sizes
from .embeddings import TIME_EMBEDDINGS


@dataclass(frozen=True)
class MLPConfig:
    """Everything that rebuilds an :class:`MLP`.

    Attributes:
        data_shape: the shape ``D`` of one sample (the model flattens it).
        hidden: width of the hidden layers.
        depth: number of residual blocks.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        time_dim: size of the time embedding.
        num_classes: number of class labels for conditional models (0: unconditional). Label
            ``num_classes`` is reserved as the "no label" class for classifier-free guidance.
        cond_dim: size of a vector condition ``y: (B, cond_dim)`` (0: none); a NaN row is "no condition".
        mean_flow: also take the end time ``r`` of a jump and predict the average velocity over [t, r]
            (``--objective meanflow``; see :mod:`noise2data.meanflow`).
        x_octaves: K > 0 feeds the network sin and cos of pi 2^k x for k < K beside each coordinate
            (fixed frequencies: positional encoding), so it can resolve structure finer than its
            smooth layers do; for low-dimensional data (the input grows by 2K per coordinate).
    """

    data_shape: tuple[int, ...]
    hidden: int = 256
    depth: int = 4
    time_embedding: str = "sinusoidal"
    time_dim: int = 64
    num_classes: int = 0
    cond_dim: int = 0
    mean_flow: bool = False
    x_octaves: int = 0
    name: str = field(default="mlp", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_shape", tuple(int(s) for s in self.data_shape))
        if not self.data_shape or any(s < 1 for s in self.data_shape):
            raise UserError(f"data_shape must be a non-empty tuple of positive sizes, got {self.data_shape}")
        if self.hidden < 1 or self.depth < 1:
            raise UserError(f"MLP needs hidden >= 1 and depth >= 1, got hidden={self.hidden}, depth={self.depth}")
        if self.x_octaves < 0:
            raise UserError(f"MLP x_octaves must be >= 0, got {self.x_octaves}")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise UserError(f"unknown time embedding '{self.time_embedding}': expected one of "
                            f"{', '.join(TIME_EMBEDDINGS)}")
        check_condition_sizes(self.num_classes, self.cond_dim)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_shape"] = list(self.data_shape)
        return d


class MLP(nn.Module):
    """``forward(x, t, cond=None)``: ``x: (B, *D)``, ``t: (B,)``, ``cond``: labels ``(B,)`` or vectors ``(B, k)``.

    h = W_in x; each block adds ``W_i silu(h + E_i(e))`` where ``e`` embeds time (plus the label);
    the output layer starts at zero, so an untrained model predicts 0.
    """

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        d, h = math.prod(config.data_shape), config.hidden
        self.cond = Conditioning(config.time_embedding, config.time_dim, h, config.num_classes, config.cond_dim,
                                 config.mean_flow)
        self.inp = nn.Linear(d * (1 + 2 * config.x_octaves), h)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(config.x_octaves), persistent=False)
        self.block_embed = nn.Linear(h, h * config.depth)  # one matmul for every block's embedding
        self.blocks = nn.ModuleList(nn.Linear(h, h) for _ in range(config.depth))
        self.norm = nn.LayerNorm(h)
        self.out = nn.Linear(h, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def features(self, x: Tensor) -> Tensor:
        """``(B, d) -> (B, d (1 + 2K))``: the coordinates, then sin and cos of each at the K octaves."""
        if not self.config.x_octaves:
            return x
        z = (x[:, :, None] * self.freqs.to(x.dtype)).flatten(1)  # (B, d K)
        return torch.cat([x, torch.sin(z), torch.cos(z)], dim=1)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, r: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        if x.shape[1:] != self.config.data_shape:
            raise UserError(f"model expects samples of shape {self.config.data_shape}, got {tuple(x.shape[1:])}")
        e = nn.functional.silu(self.cond(t, cond, r))  # (B, H)
        embs = self.block_embed(e).chunk(self.config.depth, dim=1)  # depth x (B, H)
        h = self.inp(self.features(x.reshape(b, -1)))  # (B, H)
        for block, e_i in zip(self.blocks, embs, strict=True):
            h = h + block(nn.functional.silu(h + e_i))
        return self.out(nn.functional.silu(self.norm(h))).reshape(x.shape)  # (B, *D)

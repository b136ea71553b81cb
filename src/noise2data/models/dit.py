"""A diffusion transformer (DiT) for images ``(B, C, H, W)``.

The image is cut into ``patch x patch`` squares, each a token; the tokens get positions (fixed
2-D sine-cosine or learned), pass through Transformer blocks whose LayerNorms are modulated by the
time (+ condition) embedding, and are put back together. Conditioning is adaLN-Zero: every block
computes shift, scale and a gate for its attention and MLP branches from the embedding, and the
gates start at zero, so each block starts as the identity and the untrained model predicts 0.

H and W must be divisible by ``patch``; the config says so when they are not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from .attention import self_attention
from .conditioning import Conditioning, check_condition_sizes
from .embeddings import TIME_EMBEDDINGS

PRESETS = {  # tiny for a 2-core CPU; small and base are DiT-S and DiT-B (hidden, depth, heads)
    "tiny": {"patch": 4, "hidden": 128, "depth": 4, "heads": 4},
    "small": {"patch": 2, "hidden": 384, "depth": 12, "heads": 6},
    "base": {"patch": 2, "hidden": 768, "depth": 12, "heads": 12},
}
POSITIONS = ("sincos", "learned")


@dataclass(frozen=True)
class DiTConfig:
    """Everything that rebuilds a :class:`DiT`.

    Attributes:
        data_shape: ``(C, H, W)`` of one image.
        patch: side of the square patches (tokens); divides H and W.
        hidden, depth, heads: Transformer width, blocks and attention heads (``hidden % heads == 0``).
        mlp_ratio: width of the blocks' MLP relative to ``hidden``.
        positions: ``"sincos"`` (fixed 2-D sine-cosine) or ``"learned"``.
        num_classes, cond_dim: class labels or a vector condition (see :mod:`.conditioning`).
        mean_flow: also take the end time ``r`` of a jump and predict the average velocity over [t, r]
            (``--objective meanflow``; see :mod:`noise2data.meanflow`).
    """

    data_shape: tuple[int, ...]
    patch: int = 4
    hidden: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    positions: str = "sincos"
    time_embedding: str = "sinusoidal"
    time_dim: int = 128
    num_classes: int = 0
    cond_dim: int = 0
    mean_flow: bool = False
    name: str = field(default="dit", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_shape", tuple(int(s) for s in self.data_shape))
        if len(self.data_shape) != 3:
            raise UserError(f"the DiT takes images (C, H, W), got samples of shape {self.data_shape}: "
                            "use the mlp model for vectors")
        _, h, w = self.data_shape
        if self.patch < 1 or h % self.patch or w % self.patch:
            fits = [p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]
            raise UserError(f"DiT patch size {self.patch} must divide the image size {h}x{w}: use one of "
                            f"{fits} or pad the images")
        if self.hidden < 1 or self.depth < 1 or self.heads < 1 or self.hidden % self.heads:
            raise UserError(f"the DiT needs hidden divisible by heads (got {self.hidden} and {self.heads}) "
                            f"and depth >= 1 (got {self.depth})")
        if self.positions not in POSITIONS:
            raise UserError(f"unknown DiT positions '{self.positions}': expected one of {', '.join(POSITIONS)}")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise UserError(f"unknown time embedding '{self.time_embedding}'")
        check_condition_sizes(self.num_classes, self.cond_dim)
        if self.hidden % 4 and self.positions == "sincos":
            raise UserError(f"sine-cosine positions need hidden divisible by 4, got {self.hidden}")

    @classmethod
    def preset(cls, name: str, data_shape: tuple[int, ...], **overrides) -> DiTConfig:
        """A named size (tiny, small, base) for images of ``data_shape``."""
        if name not in PRESETS:
            raise UserError(f"unknown DiT preset '{name}': expected one of {', '.join(PRESETS)}")
        return cls(data_shape=data_shape, **{**PRESETS[name], **overrides})

    @property
    def grid(self) -> tuple[int, int]:
        """Tokens along H and W."""
        return self.data_shape[1] // self.patch, self.data_shape[2] // self.patch

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_shape"] = list(self.data_shape)
        return d


def sincos_positions(dim: int, gh: int, gw: int) -> Tensor:
    """Fixed 2-D positions ``(gh * gw, dim)``: half the channels encode the row, half the column."""
    def one_axis(n: int, d: int) -> Tensor:
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(d // 2, dtype=torch.float64) / (d // 2))
        args = torch.arange(n, dtype=torch.float64)[:, None] * freqs[None]  # (n, d / 2)
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (n, d)

    rows, cols = one_axis(gh, dim // 2), one_axis(gw, dim // 2)
    pos = torch.cat([rows[:, None].expand(gh, gw, -1), cols[None].expand(gh, gw, -1)], dim=-1)
    return pos.reshape(gh * gw, dim).float()


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``x: (B, T, H)`` with per-sample ``shift, scale: (B, H)``."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Pre-norm attention and MLP, each shifted, scaled and gated by the embedding (adaLN-Zero)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden))
        self.ada = nn.Linear(hidden, 6 * hidden)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(e).chunk(6, dim=1)  # (B, H) each
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1[:, None] * self_attention(self.attn, h)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """``forward(x, t, cond=None)``: ``x: (B, C, H, W)``, ``t: (B,)``, ``cond``: labels ``(B,)`` or vectors
    ``(B, k)`` -> ``(B, C, H, W)``."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        c, p, hid = config.data_shape[0], config.patch, config.hidden
        gh, gw = config.grid
        self.embed = nn.Conv2d(c, hid, p, stride=p)  # (B, C, H, W) -> (B, hid, gh, gw)
        if config.positions == "learned":
            self.pos = nn.Parameter(0.02 * torch.randn(gh * gw, hid))
        else:
            self.register_buffer("pos", sincos_positions(hid, gh, gw), persistent=False)
        self.cond = Conditioning(config.time_embedding, config.time_dim, hid, config.num_classes, config.cond_dim,
                                 config.mean_flow)
        self.blocks = nn.ModuleList(DiTBlock(hid, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(hid, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(hid, 2 * hid)
        self.out = nn.Linear(hid, p * p * c)
        for lin in (self.ada_out, self.out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, r: Tensor | None = None) -> Tensor:
        if tuple(x.shape[1:]) != self.config.data_shape:
            raise UserError(f"model expects images of shape {self.config.data_shape}, got {tuple(x.shape[1:])}")
        b, (c, h, w), p = x.shape[0], self.config.data_shape, self.config.patch
        gh, gw = self.config.grid
        e = nn.functional.silu(self.cond(t, cond, r))  # (B, hid)
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, T, hid), T = gh * gw
        for block in self.blocks:
            tokens = block(tokens, e)
        shift, scale = self.ada_out(e).chunk(2, dim=1)
        out = self.out(modulate(self.norm_out(tokens), shift, scale))  # (B, T, p * p * C)
        out = out.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, p, gw, p)
        return out.reshape(b, c, h, w)


def describe(config: DiTConfig) -> str:
    """One line: tokens, width and depth."""
    gh, gw = config.grid
    return (f"DiT {gh}x{gw} tokens of {config.patch}x{config.patch} px, width {config.hidden}, "
            f"{config.depth} blocks, {config.heads} heads, {config.positions} positions")


__all__ = ["PRESETS", "DiT", "DiTConfig", "describe", "sincos_positions"]

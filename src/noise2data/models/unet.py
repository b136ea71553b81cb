"""A U-Net for images ``(B, C, H, W)``: residual blocks with GroupNorm, self-attention at low
resolution, and the time (+ label) embedding injected into every block as a scale and shift.

An optional space-to-depth stem (``patch`` p) folds each p x p block of pixels into channels, so the
network runs on ``(C * p * p, H / p, W / p)`` and unfolds its output the same way: no information is
lost, and every convolution sees p^2 times fewer positions. Levels then halve the resolution
``len(channel_mults) - 1`` times, so H and W must be divisible by ``patch * 2 ** (len(channel_mults) - 1)``;
the config says so when they are not (pad 28 -> 32 or use fewer levels). The output convolution starts
at zero, so an untrained model predicts 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from .attention import self_attention
from .conditioning import Conditioning, check_condition_sizes
from .embeddings import TIME_EMBEDDINGS

PRESETS = {  # sized for a 2-core CPU (tiny), a laptop GPU (small) and a data-centre GPU (base)
    # tiny: full-resolution convolutions dominate a CPU step, so the stem folds 2x2 pixels into channels
    "tiny": {"patch": 2, "base_channels": 32, "channel_mults": (1, 2), "blocks": 1, "attention_resolution": 7},
    "small": {"base_channels": 64, "channel_mults": (1, 2, 2), "blocks": 2, "attention_resolution": 8},
    "base": {"base_channels": 128, "channel_mults": (1, 2, 2, 2), "blocks": 2, "attention_resolution": 16},
}


@dataclass(frozen=True)
class UNetConfig:
    """Everything that rebuilds a :class:`UNet`.

    Attributes:
        data_shape: ``(C, H, W)`` of one image.
        patch: space-to-depth factor of the stem (1: none); the levels start at ``(H / patch, W / patch)``.
        base_channels: channels at full resolution; level i has ``base_channels * channel_mults[i]``.
        channel_mults: one entry per resolution level.
        blocks: residual blocks per level (down path; the up path has one more).
        attention_resolution: self-attention in levels whose resolution is at most this (0: none).
        num_classes: class labels (0: unconditional); label ``num_classes`` is the null label.
        cond_dim: size of a vector condition ``(B, cond_dim)`` instead of labels (0: none).
        mean_flow: also take the end time ``r`` of a jump and predict the average velocity over [t, r]
            (``--objective meanflow``; see :mod:`noise2data.meanflow`).
    """

    data_shape: tuple[int, ...]
    patch: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2)
    blocks: int = 1
    attention_resolution: int = 8
    heads: int = 4
    time_embedding: str = "sinusoidal"
    time_dim: int = 64
    num_classes: int = 0
    cond_dim: int = 0
    mean_flow: bool = False
    name: str = field(default="unet", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_shape", tuple(int(s) for s in self.data_shape))
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        if len(self.data_shape) != 3:
            raise UserError(f"the U-Net takes images (C, H, W), got samples of shape {self.data_shape}: "
                            "use the mlp model for vectors")
        c, h, w = self.data_shape
        if self.patch < 1:
            raise UserError(f"the U-Net's patch must be >= 1, got {self.patch}")
        factor = self.patch * 2 ** (len(self.channel_mults) - 1)
        if h % factor or w % factor:
            stem = f" after a {self.patch}x{self.patch} stem" if self.patch > 1 else ""
            raise UserError(f"a U-Net with {len(self.channel_mults)} levels{stem} needs H and W divisible by "
                            f"{factor}, got {h}x{w}: pad or resize the images (--pad, --resize) or use fewer levels")
        if self.base_channels < 8 or self.base_channels % 8 or self.blocks < 1 or not self.channel_mults:
            raise UserError("the U-Net needs base_channels a multiple of 8 (GroupNorm), blocks >= 1, and levels")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise UserError(f"unknown time embedding '{self.time_embedding}'")
        check_condition_sizes(self.num_classes, self.cond_dim)

    @classmethod
    def preset(cls, name: str, data_shape: tuple[int, ...], **overrides) -> UNetConfig:
        """A named size (tiny, small, base) for images of ``data_shape``."""
        if name not in PRESETS:
            raise UserError(f"unknown U-Net preset '{name}': expected one of {', '.join(PRESETS)}")
        return cls(data_shape=data_shape, **{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_shape"], d["channel_mults"] = list(self.data_shape), list(self.channel_mults)
        return d


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding as a per-channel scale and shift in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.emb(e)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        out = self_attention(self.attn, self.norm(x).flatten(2).transpose(1, 2))  # (B, HW, C)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """``forward(x, t, cond=None)``: ``x: (B, C, H, W)``, ``t: (B,)``, ``cond``: labels ``(B,)`` or vectors
    ``(B, k)`` -> ``(B, C, H, W)``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c, h, _ = config.data_shape
        p = config.patch
        chans = [config.base_channels * m for m in config.channel_mults]
        emb = 4 * config.base_channels
        self.cond = Conditioning(config.time_embedding, config.time_dim, emb, config.num_classes, config.cond_dim,
                                 config.mean_flow)
        self.conv_in = nn.Conv2d(c * p * p, chans[0], 3, padding=1)
        h //= p
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, cur, res = [chans[0]], chans[0], h
        for i, ch in enumerate(chans):
            for _ in range(config.blocks):
                self.down.append(self._level(cur, ch, emb, res))
                cur = ch
                skips.append(cur)
            if i < len(chans) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb), Attention(cur, config.heads), ResBlock(cur, cur, emb)])
        for i, ch in reversed(list(enumerate(chans))):
            for _ in range(config.blocks + 1):
                self.up.append(self._level(cur + skips.pop(), ch, emb, res))
                cur = ch
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(cur, cur, 3, padding=1)))
                res *= 2
        self.norm_out = nn.GroupNorm(8, cur)
        self.conv_out = nn.Conv2d(cur, c * p * p, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _level(self, c_in: int, c_out: int, emb: int, res: int) -> nn.ModuleList:
        parts = [ResBlock(c_in, c_out, emb)]
        if res <= self.config.attention_resolution:
            parts.append(Attention(c_out, self.config.heads))
        return nn.ModuleList(parts)

    @staticmethod
    def _run(level: nn.Module, h: Tensor, e: Tensor) -> Tensor:
        if isinstance(level, nn.ModuleList):
            h = level[0](h, e)
            return level[1](h) if len(level) > 1 else h
        return level(h)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, r: Tensor | None = None) -> Tensor:
        if tuple(x.shape[1:]) != self.config.data_shape:
            raise UserError(f"model expects images of shape {self.config.data_shape}, got {tuple(x.shape[1:])}")
        e = nn.functional.silu(self.cond(t, cond, r))  # (B, E)
        p = self.config.patch
        h = self.conv_in(nn.functional.pixel_unshuffle(x, p) if p > 1 else x)  # (B, C0, H/p, W/p)
        hs = [h]
        for level in self.down:
            h = self._run(level, h, e)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, e)), e)
        for level in self.up:  # blocks take the matching skip; upsamplers do not
            skip = isinstance(level, nn.ModuleList)
            h = self._run(level, torch.cat([h, hs.pop()], dim=1) if skip else h, e)
        out = self.conv_out(nn.functional.silu(self.norm_out(h)))  # (B, C*p*p, H/p, W/p)
        return nn.functional.pixel_shuffle(out, p) if p > 1 else out


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(config: UNetConfig) -> str:
    """One line: the levels' channels and resolutions."""
    c, h, w = config.data_shape
    p = config.patch
    levels = [f"{config.base_channels * m}ch@{h // p // 2 ** i}x{w // p // 2 ** i}"
              for i, m in enumerate(config.channel_mults)]
    stem = f"{p}x{p} space-to-depth stem, " if p > 1 else ""
    return (f"U-Net {stem}{' -> '.join(levels)}, {config.blocks} block(s)/level, "
            f"attention at <= {config.attention_resolution}px")


__all__ = ["PRESETS", "UNet", "UNetConfig", "describe", "parameter_count"]

"""``video-unet``: the image U-Net's residual blocks applied to every frame, interleaved with
temporal mixing (a depthwise temporal convolution at every level, attention across frames at the
lowest resolutions; with ``space_time`` one attention over all frames' positions there, and with
``positions`` attention sees where and when each position is).

``forward(x, t, cond)``: ``x: (B, T, C, H, W)``, ``t: (B,)``, ``cond: (B, T, C + 1, H, W)`` the
known frames (zero where unknown) and the mask as one more channel (None: nothing known, the null
condition). The network sees ``[x_t, known * mask, mask]`` along channels (with ``fill_known`` also
the nearest known frame, with ``motion_fill`` that frame moved along the known frames' estimated motion,
with ``known_distance`` two planes holding the distances to the previous and
the next known frame: what a frame should be copied from, and how far it has moved; with ``residual_ahead``
a plane marking the frames after the last known one). With ``motion_gate`` the output is, per pixel, a learned
blend of that moved frame and what the network draws. Every layer is per
frame or per pixel, so memory grows linearly with T, and the model runs on any number of frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..models.attention import self_attention
from ..models.conditioning import Conditioning
from ..models.embeddings import TIME_EMBEDDINGS
from ..models.unet import ResBlock
from .known import known_distance, known_neighbours, nearest_known
from .motion import bounce_shift, known_shift, moved_known, shift_mixture, shift_prior

PRESETS = {  # tiny: a 2-core CPU at 32x32; small and base for GPUs (64x64)
    # tiny: a 4x4 space-to-depth stem (8x8 positions at 32 px): 0.75-1.5 s per step of 16 clips x 16 frames
    # on 2 cores
    # (motion_gate: at the 30-minute run's 1572 steps, prediction SSIM 0.653 against 0.601 without it;
    # steady_velocity: at 1572 steps SSIM 0.692 against 0.653, centre error 1.89 against 2.35 px; bounce: at 600
    # steps SSIM 0.690 against 0.630, centre error 1.53 against 2.73 px, interpolation 0.400 against 0.447;
    # steady_speed: at 600 steps SSIM 0.756 against 0.690, centre error 1.10 against 1.53 px; README)
    "tiny": {"patch": 4, "base_channels": 64, "channel_mults": (1, 2), "blocks": 1, "attention_resolution": 4,
             "fill_known": True, "motion_fill": True, "motion_gate": True, "steady_velocity": True, "bounce": True,
             "steady_speed": True},
    "small": {"patch": 1, "base_channels": 64, "channel_mults": (1, 2, 2), "blocks": 2, "attention_resolution": 16},
    "base": {"patch": 1, "base_channels": 128, "channel_mults": (1, 2, 2, 2), "blocks": 2, "attention_resolution": 16},
}


@dataclass(frozen=True)
class VideoUNetConfig:
    """Everything that rebuilds a :class:`VideoUNet`; ``data_shape = (T, C, H, W)`` of one clip (T is the
    training length; the network itself takes any number of frames)."""

    data_shape: tuple[int, ...]
    patch: int = 2
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2)
    blocks: int = 1
    attention_resolution: int = 8
    heads: int = 4
    time_embedding: str = "sinusoidal"
    time_dim: int = 64
    fill_known: bool = False  # also see, at every frame, the nearest known frame (the previous one first)
    motion_fill: bool = False  # also see it moved along the motion estimated from the known frames (motion.py)
    motion_residual: bool = False  # output the moved known frame plus a correction (for --objective data)
    # with motion_residual: only frames after the last known one start from it (and a plane says which they are)
    residual_ahead: bool = False
    # output, per pixel, g * the moved known frame + (1 - g) * the network's drawing, g learned (for --objective data)
    motion_gate: bool = False
    gate_bias: float = 0.0  # with motion_gate: the gate's logit at init (0: half the moved frame; 2: 88% of it)
    # with motion_gate: the frame the gate lets through is the nearest known frame moved by a learned mixture of
    # whole-pixel moves (per frame, starting at the estimated motion), so that the network can follow a bounce
    motion_warp: bool = False
    # the moved known frame goes on beyond the last known frame at the velocity averaged over the known pairs
    # moving the same way (motion.steady_velocity), not the last pair's; runs trained before it kept the latter
    steady_velocity: bool = False
    # beyond the known frames the moved known frame reflects where content turns back in the training clips
    # (motion.content_walls, measured when training starts and kept here as walls: row low, row high, column low,
    # column high, in pixels), as a digit bouncing in Moving MNIST's canvas does
    bounce: bool = False
    walls: tuple[float, ...] | None = None
    # beyond the known frames the moved known frame moves at the one speed of the training clips' content
    # (motion.content_speed, measured when training starts and kept here as speed, pixels per frame; off where
    # their speeds differ), in the direction the known frames give
    steady_speed: bool = False
    speed: float | None = None
    known_distance: bool = False  # also see, at every frame, how far the previous and the next known frames are
    temporal_attention_resolution: int | None = None  # attention across frames at <= this size (None: as in space)
    positions: bool = False  # attention sees where (row, column) and when (frame) each position is
    space_time: bool = False  # one attention over all frames' positions instead of space and time apart
    mean_flow: bool = False  # also take the end time r of a jump (--objective meanflow)
    name: str = field(default="video-unet", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_shape", tuple(int(s) for s in self.data_shape))
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        if self.walls is not None:
            object.__setattr__(self, "walls", tuple(float(v) for v in self.walls))
        if len(self.data_shape) != 4:
            raise UserError(f"the video U-Net takes clips (T, C, H, W), got samples of shape {self.data_shape}")
        _, _, h, w = self.data_shape
        factor = self.patch * 2 ** (len(self.channel_mults) - 1)
        if self.patch < 1 or h % factor or w % factor:
            raise UserError(f"a video U-Net with {len(self.channel_mults)} levels and a {self.patch}x{self.patch} stem "
                            f"needs H and W divisible by {factor}, got {h}x{w}: render clips at 32 or 64 pixels")
        if self.base_channels < 8 or self.base_channels % 8 or self.blocks < 1:
            raise UserError("the video U-Net needs base_channels a multiple of 8 (GroupNorm) and blocks >= 1")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise UserError(f"unknown time embedding '{self.time_embedding}'")
        if self.residual_ahead and not self.motion_residual:
            raise UserError("residual_ahead says which frames start from the moved known frame: it needs "
                            "motion_residual=True")
        if self.motion_gate and self.motion_residual:
            raise UserError("motion_gate and motion_residual are two ways to start from the moved known frame: "
                            "choose one")
        if self.motion_warp and not self.motion_gate:
            raise UserError("motion_warp moves the frame that the gate lets through: it needs motion_gate=True")
        if self.bounce and not (self.motion_fill or self.motion_residual or self.motion_gate):
            raise UserError("bounce reflects the moved known frame at the walls: it needs motion_fill, "
                            "motion_residual or motion_gate")
        if self.steady_speed and not (self.motion_fill or self.motion_residual or self.motion_gate):
            raise UserError("steady_speed moves the moved known frame at the training clips' speed: it needs "
                            "motion_fill, motion_residual or motion_gate")
        if self.speed is not None and not (math.isfinite(self.speed) and self.speed > 0):
            raise UserError(f"speed is the training clips' content speed in pixels per frame (> 0), got {self.speed}")
        if self.walls is not None and (len(self.walls) != 4 or self.walls[0] > self.walls[1]
                                       or self.walls[2] > self.walls[3]):
            raise UserError(f"walls are (row low, row high, column low, column high) with low <= high, got "
                            f"{self.walls}")

    @classmethod
    def preset(cls, name: str, data_shape: tuple[int, ...], **overrides) -> VideoUNetConfig:
        if name not in PRESETS:
            raise UserError(f"unknown video U-Net preset '{name}': expected one of {', '.join(PRESETS)}")
        overrides = {k: v for k, v in overrides.items() if k in cls.__dataclass_fields__}
        return cls(data_shape=data_shape, **{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_shape"], d["channel_mults"] = list(self.data_shape), list(self.channel_mults)
        d["walls"] = None if self.walls is None else list(self.walls)
        return d


class TemporalConv(nn.Module):
    """A residual depthwise convolution across frames (kernel 3, zero padding), the same at every pixel.

    The weights live in a depthwise ``Conv3d`` (kernel (3, 1, 1)), but the product is three shifted
    multiply-adds: on 2 CPU cores the depthwise 3-D convolution's backward alone took ~12% of a training
    step of the tiny preset (torch profiler), the shifts almost nothing."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        # not zero-initialised: frames exchange information from the first step (known frames reach the others)
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), groups=channels)

    def forward(self, h: Tensor, frames: int) -> Tensor:
        bt, c, hh, ww = h.shape
        z = nn.functional.silu(self.norm(h)).view(bt // frames, frames, c, hh, ww)  # (B, T, C, H, W)
        w = self.conv.weight.view(c, 3).t()[:, None, :, None, None]  # (3, 1, C, 1, 1): previous, same, next frame
        out = z * w[1] + self.conv.bias.view(1, 1, c, 1, 1)
        if frames > 1:
            pad = z.new_zeros(z.shape[0], 1, c, hh, ww)
            out = out + torch.cat([pad, z[:, :-1]], 1) * w[0] + torch.cat([z[:, 1:], pad], 1) * w[2]
        return h + out.reshape(bt, c, hh, ww)


POSITION_FREQS = 6  # octaves per coordinate (frame, row, column), a sine and a cosine each
POSITION_FEATURES = 3 * 2 * POSITION_FREQS


def position_features(frames: int, h: int, w: int, scale: int, device: torch.device) -> Tensor:
    """Fixed sinusoids ``(T, H, W, POSITION_FEATURES)`` of each position's frame (counted in training lengths
    ``scale``, so a frame means the same on longer clips) and of its row and column (the centre of its cell
    as a fraction of the frame, so a place means the same at every level of the U-Net)."""
    freq = torch.pi * 2.0 ** torch.arange(POSITION_FREQS, device=device)  # (F,)

    def waves(u: Tensor) -> Tensor:  # (n,) -> (n, 2F)
        return torch.cat([torch.sin(u[:, None] * freq), torch.cos(u[:, None] * freq)], -1)

    f = waves(torch.arange(frames, device=device) / scale)[:, None, None].expand(-1, h, w, -1)
    r = waves((torch.arange(h, device=device) + 0.5) / h)[None, :, None].expand(frames, -1, w, -1)
    c = waves((torch.arange(w, device=device) + 0.5) / w)[None, None, :].expand(frames, h, -1, -1)
    return torch.cat([f, r, c], -1)


class FrameAttention(nn.Module):
    """Residual self-attention per frame over its H*W positions (``over="space"``), per pixel over the
    frames (``"time"``) or over all T*H*W positions of a clip (``"space-time"``); without positions its
    weights and product are those of the image U-Net's ``Attention`` (space), so checkpoints of runs from
    before positions existed load as they were; with ``positions``, a
    learned projection of :func:`position_features` is added to the normalised positions first, so
    attention can reach a place by where it is (a moved copy of a known frame), not only by what it holds."""

    def __init__(self, channels: int, heads: int, over: str, positions: bool, scale: int) -> None:
        super().__init__()
        self.over, self.scale = over, scale
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1, batch_first=True)
        self.pos = nn.Linear(POSITION_FEATURES, channels) if positions else None

    def forward(self, h: Tensor, frames: int) -> Tensor:
        bt, c, hh, ww = h.shape
        z = self.norm(h).view(bt // frames, frames, c, hh, ww).permute(0, 1, 3, 4, 2)  # (B, T, H, W, C)
        if self.pos is not None:
            z = z + self.pos(position_features(frames, hh, ww, self.scale, h.device))
        if self.over == "space":
            out = self_attention(self.attn, z.reshape(-1, hh * ww, c)).view_as(z)
        elif self.over == "time":
            out = self_attention(self.attn, z.transpose(1, 3).reshape(-1, frames, c))  # (B * W * H, T, C)
            out = out.view(z.shape[0], ww, hh, frames, c).transpose(1, 3)
        else:
            out = self_attention(self.attn, z.reshape(-1, frames * hh * ww, c)).view_as(z)
        return h + out.permute(0, 1, 4, 2, 3).reshape(bt, c, hh, ww)


class Level(nn.Module):
    """A residual block per frame, temporal mixing, and (where asked) attention in space and across frames."""

    def __init__(self, c_in: int, c_out: int, emb: int, space: bool, time: bool, config: VideoUNetConfig) -> None:
        super().__init__()
        self.block, self.temporal = ResBlock(c_in, c_out, emb), TemporalConv(c_out)
        heads, scale, pos = config.heads, config.data_shape[0], config.positions
        self.space = self.time = None
        if config.space_time and (space or time):  # one attention over the clip where attention would run
            self.space = FrameAttention(c_out, heads, "space-time", pos, scale)
        else:
            self.space = FrameAttention(c_out, heads, "space", pos, scale) if space else None
            self.time = FrameAttention(c_out, heads, "time", pos, scale) if time else None

    def forward(self, h: Tensor, e: Tensor, frames: int) -> Tensor:
        h = self.temporal(self.block(h, e), frames)
        if self.space is not None:
            h = self.space(h, frames)
        if self.time is not None:
            h = self.time(h, frames)
        return h


def gate_moved(drawn: Tensor, logit: Tensor, moved: Tensor, cond: Tensor) -> Tensor:
    """``g * moved + (1 - g) * drawn`` per pixel with ``g = sigmoid(logit)`` (``drawn, moved: (B, T, C, H, W)``,
    ``logit: (B, T, 1, H, W)``), and ``drawn`` alone in clips with nothing known (no moved frame to take).

    Why a gate and not a correction added to the moved frame (``motion_residual``): where the moved frame is
    right (a digit that has not bounced yet) its sharp strokes pass through by ``g -> 1``, and where it is wrong
    (after a bounce) ``g -> 0`` removes it; both are smooth decisions over a region, which the network's coarse
    (4x4-patch) features make well, while removing a wrong digit by adding its negative means drawing every
    one of its strokes exactly."""
    g = torch.sigmoid(logit) * (cond[:, :, -1:, :1, :1] > 0.5).any(1, keepdim=True).to(drawn.dtype)
    return g * moved + (1 - g) * drawn


class VideoUNet(nn.Module):
    def __init__(self, config: VideoUNetConfig) -> None:
        super().__init__()
        self.config = config
        _, c, h, w = config.data_shape
        p = config.patch
        chans = [config.base_channels * m for m in config.channel_mults]
        emb = 4 * config.base_channels
        self.cond = Conditioning(config.time_embedding, config.time_dim, emb, mean_flow=config.mean_flow)
        planes = ((2 + config.fill_known + config.motion_fill) * c + 1 + (2 if config.known_distance else 0)
                  + config.residual_ahead)
        self.conv_in = nn.Conv2d(planes * p * p, chans[0], 3, padding=1)
        a_res = config.attention_resolution
        t_res = a_res if config.temporal_attention_resolution is None else config.temporal_attention_resolution
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, cur, res = [chans[0]], chans[0], h // p
        for i, ch in enumerate(chans):
            for _ in range(config.blocks):
                self.down.append(Level(cur, ch, emb, res <= a_res, res <= t_res, config))
                cur = ch
                skips.append(cur)
            if i < len(chans) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([Level(cur, cur, emb, True, True, config),
                                  Level(cur, cur, emb, False, False, config)])
        for i, ch in reversed(list(enumerate(chans))):
            for _ in range(config.blocks + 1):
                self.up.append(Level(cur + skips.pop(), ch, emb, res <= a_res, res <= t_res, config))
                cur = ch
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(cur, cur, 3, padding=1)))
                res *= 2
        if config.motion_warp:  # per frame, corrections to the log-weights of every row and column move
            # from the lowest level's features at 4x4 places (not their mean: where the content is decides a bounce)
            self.warp_head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * chans[-1], 256),
                                           nn.SiLU(), nn.Linear(256, 2 * (h + w) - 2))
            nn.init.zeros_(self.warp_head[-1].weight)  # at init: the estimated move (shift_prior)
            nn.init.zeros_(self.warp_head[-1].bias)
        self.norm_out = nn.GroupNorm(8, cur)
        self.conv_out = nn.Conv2d(cur, (c + config.motion_gate) * p * p, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        if config.motion_gate:  # the gate's channels (after pixel_shuffle: channel c) start at gate_bias
            nn.init.constant_(self.conv_out.bias[c * p * p:], config.gate_bias)

    def speed(self) -> float | None:
        """The config's speed where ``steady_speed`` is on (:func:`.motion.content_speed`), else None; a model
        built to move at it without one is refused."""
        if not self.config.steady_speed:
            return None
        if self.config.speed is None:
            raise UserError("this video U-Net moves the known frame at the speed measured on its training clips, but "
                            "its config has none: build it through 'noise2data train' or give "
                            "VideoUNetConfig(speed=...)")
        return self.config.speed

    def walls(self) -> tuple[float, ...]:
        """The config's walls (:func:`.motion.content_walls`); a bouncing model built without them is refused."""
        if self.config.walls is None:
            raise UserError("this video U-Net bounces at walls measured on its training clips, but its config has "
                            "none: build it through 'noise2data train' or give VideoUNetConfig(walls=...)")
        return self.config.walls

    def warp(self, features: Tensor, fill: Tensor, cond: Tensor) -> Tensor:
        """``features: (B * T, F, h, w)`` (the lowest level's) -> ``(B, T, C, H, W)``: the nearest known frame
        ``fill`` moved by a mixture of whole-pixel moves whose log-weights are a bump at the estimated move plus
        the network's correction (zero at init: the estimated move, blurred by at most a pixel)."""
        _, _, h, w = self.config.data_shape
        shift = known_shift(cond, self.config.steady_velocity, self.speed())
        if self.config.bounce:
            shift = bounce_shift(shift, fill, cond, self.walls(), self.speed())
        shift = shift.flatten(0, 1)  # (B * T, 2)
        logits = self.warp_head(features).float()  # (B * T, 2H - 1 + 2W - 1)
        rows = torch.softmax(shift_prior(shift[:, 0], h) + logits[:, :2 * h - 1], -1)
        cols = torch.softmax(shift_prior(shift[:, 1], w) + logits[:, 2 * h - 1:], -1)
        with torch.autocast(fill.device.type, enabled=False):
            return shift_mixture(fill.float().flatten(0, 1), rows, cols).view_as(fill).to(fill.dtype)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, r: Tensor | None = None) -> Tensor:
        _, c, h, w = self.config.data_shape
        if x.ndim != 5 or tuple(x.shape[2:]) != (c, h, w):
            raise UserError(f"the video U-Net expects clips (B, T, {c}, {h}, {w}), got {tuple(x.shape)}")
        b, frames = x.shape[:2]
        if cond is None:  # nothing known: the null condition
            cond = x.new_zeros(b, frames, c + 1, h, w)
        if cond.shape != (b, frames, c + 1, h, w):
            raise UserError(f"the video condition is the known frames and their mask, (B, T, C + 1, H, W) = "
                            f"{(b, frames, c + 1, h, w)}; got {tuple(cond.shape)}")
        p = self.config.patch
        parts = [x, cond]
        moved = None
        uses_moved = self.config.motion_fill or self.config.motion_residual or self.config.motion_gate
        if self.config.fill_known or uses_moved:
            fill = nearest_known(cond)
            walls = self.walls() if self.config.bounce else None
            moved = moved_known(cond, fill, self.config.steady_velocity, walls, self.speed()) if uses_moved else None
            parts += [fill] if self.config.fill_known else []
            parts += [moved] if self.config.motion_fill else []
        if self.config.known_distance:
            parts.append(known_distance(cond, self.config.data_shape[0])[..., None, None].expand(-1, -1, -1, h, w))
        ahead = None
        if self.config.residual_ahead:  # (B, T, 1, 1, 1): the frames whose output starts from the moved frame; the
            # network is told which they are (which frames lie after the last known one is a fact about the whole
            # clip, and without the plane it must infer it through the temporal layers)
            ahead = (known_neighbours(cond[:, :, -1, 0, 0] > 0.5)[1] >= frames).to(x.dtype)[:, :, None, None, None]
            parts.append(ahead.expand(-1, -1, 1, h, w))
        z = torch.cat(parts, dim=2).flatten(0, 1)  # (B * T, 2C + 1 (+ C) (+ C) (+ 2) (+ 1), H, W)
        e = nn.functional.silu(self.cond(t, None, r)).repeat_interleave(frames, 0)  # (B * T, E)
        hcur = self.conv_in(nn.functional.pixel_unshuffle(z, p) if p > 1 else z)
        hs = [hcur]
        for level in self.down:
            hcur = level(hcur, e, frames) if isinstance(level, Level) else level(hcur)
            hs.append(hcur)
        for level in self.mid:
            hcur = level(hcur, e, frames)
        if self.config.motion_warp:  # the frame the gate lets through: the known frame moved as the network says
            moved = self.warp(hcur, fill, cond)
        for level in self.up:
            hcur = level(torch.cat([hcur, hs.pop()], 1), e, frames) if isinstance(level, Level) else level(hcur)
        out = self.conv_out(nn.functional.silu(self.norm_out(hcur)))
        out = nn.functional.pixel_shuffle(out, p) if p > 1 else out  # (B * T, C (+ 1), H, W)
        out = out.view(b, frames, -1, h, w)
        if self.config.motion_gate:
            return gate_moved(out[:, :, :c], out[:, :, c:], moved, cond)
        if not self.config.motion_residual:
            return out
        # a clean-clip prediction that starts (conv_out is zero at init) as the moved known frame: the network
        # learns the correction (zeros where nothing is known, so unconditional clips are as before); with
        # residual_ahead only where the motion is extrapolated (after the last known frame), not between known
        # frames, where the motion between far-apart frames is a poor guess (interpolation)
        return out + (moved * ahead if ahead is not None else moved)


__all__ = ["PRESETS", "FrameAttention", "VideoUNet", "VideoUNetConfig", "gate_moved", "known_distance", "nearest_known"]

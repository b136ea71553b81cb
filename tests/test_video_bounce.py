"""Bouncing at walls (``video/motion.py``: ``reflect``, ``content_centre``, ``content_walls``, ``bounce_shift``)
and moving at the clips' one speed (``content_speed``, ``at_speed``): checked on a Gaussian blob that bounces
between two walls, whose place at every frame is known in closed form: the walls and the speed measured on such
clips are the walls and the speed, the moved known frame follows the bounce beyond the known frames where the
straight extrapolation runs into the wall and on, and at the known speed it stays nearer a blob drawn at whole
pixels than the known frames' own velocity takes it."""

from __future__ import annotations

import math

import pytest
import torch

from noise2data.errors import UserError
from noise2data.video.known import make_condition
from noise2data.video.model import VideoUNet, VideoUNetConfig, nearest_known
from noise2data.video.motion import (
    at_speed,
    bounce_shift,
    bounced_between,
    content_centre,
    content_speed,
    content_walls,
    known_motion,
    known_shift,
    moved_known,
    reflect,
)

H = W = 32
LO, HI = 8.0, 23.0  # where the blob's centre turns back (pixel index coordinates), on both axes


def blob(centre: tuple[float, float]) -> torch.Tensor:
    """A Gaussian blob (sigma 2 px, cut at 1e-3) centred at pixel coordinates ``centre`` on black, ``(1, H, W)``
    in [-1, 1]."""
    y, x = torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32)
    g = torch.exp(-((y[:, None] - centre[0]) ** 2 + (x[None] - centre[1]) ** 2) / 8.0)
    return (2 * torch.where(g > 1e-3, g, 0.0) - 1)[None]


def fold(p: float) -> float:
    """The bouncing path in closed form: ``p`` folded into [LO, HI]."""
    period = 2 * (HI - LO)
    u = (p - LO) % period
    return LO + (u if u <= HI - LO else period - u)


def bouncing_clip(start: tuple[float, float], vel: tuple[float, float], frames: int = 16) -> tuple[torch.Tensor, ...]:
    """``(T, 1, H, W)`` of a blob moving at ``vel`` from ``start`` and reflected at LO and HI, and its centres
    ``(T, 2)``."""
    centres = torch.tensor([[fold(start[0] + t * vel[0]), fold(start[1] + t * vel[1])] for t in range(frames)])
    return torch.stack([blob((float(r), float(c))) for r, c in centres]), centres


def test_reflect_folds_a_position_between_two_walls_as_a_bouncing_point():
    pos = torch.tensor([10.0, 8.0, 23.0, 25.0, 5.0, 23.0 + 15.0 + 4.0, 8.0 - 30.0 - 1.0])
    out = reflect(pos, LO, HI)
    torch.testing.assert_close(out, torch.tensor([fold(float(p)) for p in pos]))
    torch.testing.assert_close(out[:5], torch.tensor([10.0, 8.0, 23.0, 21.0, 11.0]))  # inside stays; d past: d back
    assert reflect(torch.tensor([3.0, 40.0]), 7.0, 7.0).tolist() == [7.0, 7.0]  # no room: at the wall


def test_the_content_centre_is_the_blob_centre_and_nan_on_a_flat_frame():
    frames = torch.stack([blob((9.25, 20.5)), blob((16.0, 11.75)), -torch.ones(1, H, W)])
    c = content_centre(frames)
    torch.testing.assert_close(c[:2], torch.tensor([[9.25, 20.5], [16.0, 11.75]]), atol=1e-3, rtol=0)
    assert c[2].isnan().all()


def test_the_walls_measured_on_bouncing_clips_are_where_the_content_turns_back():
    clips = torch.stack([bouncing_clip((LO + 1.3 * i, HI - 0.7 * i), (1.7, -1.9), frames=24)[0] for i in range(6)])
    r_lo, r_hi, c_lo, c_hi = content_walls(clips, quantile=0.0)
    # every clip meets both walls; a frame falls within half a step (<= 0.95 px) of each meeting
    assert min(r_lo, c_lo) >= LO - 1e-3 and max(r_hi, c_hi) <= HI + 1e-3
    assert (r_lo, r_hi, c_lo, c_hi) == pytest.approx((LO, HI, LO, HI), abs=0.95)
    assert content_walls(-torch.ones(2, 4, 1, H, W)) is None  # no content: nothing bounces
    # a scene filling the frame, panning: its centre stays near the middle, so no walls (they would fold the pan)
    g = torch.Generator().manual_seed(0)
    scene = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 3 * H, 3 * W, generator=g), 5, 1, 2)[0, 0]
    pan = torch.stack([scene[8 + 2 * t:8 + 2 * t + H, 20 - t:20 - t + W] for t in range(16)])[None, :, None]
    assert content_walls(pan * 2 - 1) is None


@pytest.mark.parametrize("known", [[0, 1, 2, 3], [9, 10, 11, 12]])
def test_beyond_the_known_frames_the_moved_frame_follows_the_bounce(known):
    """Four known frames before (prediction) or after (frames before them, extrapolated backwards) a bounce:
    with the walls the moved frame's centre is on the true path at every frame; extrapolated straight it runs
    past the wall by pixels."""
    clip, centres = bouncing_clip((12.0, 20.0), (1.6, -0.9))  # bounces at frames 6.9 (rows) and 13.3 (columns)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, known] = True
    cond = make_condition(clip[None], mask)
    fill = nearest_known(cond)
    walls = (LO, HI, LO, HI)
    moved = moved_known(cond, fill, walls=walls)[0]
    err = (content_centre(moved) - centres).norm(dim=-1)
    assert err.max() < 0.1, err
    straight = (content_centre(moved_known(cond, fill)[0]) - centres).norm(dim=-1)
    assert straight.max() > 3.0
    assert torch.equal(moved[mask[0]], clip[mask[0]])  # known frames exactly as given


def test_between_known_frames_and_in_clips_with_nothing_known_the_walls_change_nothing():
    clip, _ = bouncing_clip((12.0, 20.0), (1.6, -0.9))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [2, 5]] = True  # clip 1: nothing known
    cond = make_condition(torch.stack([clip, clip]), mask)
    fill = nearest_known(cond)
    shift = known_shift(cond)
    bounced = bounce_shift(shift, fill, cond, (LO, HI, LO, HI))
    torch.testing.assert_close(bounced[0, :6], shift[0, :6])  # between the known frames, and before (inside)
    assert not torch.allclose(bounced[0, 6:], shift[0, 6:])  # beyond the last: past the wall, reflected
    torch.testing.assert_close(bounced[1], shift[1])


def test_a_bouncing_model_needs_motion_and_walls_and_keeps_them_in_its_config():
    with pytest.raises(UserError, match="needs motion_fill"):
        VideoUNetConfig((8, 1, 32, 32), patch=4, bounce=True)
    with pytest.raises(UserError, match="low <= high"):
        VideoUNetConfig((8, 1, 32, 32), patch=4, motion_fill=True, bounce=True, walls=(9.0, 3.0, 1.0, 2.0))
    net = VideoUNet(VideoUNetConfig.preset("tiny", (8, 1, 32, 32), bounce=True, walls=None))
    x, cond = torch.zeros(1, 8, 1, 32, 32), torch.zeros(1, 8, 2, 32, 32)
    with pytest.raises(UserError, match="its config has none"):
        net(x, torch.zeros(1), cond)
    cfg = VideoUNetConfig.preset("tiny", (8, 1, 32, 32), bounce=True, walls=[LO, HI, LO, math.floor(HI)])
    d = cfg.to_dict()
    d.pop("name")
    assert VideoUNetConfig(**d) == cfg and cfg.walls == (LO, HI, LO, 23.0)
    old = {k: v for k, v in d.items() if k not in ("bounce", "walls")}  # a run trained before bouncing
    assert VideoUNetConfig(**old).bounce is False


def test_the_speed_measured_on_clips_that_share_one_is_that_speed_and_none_where_they_do_not():
    directions = [(math.sin(a), math.cos(a)) for a in (0.3, 1.1, 2.0, 2.9, 3.7, 4.4, 5.2, 6.0)]
    clips = torch.stack([bouncing_clip((LO + 1.7 * i, HI - 1.1 * i), (1.5 * dy, 1.5 * dx))[0]
                         for i, (dy, dx) in enumerate(directions)])
    assert content_speed(clips) == pytest.approx(1.5, abs=0.02)  # bounces in most clips fall outside the middle half
    varied = torch.stack([bouncing_clip((LO + 1.7 * i, HI - 1.1 * i), ((0.4 + 0.3 * i) * dy, (0.4 + 0.3 * i) * dx))[0]
                          for i, (dy, dx) in enumerate(directions)])
    assert content_speed(varied) is None  # 0.4 .. 2.5 px a frame: no one speed
    still = torch.stack([bouncing_clip((12.0 + i, 14.0), (0.0, 0.0))[0] for i in range(4)])
    assert content_speed(still) is None and content_speed(-torch.ones(2, 4, 1, H, W)) is None


def test_at_the_clips_speed_the_moved_frame_keeps_the_known_direction_and_stays_nearer_a_whole_pixel_blob():
    vel = torch.tensor([[0.9, 1.2], [0.05, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(at_speed(vel, 2.0), torch.tensor([[1.2, 1.6], [0.05, 0.0], [0.0, 0.0]]))  # slow: kept
    # a blob drawn at whole pixels along a straight path at 1.5 px a frame, four frames known: the known frames
    # give its velocity to about 0.1 px a frame; at the known speed the error at the last frame shrinks
    frames, known = 12, 4
    mask = torch.zeros(1, frames, dtype=torch.bool)
    mask[0, :known] = True
    errs = {None: [], 1.5: []}
    for a in torch.linspace(0.2, 2 * math.pi, 9)[:-1].tolist():
        d = torch.tensor([math.sin(a), math.cos(a)])
        path = (16.0 - 8.0 * d) + 1.5 * d * torch.arange(frames, dtype=torch.float32)[:, None]  # (T, 2)
        clip = torch.stack([blob((float(r), float(c))) for r, c in path.round()])
        cond = make_condition(clip[None], mask)
        for speed in errs:
            target, source = known_motion(cond, True, speed)
            ahead = target[0, known:]
            if speed is not None:  # beyond the known frames, steps of exactly the speed
                steps = (ahead[1:] - ahead[:-1]).norm(dim=-1)
                torch.testing.assert_close(steps, torch.full((frames - known - 1,), 1.5))
            moved = moved_known(cond, nearest_known(cond), speed=speed)[0]
            errs[speed].append(float((content_centre(moved[-1]) - path[-1]).norm()))
    without, with_speed = torch.tensor(errs[None]).mean(), torch.tensor(errs[1.5]).mean()
    assert with_speed < 0.8 * without, (with_speed, without)  # measured: 1.63 against 2.25 px


def test_a_model_at_the_clips_speed_needs_it_in_its_config():
    with pytest.raises(UserError, match="needs motion_fill"):
        VideoUNetConfig((8, 1, 32, 32), patch=4, steady_speed=True)
    with pytest.raises(UserError, match="> 0"):
        VideoUNetConfig((8, 1, 32, 32), patch=4, motion_fill=True, steady_speed=True, speed=-1.0)
    walls = (LO, HI, LO, HI)
    net = VideoUNet(VideoUNetConfig.preset("tiny", (8, 1, 32, 32), walls=walls, steady_speed=True))
    with pytest.raises(UserError, match="its config has none"):
        net(torch.zeros(1, 8, 1, 32, 32), torch.zeros(1), torch.zeros(1, 8, 2, 32, 32))
    cfg = VideoUNetConfig.preset("tiny", (8, 1, 32, 32), walls=walls, steady_speed=True, speed=1.5)
    d = cfg.to_dict()
    d.pop("name")
    assert VideoUNetConfig(**d) == cfg
    old = {k: v for k, v in d.items() if k not in ("steady_speed", "speed")}  # a run trained before it
    assert VideoUNetConfig(**old).steady_speed is False and VideoUNetConfig(**old).speed is None


def test_between_two_known_frames_at_the_clips_speed_the_moved_frame_follows_the_bounces_in_between():
    """First and last frames known, 15 frames apart: the blob bounced off a row wall and a column wall in
    between; the straight path between the ends is pixels off, the path of images at the speed is the true one."""
    vel = (1.6, -0.9)
    clip, centres = bouncing_clip((12.0, 20.0), vel)
    speed = math.hypot(*vel)
    lo, hi = torch.tensor([LO, LO]), torch.tensor([HI, HI])
    idx = torch.arange(16, dtype=torch.float32)
    path = bounced_between(centres[0].expand(16, 2), centres[-1].expand(16, 2), torch.full((16,), 15.0), idx / 15,
                           lo, hi, speed)
    torch.testing.assert_close(path, centres, atol=1e-4, rtol=0)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [0, 15]] = True
    cond = make_condition(clip[None], mask)
    fill = nearest_known(cond)
    walls = (LO, HI, LO, HI)
    err = (content_centre(moved_known(cond, fill, walls=walls, speed=speed)[0]) - centres).norm(dim=-1)
    assert err.max() < 0.1, err
    straight = (content_centre(moved_known(cond, fill, walls=walls)[0]) - centres).norm(dim=-1)
    assert straight.max() > 3.0

"""The known frames' global motion (``video/motion.py``): phase correlation recovers translations to a
fraction of a pixel, the motion is followed between and beyond the known frames (checked on a blob moving
at constant velocity, whose place at every frame is known in closed form), and the moved fill leaves known
frames, clips with one or no known frame, and other clips of the batch alone."""

from __future__ import annotations

import pytest
import torch

from noise2data.errors import UserError
from noise2data.video.known import make_condition
from noise2data.video.model import VideoUNet, VideoUNetConfig, nearest_known
from noise2data.video.motion import (
    known_motion,
    known_shift,
    moved_known,
    phase_shift,
    shift_mixture,
    shift_prior,
    steady_velocity,
    translate,
)

H = W = 32


def tiny(shape: tuple[int, ...], **changes) -> VideoUNetConfig:
    """The tiny preset, its moved frame not reflected at walls nor moved at a speed (test_video_bounce.py tests
    those)."""
    return VideoUNetConfig.preset("tiny", shape, **{"bounce": False, "steady_speed": False, **changes})


def fourier_shift(img: torch.Tensor, d: tuple[float, float]) -> torch.Tensor:
    """``img: (C, H, W)`` translated circularly by ``d`` pixels through the shift theorem (exact for any d)."""
    ky = torch.fft.fftfreq(img.shape[-2], dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(img.shape[-1], dtype=torch.float64)[None]
    phase = torch.exp(-2j * torch.pi * (ky * d[0] + kx * d[1]))
    return torch.fft.ifft2(torch.fft.fft2(img.double()) * phase).real.float()


def blob_clip(start: tuple[float, float], vel: tuple[float, float], frames: int = 16) -> tuple[torch.Tensor, ...]:
    """A Gaussian blob (sigma 2 px, cut at 1e-3) at ``start + vel * t`` on a black frame in [-1, 1]:
    ``(T, 1, H, W)`` and its true centres ``(T, 2)``."""
    t = torch.arange(frames, dtype=torch.float32)[:, None]
    centres = torch.tensor(start) + t * torch.tensor(vel)  # (T, 2)
    y, x = torch.arange(H) + 0.5, torch.arange(W) + 0.5
    d2 = (y[None, :, None] - centres[:, 0, None, None]) ** 2 + (x[None, None, :] - centres[:, 1, None, None]) ** 2
    g = torch.exp(-d2 / 8.0)
    return (2 * torch.where(g > 1e-3, g, 0.0) - 1)[:, None], centres  # an exactly black background


def centroid(frames: torch.Tensor) -> torch.Tensor:
    """``(T, 1, H, W)`` in [-1, 1] -> ``(T, 2)``: the intensity-weighted centre in pixels."""
    w = (frames[:, 0] + 1) / 2
    y, x = torch.arange(H) + 0.5, torch.arange(W) + 0.5
    return torch.stack([(w.sum(2) * y).sum(1), (w.sum(1) * x).sum(1)], -1) / w.sum((1, 2))[:, None]


@pytest.mark.parametrize("d", [(0.0, 0.0), (3.0, -5.0), (0.3, 0.7), (-2.45, 1.5), (7.8, -9.2)])
def test_phase_correlation_recovers_a_translation_to_a_fraction_of_a_pixel(d):
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W, generator=g), 3, 1, 1, count_include_pad=False)[0]
    moved = fourier_shift(img, d)
    est = phase_shift(img[None], moved[None])[0]
    assert est.tolist() == pytest.approx(list(d), abs=1e-3)
    back = phase_shift(moved[None], img[None])[0]  # the other way round: the opposite move
    assert back.tolist() == pytest.approx([-v for v in d], abs=1e-3)


def test_translate_moves_content_by_the_given_pixels():
    clip, centres = blob_clip((10.0, 12.0), (0.0, 0.0), frames=1)
    out = translate(clip, torch.tensor([[3.5, -2.25]]))
    assert centroid(out)[0].tolist() == pytest.approx([13.5, 9.75], abs=0.02)
    torch.testing.assert_close(translate(clip, torch.zeros(1, 2)), clip, atol=1e-5, rtol=0)


@pytest.mark.parametrize("known", [[0, 1, 2, 3], [0, 15], [6, 9], [2, 5, 11]])
def test_the_moved_fill_follows_a_blob_at_constant_velocity(known):
    """Prediction (a prefix), interpolation (the ends), frames before the first known one (extrapolated
    backwards) and a random subset: the moved fill's centre is the blob's true centre at every frame, where
    the plain nearest known frame is pixels away."""
    clip, centres = blob_clip((8.5, 23.0), (1.0, -0.8))  # inside the frame throughout
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, known] = True
    cond = make_condition(clip[None], mask)
    fill = nearest_known(cond)
    moved = moved_known(cond, fill)[0]
    err = (centroid(moved) - centres).norm(dim=-1)
    assert err.max() < 0.05, err
    unknown = ~mask[0]
    assert (centroid(fill[0]) - centres).norm(dim=-1)[unknown].max() > 4.0  # what the plain copy misses
    target, source = known_motion(cond)
    assert torch.allclose((target - source)[0], centres - centroid(fill[0]), atol=0.05)
    assert torch.equal(moved[mask[0]], clip[mask[0]])  # known frames exactly as given


def test_one_or_no_known_frame_moves_nothing_and_clips_do_not_mix():
    g = torch.Generator().manual_seed(0)
    clips = torch.cat([blob_clip((8.0 + i, 20.0 - i), (0.7 * i - 1, 0.5))[0][None] for i in range(4)])
    clips = clips + 0.05 * torch.randn(clips.shape, generator=g)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[1, 5] = True  # one known frame: the copy, unmoved
    mask[2, :4] = True
    mask[3, [0, 9, 15]] = True  # clip 0: nothing known
    cond = make_condition(clips, mask)
    fill = nearest_known(cond)
    moved = moved_known(cond, fill)
    assert torch.equal(moved[0], torch.zeros_like(moved[0]))
    torch.testing.assert_close(moved[1], fill[1], atol=1e-5, rtol=0)
    for b in range(4):  # each clip's result is its own, whatever else the batch holds
        alone = moved_known(cond[b:b + 1], fill[b:b + 1])
        torch.testing.assert_close(alone[0], moved[b], atol=1e-5, rtol=0)


def test_the_model_takes_the_moved_fill_as_more_planes_and_old_configs_load_without_it():
    base = tiny((8, 1, 32, 32), motion_fill=False)
    net = VideoUNet(tiny((8, 1, 32, 32)))  # the preset moves the fill
    assert net.conv_in.in_channels == VideoUNet(base).conv_in.in_channels + 16  # one more plane, 4x4 stem
    cond = make_condition(torch.randn(2, 8, 1, 32, 32), torch.arange(8)[None].expand(2, -1) < 3)
    assert net(torch.randn(2, 8, 1, 32, 32), torch.rand(2), cond).shape == (2, 8, 1, 32, 32)
    old = {k: v for k, v in base.to_dict().items() if k not in ("motion_fill", "name")}
    assert not VideoUNetConfig(**old).motion_fill


def test_the_residual_model_starts_as_the_moved_frame_and_learns_only_the_correction():
    net = VideoUNet(tiny((8, 1, 32, 32), motion_residual=True, motion_gate=False))
    clip, _ = blob_clip((9.0, 20.0), (0.8, -0.6), frames=8)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3] = True  # clip 1: nothing known, so no moved frame to start from
    cond = make_condition(clip[None].expand(2, -1, -1, -1, -1), mask)
    with torch.no_grad():
        out = net(torch.randn(2, 8, 1, 32, 32), torch.rand(2), cond)  # conv_out is zero at init
        torch.testing.assert_close(out, moved_known(cond, nearest_known(cond), net.config.steady_velocity))
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        net.conv_out.bias.fill_(0.25)  # what the network adds comes on top of it
        torch.testing.assert_close(net(torch.randn(2, 8, 1, 32, 32), torch.rand(2), cond) - out,
                                   torch.full_like(out, 0.25))


def test_residual_ahead_starts_from_the_moved_frame_only_after_the_last_known_frame():
    net = VideoUNet(tiny((8, 1, 32, 32), motion_residual=True, residual_ahead=True, motion_gate=False))
    clip, _ = blob_clip((9.0, 20.0), (0.8, -0.6), frames=8)
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[0, :3] = True  # prediction: frames 3..7 are extrapolated
    mask[1, [0, 7]] = True  # interpolation: nothing lies after the last known frame
    mask[2, [1, 4]] = True  # a subset: frames 5..7 are extrapolated, 0 and 2..3 are not
    cond = make_condition(clip[None].expand(3, -1, -1, -1, -1), mask)
    moved = moved_known(cond, nearest_known(cond), net.config.steady_velocity)
    with torch.no_grad():
        out = net(torch.randn(3, 8, 1, 32, 32), torch.rand(3), cond)  # conv_out is zero at init
    ahead = torch.zeros(3, 8, dtype=torch.bool)
    ahead[0, 3:], ahead[2, 5:] = True, True
    torch.testing.assert_close(out[ahead], moved[ahead])
    assert moved[ahead].abs().amax() > 0.5  # the blob is there to be copied
    assert torch.equal(out[~ahead], torch.zeros_like(out[~ahead]))
    plain = VideoUNet(tiny((8, 1, 32, 32), motion_residual=True, motion_gate=False))
    assert net.conv_in.in_channels == plain.conv_in.in_channels + 16  # the plane saying which frames, 4x4 stem
    with pytest.raises(UserError, match="motion_residual"):
        tiny((8, 1, 32, 32), residual_ahead=True, motion_gate=False)


def test_the_gated_model_blends_the_moved_frame_and_its_drawing_per_pixel():
    net = VideoUNet(tiny((8, 1, 32, 32)))  # the preset gates
    assert net.conv_out.out_channels == 2 * 16  # a frame and a gate per pixel, 4x4 stem
    clip, _ = blob_clip((9.0, 20.0), (0.8, -0.6), frames=8)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3] = True  # clip 1: nothing known, so nothing to blend in
    cond = make_condition(clip[None].expand(2, -1, -1, -1, -1), mask)
    moved = moved_known(cond, nearest_known(cond), net.config.steady_velocity)
    x, t = torch.randn(2, 8, 1, 32, 32), torch.rand(2)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t, cond), moved / 2)  # conv_out is zero at init: g = 1/2, drawing 0
        net.conv_out.bias[:16].fill_(0.25)  # the drawing: 0.25 everywhere
        net.conv_out.bias[16:].fill_(30.0)  # the gate: open, the moved frame passes through
        out = net(x, t, cond)
        torch.testing.assert_close(out[0], moved[0])
        torch.testing.assert_close(out[1], torch.full_like(out[1], 0.25))  # nothing known: the drawing alone
        net.conv_out.bias[16:].fill_(-30.0)  # closed: the drawing alone
        torch.testing.assert_close(net(x, t, cond), torch.full_like(out, 0.25))
        opened = VideoUNet(tiny((8, 1, 32, 32), gate_bias=2.0))  # starts at sigmoid(2) = 88% of the moved frame
        torch.testing.assert_close(opened(x, t, cond), torch.sigmoid(torch.tensor(2.0)) * moved)
    with pytest.raises(UserError, match="choose one"):
        tiny((8, 1, 32, 32), motion_residual=True)


def test_a_mixture_of_whole_pixel_moves_is_a_translation_when_one_move_has_all_the_weight():
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(3, 2, 8, 12, generator=g)  # (N, C, H, W), not square
    moves = torch.tensor([[3, -5], [-7, 11], [0, 0]])
    rows, cols = torch.zeros(3, 15), torch.zeros(3, 23)
    rows[torch.arange(3), moves[:, 0] + 7] = 1.0
    cols[torch.arange(3), moves[:, 1] + 11] = 1.0
    torch.testing.assert_close(shift_mixture(frames, rows, cols), translate(frames, moves.float()))
    # weights spread over two moves: the same mixture of the two translations (it is linear in the weights)
    rows2 = rows.roll(2, 1) * 0.3 + rows * 0.7
    mixed = 0.3 * translate(frames, (moves + torch.tensor([2, 0])).float()) + 0.7 * translate(frames, moves.float())
    torch.testing.assert_close(shift_mixture(frames, rows2, cols), mixed)
    # any weights that sum to one leave a uniform frame as it was
    w_r = torch.softmax(torch.randn(3, 15, generator=g), 1)
    w_c = torch.softmax(torch.randn(3, 23, generator=g), 1)
    flat = torch.full((3, 2, 8, 12), -0.4)
    torch.testing.assert_close(shift_mixture(flat, w_r, w_c), flat)
    with pytest.raises(ValueError, match="move weights"):
        shift_mixture(frames, cols, rows)


def test_the_prior_over_moves_is_a_normalised_bump_at_the_estimated_move_that_leaves_every_move_reachable():
    shift = torch.tensor([2.0, -4.5, 0.2])
    logp = shift_prior(shift, 16, spread=0.5, floor=0.05)  # (3, 31): moves -15..15
    assert logp.shape == (3, 31)
    torch.testing.assert_close(logp.logsumexp(1), torch.zeros(3))
    p = logp.exp()
    assert p[0].argmax() == 2 + 15 and p[2].argmax() == 15
    torch.testing.assert_close(p[1, -5 + 15], p[1, -4 + 15])  # half a pixel: the two moves beside it share the bump
    assert p[1, -5 + 15] + p[1, -4 + 15] > 0.9
    assert p.min() >= 0.05 / 31 * 0.999  # the floor: any move can be reached by a learned correction


def test_the_warped_gate_starts_at_the_estimated_move_and_moves_the_known_frame_as_the_network_says():
    net = VideoUNet(tiny((8, 1, 32, 32), motion_warp=True))
    clip, _ = blob_clip((9.0, 12.0), (1.0, 1.0), frames=8)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3] = True  # clip 1: nothing known, the drawing alone
    cond = make_condition(clip[None].expand(2, -1, -1, -1, -1), mask)
    fill = nearest_known(cond)
    moved = moved_known(cond, fill, net.config.steady_velocity)
    torch.testing.assert_close(known_shift(cond)[0, 3:], torch.tensor([[float(k)] * 2 for k in range(1, 6)]),
                               atol=0.05, rtol=0)
    x, t = torch.randn(2, 8, 1, 32, 32), torch.rand(2)
    with torch.no_grad():
        net.conv_out.bias[16:].fill_(30.0)  # the gate open: the output is the warped known frame
        out = net(x, t, cond)
        # at init the estimated move, with a little of the weight (the prior's floor) over every other move
        assert (out[0, 3:] - moved[0, 3:]).abs().amax() < 0.3
        def peak(v: torch.Tensor) -> torch.Tensor:  # (..., H, W) -> (..., 2): row and column of the brightest pixel
            i = v.flatten(-2).argmax(-1)
            return torch.stack([i // 32, i % 32], -1)

        assert (peak(out[0, 3:]) - peak(moved[0, 3:])).abs().max() <= 1  # the blob is where the moved frame has it
        torch.testing.assert_close(out[1], torch.zeros_like(out[1]))  # nothing known: the drawing (zero at init)
        # the network says: rows 3 down, columns 2 left of the known frame, whatever the estimated motion
        last = net.warp_head[-1]
        last.bias[3 + 31] = last.bias[63 + (-2 + 31)] = 100.0
        out = net(x, t, cond)
        torch.testing.assert_close(out[0, 3:], translate(fill[0, 3:], torch.tensor([[3.0, -2.0]] * 5)))
    with pytest.raises(UserError, match="motion_gate"):
        tiny((8, 1, 32, 32), motion_warp=True, motion_gate=False)


def places_clip(places: list[tuple[float, float]]) -> torch.Tensor:
    """The blob of :func:`blob_clip` at the given centres, one frame each: ``(T, 1, H, W)``."""
    return torch.cat([blob_clip(p, (0.0, 0.0), frames=1)[0] for p in places])


def test_beyond_the_known_frames_the_content_goes_on_at_its_average_velocity_since_its_last_bounce():
    # drawn at whole pixels, a speed of 1.5 px per frame shows as steps of 1 and 2: the last pair says 2
    rows = [10.0, 11.0, 13.0, 14.0, 16.0]
    clip = places_clip([(r, 16.0) for r in rows] + [(16.0, 16.0)] * 3)
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, :5] = True
    cond = make_condition(clip[None], mask)
    target, _ = known_motion(cond)
    assert target[0, 7, 0].item() == pytest.approx(16.0 + 1.5 * 3 - 10.0, abs=0.05)  # from the first known frame
    last_pair, _ = known_motion(cond, steady=False)
    assert last_pair[0, 7, 0].item() == pytest.approx(16.0 + 2.0 * 3 - 10.0, abs=0.05)
    assert target[0, 7, 1].abs().item() < 0.05 and last_pair[0, 7, 1].abs().item() < 0.05  # no move across
    # a bounce among the known frames: the velocity after it, not an average over both directions
    bounce = places_clip([(10.0, 16.0), (12.0, 16.0), (14.0, 16.0), (12.0, 16.0)] + [(16.0, 16.0)] * 2)
    mask = torch.zeros(1, 6, dtype=torch.bool)
    mask[0, :4] = True
    target, _ = known_motion(make_condition(bounce[None], mask))
    assert target[0, 5, 0].item() == pytest.approx(12.0 - 2.0 * 2 - 10.0, abs=0.05)


def test_the_steady_velocity_averages_each_axis_over_its_own_run_of_same_signed_moves():
    step = torch.tensor([[[0.0, 0.0], [1.0, 3.0], [2.0, 3.0], [-2.0, 6.0], [0.0, 0.0]]])  # (1, 5, 2)
    gap = torch.tensor([[[1.0], [1.0], [1.0], [1.0], [1.0]]])
    gap[0, 3] = 2.0  # the fourth pair spans two frames (one unknown between)
    pair = torch.tensor([[False, True, True, True, False]])
    v = steady_velocity(step, gap, pair)
    expected = torch.tensor([[[0.0, 0.0], [1.0, 3.0], [1.5, 3.0], [-1.0, 12.0 / 4.0], [0.0, 0.0]]])
    torch.testing.assert_close(v, expected)

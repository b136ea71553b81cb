"""Video: the Moving MNIST generator's physics, the video U-Net, known frames, a learned toy video
continued along its true path, the metrics' perfect values, GIF round trips and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.models.unet import Attention
from noise2data.video import metrics as M
from noise2data.video.data import clips_from_array, load_gif_folder, load_video, read_gif
from noise2data.video.known import draw_masks, make_condition, unknown_weight
from noise2data.video.model import (
    FrameAttention,
    TemporalConv,
    VideoUNet,
    VideoUNetConfig,
    known_distance,
    nearest_known,
)
from noise2data.video.motion import content_walls
from noise2data.video.moving_mnist import CANVAS, DIGIT, moving_mnist, trajectories
from noise2data.video.sampling import sample_clips
from noise2data.video.toy import moving_blobs


def tiny(shape: tuple[int, ...], **changes) -> VideoUNetConfig:
    """The tiny preset with walls at the frame's edges and a speed of 1 px a frame (training measures them on its
    clips: test_video_bounce)."""
    walls = (0.0, shape[2] - 1.0, 0.0, shape[3] - 1.0)
    return VideoUNetConfig.preset("tiny", shape, **{"walls": walls, "speed": 1.0, **changes})


def fake_digits(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Bright 28x28 blocks of different sizes as stand-in MNIST digits (tests must not need MNIST files)."""
    imgs = np.zeros((n, DIGIT, DIGIT), np.uint8)
    for i in range(n):
        s = 6 + i % 10
        imgs[i, 14 - s // 2:14 + s // 2, 10:18] = 255
    return imgs, np.arange(n) % 10


def test_digits_stay_inside_move_straight_and_reflect_at_the_walls():
    """Reflected constant-velocity motion is a straight line folded into [0, L]: check against that closed form."""
    n, frames, k, speed = 200, 40, 2, 3.0
    corners = trajectories(n, frames, k, speed, torch.Generator().manual_seed(0))  # (n, T, K, 2)
    limit = float(CANVAS - DIGIT)
    assert corners.min() >= 0 and corners.max() <= limit
    g = torch.Generator().manual_seed(0)  # the same draws: start and direction
    start = torch.rand(n, k, 2, generator=g, dtype=torch.float64) * limit
    angle = torch.rand(n, k, generator=g, dtype=torch.float64) * 2 * torch.pi
    vel = speed * torch.stack([torch.sin(angle), torch.cos(angle)], -1)
    line = start[:, None] + vel[:, None] * torch.arange(frames, dtype=torch.float64)[None, :, None, None]
    folded = limit - ((line % (2 * limit)) - limit).abs()
    assert torch.allclose(corners, folded, atol=1e-9)
    step = (corners[:, 1:] - corners[:, :-1]).norm(dim=-1)
    assert step.max() <= speed + 1e-9 and ((line < 0) | (line > limit)).any()  # walls were hit


def test_labels_and_centres_match_the_pixels():
    imgs, labels = fake_digits()
    for size in (64, 32):
        mm = moving_mnist(imgs, labels, 20, frames=10, size=size, seed=3)
        assert mm.videos.shape == (20, 10, size, size) and mm.videos.dtype == np.uint8
        frames = torch.from_numpy(mm.videos).float()[:, :, None] / 255
        measured = M.centres(frames)
        assert (measured - torch.from_numpy(mm.centers)[:, :, 0]).norm(dim=-1).max() < 0.75
        # each clip's label is its digit's: the block height (6 + i % 10) encodes the digit index
        heights = (mm.videos[:, 0] > 0).sum(1).max(1)  # rows lit in the brightest column
        assert set(mm.labels[:, 0].tolist()) <= set(labels.tolist()) and heights.min() > 0
    colour = moving_mnist(imgs, labels, 4, frames=3, size=32, color=True, seed=1)
    assert colour.videos.shape == (4, 3, 32, 32, 3) and colour.videos.max() > 200


def test_mask_mixture_and_condition():
    g = torch.Generator().manual_seed(0)
    masks = draw_masks(20_000, 16, g)
    none = ~masks.any(1)
    ends = masks[:, 0] & masks[:, -1] & (masks.sum(1) == 2)
    assert abs(float(none.double().mean()) - 0.25) < 0.02  # unconditional share, the null condition
    assert float(ends.double().mean()) > 0.14 and not masks.all(1).any()  # something is always left to learn
    x = torch.randn(3, 16, 1, 8, 8)
    cond = make_condition(x, masks[:3])
    assert cond.shape == (3, 16, 2, 8, 8)
    assert torch.equal(cond[:, :, :1] != 0, (masks[:3, :, None, None, None] & (x != 0)))
    w = unknown_weight(cond)
    assert torch.equal(w[:, :, 0, 0, 0], (~masks[:3]).float())


def test_the_video_unet_runs_on_any_length_and_keeps_frames_apart_where_it_should():
    cfg = tiny((8, 1, 16, 16))
    net = VideoUNet(cfg)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == sum(p.numel() for p in VideoUNet(tiny((32, 1, 16, 16))).parameters())
    for frames in (2, 8, 24):
        assert net(torch.randn(2, frames, 1, 16, 16), torch.rand(2)).shape == (2, frames, 1, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, T, C \+ 1, H, W\)"):
        net(torch.randn(2, 8, 1, 16, 16), torch.rand(2), torch.zeros(2, 8, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        tiny((8, 1, 20, 20))


def test_the_temporal_mixing_is_the_depthwise_convolution_its_weights_define():
    torch.manual_seed(0)
    layer = TemporalConv(16)
    for frames in (1, 2, 5):
        h = torch.randn(3 * frames, 16, 4, 4)
        z = torch.nn.functional.silu(layer.norm(h)).view(3, frames, 16, 4, 4).transpose(1, 2)
        want = h + layer.conv(z).transpose(1, 2).reshape(h.shape)
        torch.testing.assert_close(layer(h, frames), want, rtol=1e-5, atol=1e-6)
    clip = torch.zeros(5, 16, 4, 4)
    clip[2] = torch.randn(16, 4, 4)  # one frame: the product reaches only its neighbours
    with torch.no_grad():
        moved = (layer(clip, 5) - clip - layer.conv.bias.view(16, 1, 1)).abs().sum((1, 2, 3)) > 0
    assert moved[[1, 2, 3]].all() and not moved[[0, 4]].any()


def test_nearest_known_frame_matches_a_loop_and_the_options_build_and_run():
    g = torch.Generator().manual_seed(0)
    clips = torch.randn(40, 7, 2, 4, 4, generator=g)
    mask = torch.rand(40, 7, generator=g) < 0.3
    mask[0] = False  # nothing known: zeros
    fill = nearest_known(make_condition(clips, mask))
    distance = known_distance(make_condition(clips, mask), 7)
    for b in range(40):
        idx = mask[b].nonzero()[:, 0].tolist()
        for t in range(7):
            before = [i for i in idx if i <= t]
            after = [i for i in idx if i >= t]
            want = clips[b, before[-1]] if before else clips[b, after[0]] if after else torch.zeros(2, 4, 4)
            assert torch.equal(fill[b, t], want), (b, t, idx)
            since, until = (t - before[-1]) / 7 if before else -1.0, (after[0] - t) / 7 if after else -1.0
            assert distance[b, t].tolist() == pytest.approx([since, until]), (b, t, idx)
    plain = VideoUNet(tiny((8, 1, 32, 32), fill_known=False, known_distance=False, motion_fill=False))
    net = VideoUNet(tiny((8, 1, 32, 32), fill_known=True, known_distance=True, motion_fill=False,
                         temporal_attention_resolution=8))
    # [x, known, mask] (+ fill + 2 distances)
    assert (plain.conv_in.in_channels, net.conv_in.in_channels) == (3 * 16, 6 * 16)
    def across_frames(model: torch.nn.Module) -> int:
        return sum(isinstance(m, FrameAttention) and m.over == "time" for m in model.modules())

    assert across_frames(net) > across_frames(plain) > 0
    cond = make_condition(torch.randn(2, 8, 1, 32, 32), torch.arange(8)[None].expand(2, -1) < 2)
    assert net(torch.randn(2, 8, 1, 32, 32), torch.rand(2), cond).shape == (2, 8, 1, 32, 32)


def test_frame_attention_is_torchs_attention_where_it_says_and_reaches_what_it_should():
    g = torch.Generator().manual_seed(0)
    h, frames = torch.randn(3 * 5, 16, 4, 4, generator=g), 5  # (B * T, C, H, W)
    image = Attention(16, 4)  # the image U-Net's layer: checkpoints from before positions load into the new one
    new = FrameAttention(16, 4, "space", positions=False, scale=frames)
    new.load_state_dict(image.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(new(h, frames), image(h))
    for over in ("space", "time", "space-time"):  # against nn.MultiheadAttention on the sequences it names
        layer = FrameAttention(16, 4, over, positions=False, scale=frames)
        with torch.no_grad():
            z = layer.norm(h).view(3, frames, 16, 4, 4).permute(0, 1, 3, 4, 2)  # (B, T, H, W, C)
            seq = {"space": z.reshape(15, 16, 16), "time": z.permute(0, 2, 3, 1, 4).reshape(48, frames, 16),
                   "space-time": z.reshape(3, frames * 16, 16)}[over]
            out = layer.attn(seq, seq, seq, need_weights=False)[0]
            out = out.view(3, 4, 4, frames, 16).permute(0, 3, 1, 2, 4) if over == "time" else out.view_as(z)
            want = h + out.permute(0, 1, 4, 2, 3).reshape_as(h)
            torch.testing.assert_close(layer(h, frames), want, atol=1e-5, rtol=1e-5)
    # where one changed input reaches: its frame (space), its pixel (time), the whole clip (space-time)
    poke = h.clone()
    poke[2, :, 1, 3] += 3.0  # clip 0, frame 2, row 1, column 3
    for over, positions in (("space", True), ("time", True), ("space-time", False), ("space-time", True)):
        layer = FrameAttention(16, 4, over, positions, scale=frames)
        layer.norm = torch.nn.Identity()  # GroupNorm spreads a change over its frame: test the attention alone
        with torch.no_grad():
            moved = (layer(poke, frames) - layer(h, frames)).abs().sum(1).view(3, frames, 4, 4) > 1e-6
        assert not moved[1:].any()  # other clips never
        if over == "space":
            assert moved[0, 2].all() and not moved[0, [0, 1, 3, 4]].any()
        elif over == "time":
            assert moved[0, :, 1, 3].all() and moved[0].sum() == frames
        else:
            assert moved[0].all()


def test_positions_tell_places_apart_that_content_alone_cannot():
    # a clip whose positions all hold the same vector: without positions every output is the same, with
    # positions they differ by place and frame; and the layer runs on clips longer than trained
    h = torch.ones(2 * 6, 8, 4, 4)
    for over in ("space", "time", "space-time"):
        plain, placed = (FrameAttention(8, 2, over, positions, scale=4) for positions in (False, True))
        with torch.no_grad():
            a, b = plain(h, 6).view(2, 6, 8, 16), placed(h, 6).view(2, 6, 8, 16)
        assert (a - a[:, :1, :, :1]).abs().max() < 1e-5
        assert (b[:, :, :, 1:] - b[:, :, :, :1]).abs().amax((0, 1, 2)).min() > 1e-4  # every place differs
        assert (b[:, 1:] - b[:, :1]).abs().amax((0, 2, 3)).min() > 1e-4  # every frame differs
    net = VideoUNet(tiny((8, 1, 32, 32), positions=True, space_time=True))
    assert sum(isinstance(m, FrameAttention) and m.over == "space-time" for m in net.modules()) > 0
    assert not any(isinstance(m, FrameAttention) and m.over != "space-time" for m in net.modules())
    cond = make_condition(torch.randn(1, 12, 1, 32, 32), torch.arange(12)[None] < 3)
    assert net(torch.randn(1, 12, 1, 32, 32), torch.rand(1), cond).shape == (1, 12, 1, 32, 32)


def test_a_learned_blob_is_continued_along_its_true_path_and_known_frames_come_back_exactly(blob_run):
    """A blob at constant velocity (0.5 px/frame on 8x8), 3 frames known: the next 3 follow its true path."""
    clips, centres = moving_blobs(64, frames=6, size=8, speed=0.5, seed=99)  # paths not seen in training
    context = clips * 2 - 1
    mask = torch.zeros(64, 6, dtype=torch.bool)
    mask[:, :3] = True
    out = sample_clips(blob_run, 64, context=context, mask=mask, solver="midpoint", steps=8, seed=0).x
    assert torch.equal(out[:, :3], context[:, :3])  # known frames exactly as given
    err = (M.centres((out[:, 3:] + 1) / 2) - centres[:, 3:]).norm(dim=-1)  # (64, 3)
    copy_last = (centres[:, 2:3] - centres[:, 3:]).norm(dim=-1)  # standing still at the last known place
    assert float(err.mean()) < 1.0 and float(err.mean()) < 0.8 * float(copy_last.mean()), (err.mean(0),
                                                                                         copy_last.mean(0))
    longer = sample_clips(blob_run, 4, context=context[:4], mask=mask[:4], frames=11, solver="midpoint", steps=4).x
    assert longer.shape == (4, 11, 1, 8, 8) and torch.isfinite(longer).all()


def test_metrics_are_perfect_on_identical_clips_and_grow_with_corruption():
    clips, centres = moving_blobs(16, frames=6, size=16, seed=1)
    assert float(M.ssim(clips, clips).min()) > 0.9999 and float(M.psnr(clips, clips).min()) >= 99
    assert float(M.frame_sse(clips, clips).abs().max()) == 0  # OpenSTL's MSE: summed over a frame's 16 x 16 pixels
    assert torch.allclose(M.frame_sse(clips + 0.1, clips), torch.full((16, 6), 256 * 0.01), rtol=1e-5)
    assert float((M.centres(clips) - centres).norm(dim=-1).max()) < 0.3
    g = torch.Generator().manual_seed(0)
    last_p, last_s = 100.0, 1.0
    for level in (0.02, 0.1, 0.3):
        noisy = (clips + level * torch.randn(clips.shape, generator=g)).clamp(0, 1)
        p, s = float(M.psnr(noisy, clips).mean()), float(M.ssim(noisy, clips).mean())
        assert p < last_p and s < last_s
        last_p, last_s = p, s
    a = torch.randn(4000, generator=g)
    assert M.wasserstein_1d(a, a) == 0 and abs(M.wasserstein_1d(a, a + 0.5) - 0.5) < 1e-6
    classes = torch.tensor([[1, 1, 1], [1, 2, 1], [3, 3, 3]])
    assert M.identity(classes, torch.tensor([1, 1, 2])) == {"identity_kept": 2 / 3, "no_digit_frames": 0.0,
                                                            "identity_true": 1 / 3}
    # empty frames: a classifier gives them one class, but a clip of them does not keep its digit
    frames = torch.zeros(2, 3, 1, 32, 32)
    frames[0, :, :, 10:20, 12:16] = 1.0  # a bar in every frame of clip 0; clip 1 is black
    crops = M.digit_crops(frames, torch.full((2, 3, 2), 15.0))
    assert M.blank(crops).tolist() == [False] * 3 + [True] * 3
    classes = torch.where(M.blank(crops), M.NO_DIGIT, torch.full((6,), 7)).view(2, 3)
    assert M.identity(classes) == {"identity_kept": 0.5, "no_digit_frames": 0.5}


def test_gif_round_trip_and_gif_folders(tmp_path):
    pytest.importorskip("PIL")
    clips, _ = moving_blobs(3, frames=5, size=16, seed=2)
    arr = (clips[:, :, 0] * 255).round().to(torch.uint8).numpy()  # (3, 5, 16, 16)
    from PIL import Image

    for i, clip in enumerate(arr):
        frames = [Image.fromarray(f) for f in clip]
        frames[0].save(tmp_path / f"{i}.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    back = read_gif(tmp_path / "0.gif")
    assert back.shape == (5, 16, 16, 3) and np.array_equal(back[..., 0], arr[0])
    folder = load_gif_folder(tmp_path)
    assert folder.shape == (3, 5, 16, 16) and np.array_equal(folder, arr)
    t, units = clips_from_array(folder, "gifs")
    assert t.shape == (3, 5, 1, 16, 16) and units.dtype == "uint8" and units.layout == "NHW"


def test_a_run_from_before_the_preset_changed_resumes_with_its_own_network(tmp_path, monkeypatch):
    import json

    from noise2data.video import model as video_model

    clips, _ = moving_blobs(12, frames=8, size=16, seed=0)
    np.savez(tmp_path / "v.npz", videos=(clips[:, :, 0] * 255).round().to(torch.uint8).numpy())
    run, argv = tmp_path / "run", ["--batch-size", "4", "--checkpoint-every", "2", "--no-progress", "--device", "cpu"]
    added = ("fill_known", "known_distance", "motion_fill", "motion_gate", "steady_velocity", "bounce",
             "steady_speed")  # since the first preset
    old = {k: v for k, v in video_model.PRESETS["tiny"].items() if k not in added}
    with monkeypatch.context() as m:  # the tiny preset and the stored config as they were before
        m.setitem(video_model.PRESETS, "tiny", old)
        assert main(["train", "--data", f"video:{tmp_path / 'v.npz'}", "--steps", "2", "--objective", "velocity",
                     *argv, "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    for key in (*added, "temporal_attention_resolution", "positions", "space_time", "motion_warp", "walls", "speed"):
        del cfg["model"][key]
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", "--steps", "4", *argv, "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert not any(cfg["model"].get(k) for k in added)
    assert cfg["train"]["objective"] == "velocity"
    assert main(["sample", str(run), "--n", "2", "--steps", "2", "--out", str(tmp_path / "s.npy")]) == 0
    fresh = tmp_path / "fresh"
    assert main(["train", "--data", f"video:{tmp_path / 'v.npz'}", "--steps", "2", *argv, "--out", str(fresh)]) == 0
    cfg = json.loads((fresh / "config.json").read_text())
    assert cfg["model"]["fill_known"] and cfg["model"]["motion_fill"] and cfg["model"]["motion_gate"]
    assert cfg["model"]["steady_velocity"] and not cfg["model"]["motion_warp"]
    # blobs on black bounce: the walls measured on the training clips are kept in the run
    assert cfg["model"]["bounce"] and cfg["model"]["walls"] == pytest.approx(list(content_walls(load_video(
        tmp_path / "v.npz").clips)))
    assert cfg["model"]["steady_speed"] and cfg["model"]["speed"] == pytest.approx(1.0, abs=0.05)  # blobs: 1 px/frame
    assert cfg["train"]["objective"] == "data"
    still = tmp_path / "still"  # --no-bounce: for clips whose objects leave the frame
    assert main(["train", "--data", f"video:{tmp_path / 'v.npz'}", "--steps", "1", "--no-bounce", *argv,
                 "--out", str(still)]) == 0
    cfg = json.loads((still / "config.json").read_text())
    assert not cfg["model"]["bounce"] and cfg["model"]["walls"] is None
    velocity = tmp_path / "velocity"  # the gate blends a clean frame into the output: data prediction only
    assert main(["train", "--data", f"video:{tmp_path / 'v.npz'}", "--steps", "2", "--objective", "velocity", *argv,
                 "--out", str(velocity)]) == 0
    cfg = json.loads((velocity / "config.json").read_text())
    assert cfg["model"]["motion_fill"] and not cfg["model"]["motion_gate"]


def test_continue_fill_in_and_extend_from_the_cli_in_the_sources_units(video_run, tmp_path):
    root, run = video_run
    ctx = str(root / "v.npz")
    assert main(["sample", str(run), "--context", ctx, "--context-frames", "3", "--n", "5", "--steps", "2",
                 "--out", str(tmp_path / "p.npy")]) == 0
    p, given = np.load(tmp_path / "p.npy"), np.load(root / "v.npz")["videos"][:5]
    assert p.dtype == np.uint8 and p.shape == (5, 8, 16, 16) and np.array_equal(p[:, :3], given[:, :3])
    assert main(["sample", str(run), "--context", ctx, "--known", "0,7", "--n", "2", "--steps", "2",
                 "--out", str(tmp_path / "i.gif")]) == 0
    assert main(["sample", str(run), "--context", ctx, "--context-frames", "2", "--frames", "14", "--n", "2",
                 "--steps", "2", "--out", str(tmp_path / "long.npz")]) == 0
    assert np.load(tmp_path / "long.npz")["samples"].shape == (2, 14, 16, 16)
    assert main(["sample", str(run), "--n", "3", "--steps", "2", "--out", str(tmp_path / "strip.png")]) == 0


def test_eval_predicts_from_the_frames_asked_for_and_reports_openstl_mse(video_run, tmp_path, capsys):
    root, run = video_run
    out = tmp_path / "e.json"
    assert main(["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "4", "--best-of", "1", "--steps", "2",
                 "--context-frames", "5", "--out", str(out)]) == 0
    pred = json.loads(out.read_text())["metrics"]["prediction"]
    assert pred["known"] == 5 and pred["frames"] == [5, 6, 7]
    assert len(pred["mse"]["per_frame"]) == 3 and 0 < pred["mse"]["mean"] <= 16 * 16  # at most 1 per pixel
    assert len(pred["moved_ssim"]["per_frame"]) == 3 and -1 <= pred["moved_ssim"]["mean"] <= 1  # the motion baseline
    printed = capsys.readouterr().out
    assert "MSE per frame" in printed and ", moved " in printed
    assert main(["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "4", "--context-frames", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--context-frames must be 1..7" in err and len(err.splitlines()) == 1


def test_the_known_sampler_drives_prediction_and_interpolation_and_the_solver_generation(video_run, tmp_path, capsys):
    root, run = video_run
    common = ["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "4", "--best-of", "1"]
    results = {}
    for name, argv in (("euler1", ["--solver", "euler", "--steps", "1"]),
                       ("mid2", ["--solver", "midpoint", "--steps", "2"]),
                       ("both", ["--solver", "midpoint", "--steps", "2", "--known-sampler", "euler:1"])):
        assert main([*common, *argv, "--out", str(tmp_path / f"{name}.json")]) == 0
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    m = {k: r["metrics"] for k, r in results.items()}
    for task in ("prediction", "interpolation"):  # the same samples as an eval with that sampler alone
        assert m["both"][task]["ssim"] == m["euler1"][task]["ssim"] != m["mid2"][task]["ssim"]
    assert m["both"]["generation"]["speed_w1"] == m["mid2"]["generation"]["speed_w1"]
    assert m["both"]["generation"]["speed_w1"] != m["euler1"]["generation"]["speed_w1"]
    assert results["both"]["known_sampler"] == {"solver": "euler", "steps": 1, "grid": "uniform"}
    assert "known_sampler" not in results["mid2"]
    assert "(euler 1 steps, guidance 1.25 over the known frames for prediction and interpolation)" in \
        capsys.readouterr().out
    assert main([*common, "--known-sampler", "euler:1:refine", "--out", str(tmp_path / "refine.json")]) == 0
    refine = json.loads((tmp_path / "refine.json").read_text())
    assert refine["known_sampler"]["grid"] == "refine"
    assert refine["metrics"]["prediction"]["ssim"] == m["euler1"]["prediction"]["ssim"]  # one step: the grid is moot
    capsys.readouterr()
    for bad in ("euler", "rk9:2", "euler:0", "euler:2:late", "euler:2:refine:x"):
        assert main([*common, "--known-sampler", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "--known-sampler takes SOLVER:STEPS[:GRID]" in err and len(err.splitlines()) == 1, err


def test_clips_with_known_frames_sample_with_euler_2_unless_the_user_picks_a_sampler(video_run, tmp_path, capsys):
    root, run = video_run
    ctx = f"video:{root / 'v.npz'}"
    given = ["sample", str(run), "--context", ctx, "--context-frames", "3", "--n", "3"]
    outs = {}
    for name, argv in (("default", []), ("euler2", ["--solver", "euler", "--steps", "2", "--grid", "refine"]),
                       ("uniform", ["--solver", "euler", "--steps", "2"]),
                       ("steps2", ["--steps", "2"]), ("nfe4", ["--nfe", "4"])):
        assert main([*given, *argv, "--out", str(tmp_path / f"{name}.npy")]) == 0
        outs[name] = (np.load(tmp_path / f"{name}.npy"), capsys.readouterr().err)
    assert np.array_equal(outs["default"][0], outs["euler2"][0]) and "(euler on the refine grid, 2 NFE" in \
        outs["default"][1]
    assert "(euler, 2 NFE" in outs["uniform"][1]
    for name, argv in (("raw_default", []), ("raw_uniform", ["--solver", "euler", "--steps", "2"])):
        assert main([*given, *argv, "--raw", "--out", str(tmp_path / f"{name}.npy")]) == 0
    raw = {k: np.load(tmp_path / f"raw_{k}.npy") for k in ("default", "uniform")}
    assert not np.array_equal(raw["default"], raw["uniform"])  # the grids differ (uint8 rounds both alike here)
    assert "(midpoint, 4 NFE" in outs["steps2"][1]  # --steps alone: the run's solver with those steps
    assert "(midpoint, 4 NFE" in outs["nfe4"][1] and np.array_equal(outs["steps2"][0], outs["nfe4"][0])
    assert not np.array_equal(outs["uniform"][0], outs["steps2"][0])  # euler against the run's midpoint
    assert main(["sample", str(run), "--n", "2", "--lead-frames", "0", "--out", str(tmp_path / "gen.npy")]) == 0
    assert "(midpoint, 16 NFE" in capsys.readouterr().err  # clips drawn whole keep the run's default
    common = ["eval", str(run), "--data", ctx, "--n", "4", "--best-of", "1"]
    assert main([*common, "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["known_sampler"] == {"solver": "euler", "steps": 2,
                                                                               "grid": "refine"}
    assert main([*common, "--steps", "8", "--out", str(tmp_path / "e8.json")]) == 0  # one sampler for every task
    assert "known_sampler" not in json.loads((tmp_path / "e8.json").read_text())


@pytest.mark.parametrize("argv, message", [
    (["--context", "{other}", "--context-frames", "2"], "frames of shape (1, 8, 8)"),
    (["--context", "{ctx}", "--context-frames", "8"], "--context-frames must be 1..7"),
    (["--context", "{ctx}", "--context-frames", "0"], "--context-frames must be 1..7"),
    (["--context", "{ctx}", "--known", "0,9"], "out of range"),
    (["--known", "0,2"], "give --context FILE"),
    (["--label", "1"], "not labels"),
])
def test_bad_video_sampling_is_one_line(video_run, tmp_path, capsys, argv, message):
    root, run = video_run
    other = tmp_path / "o.npz"
    np.savez(other, videos=np.zeros((6, 8, 8, 8), np.uint8))
    argv = [a.format(ctx=root / "v.npz", other=other) for a in argv]
    code = main(["sample", str(run), "--n", "2", "--steps", "2", "--out", str(tmp_path / "x.npy"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_bad_video_data_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.zeros((5, 8, 8), np.uint8))
    (tmp_path / "empty").mkdir()
    cases = [(f"video:{tmp_path / 'flat.npy'}", "a 3-D array is a set of images"),
             (f"video:{tmp_path / 'empty'}", "holds no GIF clips"),
             (f"video:{tmp_path / 'missing.npz'}", "video file not found")]
    for spec, message in cases:
        assert main(["train", "--data", spec, "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    clips, _ = moving_blobs(4, frames=4, size=8, seed=0)
    np.save(tmp_path / "v.npy", (clips[:, :, 0] * 255).round().to(torch.uint8).numpy())
    for coupling in ("ot", "ot-blocks", "ot-blocks:8"):  # the condition is the known frames: no re-pairing
        assert main(["train", "--data", f"video:{tmp_path / 'v.npy'}", "--coupling", coupling, "--out",
                     str(tmp_path / "r"), "--steps", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert "do not apply to video" in err and len(err.splitlines()) == 1, err
    small = ["--data", f"video:{tmp_path / 'v.npy'}", "--preset", "small", "--bounce"]  # no moved frame to reflect
    for argv, message in ((small, "needs motion_fill"), (["--data", "checkerboard", "--bounce"], "--bounce does not")):
        assert main(["train", *argv, "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_the_report_samples_as_sample_does_and_says_with_what(video_run, tmp_path):
    pytest.importorskip("matplotlib")
    from browser import embedded_images

    _, run = video_run
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--device", "cpu", "--out", str(page)]) == 0
    html = page.read_text()
    assert {"generated clips", "prediction"} <= set(embedded_images(html))
    # generation (whole clips, then Euler 2 after the first quarter of the frames, as sample); frames given
    known = "euler 2 steps on the refine grid, guidance 1.25 over the known frames"
    assert f"(midpoint, 8 steps; {known} after the first 2 frames)" in html and f"{known}." in html
    assert main(["report", str(run), "--device", "cpu", "--guidance", "1", "--out", str(page)]) == 0
    assert "euler 2 steps on the refine grid, guidance 1 over the known frames." in page.read_text()  # as asked

"""Clips made from nothing in two stages (``--lead-frames K``, by default a quarter of the frames): the first K
frames of clips drawn whole, the rest continued from them as a prediction is. The stages compose exactly, the
continuation follows the motion of the frames drawn first, and the CLI, eval and bad input behave as the rest of
video sampling does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.video import metrics as M
from noise2data.video.known import known_mask
from noise2data.video.sampling import generate_clips, sample_clips


def test_two_stages_keep_the_frames_drawn_first_and_continue_them_as_a_prediction(blob_run):
    n, lead = 64, 3
    whole = sample_clips(blob_run, n, solver="midpoint", steps=8, seed=3)
    two = generate_clips(blob_run, n, lead, solver="midpoint", steps=8, known_sampler=("euler", 4), seed=3)
    assert two.x.shape == whole.x.shape and two.nfe == whole.nfe + 4
    assert torch.equal(two.x[:, :lead], whole.x[:, :lead])  # the lead frames are the clips drawn whole
    again = sample_clips(blob_run, n, context=whole.x, mask=known_mask(n, 6, context_frames=lead), solver="euler",
                         steps=4, seed=4)
    assert torch.equal(two.x, again.x)  # ... and the rest is exactly their prediction
    # the continued blob moves on at the training clips' speed (0.5 px a frame), the way the drawn frames went
    c = M.centres((two.x + 1) / 2)  # (n, 6, 2)
    lead_vel = (c[:, lead - 1] - c[:, 0]) / (lead - 1)  # (n, 2)
    moves = c[:, lead:] - c[:, lead - 1:-1]  # (n, 3, 2): the continued frames' moves
    speed = moves.norm(dim=-1)
    cos = torch.nn.functional.cosine_similarity(moves[:, 0], lead_vel, dim=-1)  # the first move after the lead
    clear = lead_vel.norm(dim=-1) > 0.3  # a lead that moves clearly
    assert int(clear.sum()) >= 16
    assert abs(float(speed.mean()) - 0.5) < 0.15 and float(cos[clear].mean()) > 0.7, (speed.mean(0), cos[clear])
    longer = generate_clips(blob_run, 4, 2, frames=11, solver="midpoint", steps=2, known_sampler=("euler", 2))
    assert longer.x.shape == (4, 11, 1, 8, 8) and torch.isfinite(longer.x).all()


def test_lead_frames_from_the_cli_and_in_eval(video_run, tmp_path, capsys):
    root, run = video_run
    assert main(["sample", str(run), "--n", "3", "--lead-frames", "0", "--out", str(tmp_path / "whole.npy")]) == 0
    assert "(midpoint, 16 NFE" in capsys.readouterr().err  # drawn whole
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "two.npy")]) == 0  # the default: 2 of 8
    err = capsys.readouterr().err
    assert "(midpoint, then euler 2 steps on the refine grid after the first 2 frames, 18 NFE" in err, err  # 8 + 2
    assert main(["sample", str(run), "--n", "3", "--lead-frames", "2", "--out", str(tmp_path / "two2.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "two.npy"), np.load(tmp_path / "two2.npy"))
    whole, two = np.load(tmp_path / "whole.npy"), np.load(tmp_path / "two.npy")
    assert two.shape == whole.shape == (3, 8, 16, 16) and two.dtype == np.uint8
    assert np.array_equal(two[:, :2], whole[:, :2]) and not np.array_equal(two, whole)
    out = tmp_path / "e.json"
    assert main(["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "8", "--best-of", "1",
                 "--lead-frames", "3", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["generation_lead"]["lead_frames"] == 3 and m["generation_lead"]["n"] == m["generation"]["n"]
    assert m["generation_lead"]["speed_w1_floor"] == m["generation"]["speed_w1_floor"]  # the same real clips
    assert "the first 3 frames drawn and the rest continued" in capsys.readouterr().out
    for lead, want in (([], 2), (["--lead-frames", "0"], None)):  # by default as sample: 2 of the 8 frames
        assert main(["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "4", "--best-of", "1", *lead,
                     "--out", str(tmp_path / "plain.json")]) == 0
        got = json.loads((tmp_path / "plain.json").read_text())["metrics"].get("generation_lead", {}).get("lead_frames")
        assert got == want


@pytest.mark.parametrize("argv, message", [
    (["sample", "--lead-frames", "8"], "--lead-frames must be 1..7"),
    (["sample", "--lead-frames", "-1"], "--lead-frames must be 1..7"),
    (["sample", "--lead-frames", "2", "--context", "{ctx}", "--context-frames", "2"], "give one"),
    (["eval", "--lead-frames", "9", "--data", "video:{ctx}"], "--lead-frames must be 1..7"),
])
def test_bad_lead_frames_are_one_line(video_run, tmp_path, capsys, argv, message):
    root, run = video_run
    argv = [argv[0], str(run), *(a.format(ctx=root / "v.npz") for a in argv[1:])]
    out = tmp_path / ("x.npy" if argv[0] == "sample" else "e.json")
    code = main([*argv, "--n", "2", "--steps", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()

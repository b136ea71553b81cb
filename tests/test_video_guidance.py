"""Guidance over the known frames (the empty mask is the null condition) by the measured scale
(``KNOWN_GUIDANCE``) wherever frames are known and the user gave no ``--guidance``: prediction, interpolation and
the frames continued after the lead frames of clips made from nothing; clips drawn whole have nothing to guide by."""

from __future__ import annotations

import json

import numpy as np
import torch

from noise2data.cli import main
from noise2data.video import metrics as M
from noise2data.video.sampling import KNOWN_GUIDANCE, sample_clips
from noise2data.video.toy import moving_blobs


def test_a_guided_blob_still_follows_its_true_path(blob_run):
    """At the default scale the continued blob stays within 1 px of its true path, as unguided (and moves: it
    is nearer its path than a copy of the last known frame)."""
    clips, centres = moving_blobs(64, frames=6, size=8, speed=0.5, seed=99)
    context = clips * 2 - 1
    mask = torch.zeros(64, 6, dtype=torch.bool)
    mask[:, :3] = True
    copy_last = (centres[:, 2:3] - centres[:, 3:]).norm(dim=-1).mean()
    for w in (1.0, KNOWN_GUIDANCE):
        out = sample_clips(blob_run, 64, context=context, mask=mask, solver="euler", steps=2, seed=0, guidance=w).x
        assert torch.equal(out[:, :3], context[:, :3])
        err = (M.centres((out[:, 3:] + 1) / 2) - centres[:, 3:]).norm(dim=-1).mean()
        assert float(err) < 1.0 and float(err) < 0.8 * float(copy_last), (w, err, copy_last)


def test_known_frames_are_guided_by_the_measured_scale_unless_guidance_is_given(video_run, tmp_path, capsys):
    root, run = video_run
    ctx = ["--context", str(root / "v.npz"), "--context-frames", "3"]
    outs = {}
    for name, extra in (("default", []), ("same", ["--guidance", str(KNOWN_GUIDANCE)]), ("none", ["--guidance", "1"])):
        assert main(["sample", str(run), "--n", "4", *ctx, *extra, "--out", str(tmp_path / f"{name}.npy")]) == 0
        outs[name] = np.load(tmp_path / f"{name}.npy")
        err = capsys.readouterr().err
        assert (f"guidance {KNOWN_GUIDANCE:g} over the known frames" in err) == (name != "none"), err
    assert np.array_equal(outs["default"], outs["same"]) and not np.array_equal(outs["default"], outs["none"])
    assert np.array_equal(outs["default"][:, :3], outs["none"][:, :3])  # the known frames as given either way
    # drawn whole: nothing known, so any scale gives the same clips
    for name, extra in (("w1", []), ("w3", ["--guidance", "3"])):
        assert main(["sample", str(run), "--n", "3", "--lead-frames", "0", *extra,
                     "--out", str(tmp_path / f"{name}.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "w1.npy"), np.load(tmp_path / "w3.npy"))
    assert "guidance" not in capsys.readouterr().err
    # eval: the same default, recorded and printed
    common = ["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "4", "--best-of", "1"]
    got = {}
    for name, extra in (("default", []), ("same", ["--guidance", str(KNOWN_GUIDANCE)]), ("none", ["--guidance", "1"])):
        assert main([*common, *extra, "--out", str(tmp_path / f"e_{name}.json")]) == 0
        got[name] = json.loads((tmp_path / f"e_{name}.json").read_text())
    assert got["default"]["known_guidance"] == got["same"]["known_guidance"] == KNOWN_GUIDANCE
    assert got["none"]["known_guidance"] == 1.0
    ssim = {k: r["metrics"]["prediction"]["ssim"]["mean"] for k, r in got.items()}
    assert ssim["default"] == ssim["same"] != ssim["none"]
    lead = {k: r["metrics"]["generation_lead"]["speed_w1"] for k, r in got.items()}
    assert lead["default"] == lead["same"] != lead["none"]  # the continued frames are guided too
    whole = {k: r["metrics"]["generation"]["speed_w1"] for k, r in got.items()}
    assert whole["default"] == whole["none"]  # ... the clips drawn whole are not
    printed = capsys.readouterr().out
    assert printed.count(f"guidance {KNOWN_GUIDANCE:g} over the known frames") == 2, printed

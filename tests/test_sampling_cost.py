"""What a sample reports it cost is what the network did: NFE counts evaluations of the (guided) field, and where
classifier-free guidance evaluates the network twice per field evaluation (the condition and its null), the
network's evaluations are reported beside it, counted here by the rows that pass through the network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.run import load_run
from noise2data.samplers import SamplerOutput
from noise2data.video.sampling import generate_clips, sample_clips


class RowCounter:
    """Counts the samples that pass through ``model.forward`` (one network evaluation per row)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = model.register_forward_pre_hook(self.hook)

    def hook(self, module: torch.nn.Module, args: tuple) -> None:
        self.rows += len(args[0])


def test_cost_words_name_the_network_evaluations_only_where_they_differ():
    x = torch.zeros(1, 2)
    assert SamplerOutput(x=x, nfe=8).cost_words() == "8 NFE"
    assert SamplerOutput(x=x, nfe=8, network_evals=8).cost_words() == "8 NFE"
    assert SamplerOutput(x=x, nfe=8, network_evals=16).cost_words() == "8 NFE, 16 network evaluations (guided)"


@pytest.fixture(scope="module")
def label_run(tmp_path_factory):  # noqa: ANN201 - (run folder, its Run)
    root = tmp_path_factory.mktemp("labels")
    g = np.random.default_rng(0)
    np.save(root / "x.npy", g.standard_normal((64, 2)).astype(np.float32))
    np.savetxt(root / "y.csv", g.integers(0, 2, 64), fmt="%d")
    assert main(["train", "--data", str(root / "x.npy"), "--labels", str(root / "y.csv"), "--steps", "2",
                 "--hidden", "16", "--depth", "1", "--out", str(root / "run"), "--no-progress", "--device", "cpu"]) == 0
    return root / "run", load_run(root / "run", device="cpu")


@pytest.mark.parametrize(("solver", "steps", "nfe"), [("euler", 4, 4), ("midpoint", 3, 6)])
def test_label_guidance_reports_twice_the_network_evaluations(label_run, solver, steps, nfe):
    _, run = label_run
    n = 5
    for label, w, evals in ((None, 1.0, None), (0, 1.0, None), (0, 2.0, 2 * nfe)):
        count = RowCounter(run.model)
        out = run.sample(n, solver=solver, steps=steps, label=label, guidance=w)
        count.handle.remove()
        assert out.nfe == nfe and out.network_evals == evals
        assert count.rows == n * (evals or nfe)  # what the network did


def test_outside_the_guidance_interval_the_null_is_not_evaluated(label_run):
    """Euler 4 evaluates at t = 0, 0.25, 0.5 and 0.75; guided on [0.5, 1] only the last two also need the null
    label: 6 network evaluations, not 8; with no grid time inside, the samples are the conditional field's."""
    _, run = label_run
    count = RowCounter(run.model)
    out = run.sample(5, solver="euler", steps=4, label=1, guidance=3.0, guidance_interval=(0.5, 1.0))
    count.handle.remove()
    assert (out.nfe, out.network_evals, count.rows) == (4, 6, 5 * 6)
    outside = run.sample(5, solver="euler", steps=4, label=1, guidance=3.0, guidance_interval=(0.9, 1.0))
    assert outside.network_evals == 4  # no grid time inside: the conditional field alone
    assert torch.allclose(outside.x, run.sample(5, solver="euler", steps=4, label=1).x, atol=1e-6)
    assert run.sample(5, solver="euler", steps=4, label=1, guidance=3.0).network_evals == 8


def test_the_sample_message_says_the_guided_cost(label_run, tmp_path, capsys):
    run_dir, _ = label_run
    for w, words in (("1", "(midpoint, guidance 1, label 0, 8 NFE, step"),
                     ("3", "(midpoint, guidance 3, label 0, 8 NFE, 16 network evaluations (guided), step")):
        assert main(["sample", str(run_dir), "--label", "0", "--guidance", w, "--steps", "4", "--n", "3",
                     "--out", str(tmp_path / "s.npy")]) == 0
        err = capsys.readouterr().err
        assert words in err, err
    assert main(["sample", str(run_dir), "--label", "0", "--guidance", "3", "--guidance-interval", "0.5,1", "--steps",
                 "2", "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert "(midpoint, guidance 3 on t in [0.5, 1], label 0, 4 NFE, 6 network evaluations (guided)" in \
        capsys.readouterr().err


def test_video_guidance_over_known_frames_counts_both_evaluations(blob_run):
    n = 4
    context = torch.zeros(n, 6, 1, 8, 8)
    mask = torch.zeros(n, 6, dtype=torch.bool)
    mask[:, :2] = True
    cases = ((None, 1.25, 3, 3), (mask, 1.0, 3, 3), (mask, 1.25, 3, 6))  # nothing known: nothing to guide by
    for m, w, nfe, evals in cases:
        count = RowCounter(blob_run.model)
        out = sample_clips(blob_run, n, context=context, mask=m, solver="euler", steps=3, guidance=w)
        count.handle.remove()
        assert (out.nfe, out.network_evals, count.rows) == (nfe, evals, n * evals)
    # longer than T (two blocks of 6 frames overlapping by the 2 given): the second block is given frames too
    count = RowCounter(blob_run.model)
    out = sample_clips(blob_run, n, context=context, mask=mask, frames=10, solver="euler", steps=2, guidance=1.25)
    count.handle.remove()
    assert out.x.shape[1] == 10 and out.nfe == 2 * 2 and out.network_evals == count.rows // n == 2 * 4
    # two stages: drawn whole (unguided), then continued after the lead frames (guided)
    count = RowCounter(blob_run.model)
    out = generate_clips(blob_run, n, 2, solver="euler", steps=3, known_sampler=("euler", 2), guidance=1.25)
    count.handle.remove()
    assert out.nfe == 3 + 2 and out.network_evals == count.rows // n == 3 + 2 * 2
    assert out.cost_words() == "5 NFE, 7 network evaluations (guided)"


def test_eval_guides_the_known_frames_on_the_interval_it_is_given(video_run, tmp_path, capsys):
    """Euler 2 on the refine grid evaluates at t = 0 and 0.99: guided on [0, 0.5], the second evaluation is the
    conditional one alone, so prediction changes; the interval is recorded and printed; a bad one is one line."""
    root, run = video_run
    common = ["eval", str(run), "--data", f"video:{root / 'v.npz'}", "--n", "4", "--best-of", "1", "--lead-frames", "0"]
    got = {}
    for name, extra in (("whole", []), ("first", ["--guidance-interval", "0,0.5"])):
        assert main([*common, *extra, "--out", str(tmp_path / f"{name}.json")]) == 0
        got[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert "known_guidance_interval" not in got["whole"] and got["first"]["known_guidance_interval"] == [0.0, 0.5]
    ssim = [r["metrics"]["prediction"]["ssim"]["mean"] for r in got.values()]
    assert ssim[0] != ssim[1]
    assert "over the known frames on t in [0, 0.5]" in capsys.readouterr().out
    assert main(["sample", str(run), "--n", "2", "--context", str(root / "v.npz"), "--context-frames", "3",
                 "--guidance-interval", "0,0.5", "--out", str(tmp_path / "c.npy")]) == 0  # sample says it too
    assert "over the known frames on t in [0, 0.5]" in capsys.readouterr().err
    for bad, words in (("0.8,0.2", "0 <= lo <= hi <= 1"), ("half", "takes LO,HI")):
        assert main([*common, "--guidance-interval", bad, "--out", str(tmp_path / "bad.json")]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err

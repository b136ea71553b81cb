"""The few-step commands end to end: train --objective meanflow, distill, reflow, their resume and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from noise2data.cli import main

FAST = ["--batch-size", "64", "--hidden", "32", "--depth", "2", "--n-data", "2000", "--checkpoint-every", "10",
        "--no-progress", "--device", "cpu", "--lr-schedule", "constant"]


def weights(run, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))


def same_weights(a, b, step: int) -> None:
    wa, wb = weights(a, step), weights(b, step)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("fewstep") / "base"
    assert main(["train", "--data", "moons", "--steps", "20", "--time-embedding", "smooth", "--out", str(out),
                 *FAST]) == 0
    return out


def test_meanflow_run_samples_in_one_jump_by_default(tmp_path, capsys):
    out = tmp_path / "mf"
    assert main(["train", "--data", "moons", "--steps", "10", "--objective", "meanflow", "--out", str(out),
                 *FAST]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["mean_flow"] is True and cfg["model"]["time_embedding"] == "smooth"
    assert cfg["train"]["mean_flow"]["ratio"] == 0.25
    capsys.readouterr()
    assert main(["sample", str(out), "--steps", "1", "--n", "50", "--out", str(tmp_path / "x.npy")]) == 0
    assert "(meanflow, 1 NFE" in capsys.readouterr().err
    assert np.load(tmp_path / "x.npy").shape == (50, 2)
    # the instantaneous velocity u(x, t, t) serves the ODE solvers too
    assert main(["sample", str(out), "--solver", "midpoint", "--nfe", "4", "--n", "20",
                 "--out", str(tmp_path / "y.npy")]) == 0
    # quality against the budget, for every sampler the run supports (midpoint cannot spend 1)
    assert main(["eval", str(out), "--sweep", "1,2", "--n", "200", "--metrics", "w2"]) == 0
    rows = json.loads((out / "eval_sweep.json").read_text())["sweep"]
    assert [(r["solver"], r["nfe"]) for r in rows] == [("meanflow", 1), ("meanflow", 2), ("midpoint", 2)]
    assert all(r["result"]["metrics"]["w2"]["floor"] > 0 for r in rows)
    assert main(["eval", str(out), "--sweep", "1", "--steps", "2"]) == 2


def test_distill_starts_from_the_source_and_resumes_exactly(source, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["distill", str(source), "--steps", "20", "--out", str(a), "--no-progress"]) == 0
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["distill"]["teacher_velocity"] and cfg["distill"]["step"] == 20
    assert cfg["model"]["mean_flow"] and cfg["train"]["objective"] == "meanflow"
    assert main(["distill", str(source), "--steps", "10", "--out", str(b), "--no-progress"]) == 0
    assert main(["distill", str(source), "--steps", "20", "--out", str(b), "--resume", "--no-progress"]) == 0
    same_weights(a, b, 20)
    assert main(["train", "--out", str(b), "--resume", "--steps", "30", "--no-progress"]) == 0  # as any run
    capsys.readouterr()
    assert main(["eval", str(b), "--n", "200", "--metrics", "w2", "--steps", "1"]) == 0
    assert "meanflow 1 steps (1 NFE)" in capsys.readouterr().out


def test_reflow_trains_on_stored_pairs_and_resumes_exactly(source, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, steps in ((a, 20), (b, 10)):
        assert main(["reflow", str(source), "--pairs", "500", "--sample-steps", "4", "--steps", str(steps),
                     "--out", str(out), "--no-progress"]) == 0
    pairs = load_file(str(a / "reflow_pairs.safetensors"))
    assert pairs["x0"].shape == pairs["x1"].shape == (500, 2)
    assert main(["reflow", str(source), "--steps", "20", "--out", str(b), "--resume", "--no-progress"]) == 0
    same_weights(a, b, 20)
    assert main(["sample", str(a), "--nfe", "1", "--solver", "euler", "--n", "20",
                 "--out", str(tmp_path / "x.npy")]) == 0


def test_bad_input_gets_one_line_and_exit_2(source, tmp_path, capsys):
    def fails(argv, match):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # argparse's own check: one line, exit 2
        main(["sample", str(source), "--steps", "0", "--n", "5", "--out", str(tmp_path / "x.npy")])
    assert stop.value.code == 2 and "--steps: expected a positive integer" in capsys.readouterr().err
    fails(["sample", str(source), "--solver", "meanflow", "--n", "5", "--out", str(tmp_path / "x.npy")],
          "needs a jump model")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((source / "config.json").read_text())
    fails(["reflow", str(empty), "--steps", "5", "--out", str(tmp_path / "r")], "no intact checkpoint")
    fails(["reflow", str(tmp_path / "nothing"), "--steps", "5", "--out", str(tmp_path / "r")], "not a noise2data run")
    noise = tmp_path / "noise"
    assert main(["train", "--data", "moons", "--steps", "2", "--objective", "noise", "--out", str(noise), *FAST]) == 0
    fails(["distill", str(noise), "--steps", "5", "--out", str(tmp_path / "d")], "not a velocity")
    dist = tmp_path / "dist"
    assert main(["distill", str(source), "--steps", "2", "--out", str(dist), "--no-progress"]) == 0
    fails(["distill", str(dist), "--steps", "5", "--out", str(tmp_path / "d2")], "already a jump model")
    fails(["distill", str(source), "--steps", "5", "--out", str(dist)], "already holds a run")
    fails(["train", "--data", "moons", "--objective", "meanflow", "--mf-ratio", "2", "--out", str(tmp_path / "m"),
           *FAST], "--mf-ratio")


def test_guidance_baked_into_a_labelled_meanflow_run(tmp_path, capsys):
    """--mf-guidance trains the jump model on the guided velocity; a guided sample then costs one evaluation."""
    g = np.random.default_rng(0)
    labels = g.integers(0, 2, 600)
    x = np.stack([labels * 4.0 - 2.0, np.zeros(600)], 1) + 0.3 * g.standard_normal((600, 2))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", labels)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--steps", "10",
                 "--objective", "meanflow", "--mf-guidance", "2", "--out", str(out), *FAST[:4], *FAST[8:]]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["mean_flow"]["guidance"] == 2.0
    capsys.readouterr()
    assert main(["sample", str(out), "--label", "1", "--steps", "1", "--n", "20",
                 "--out", str(tmp_path / "s.npy")]) == 0
    err = capsys.readouterr().err
    assert "(meanflow" in err and " 1 NFE" in err
    assert main(["sample", str(out), "--label", "1", "--guidance", "3", "--n", "5",
                 "--out", str(tmp_path / "s.npy")]) == 2  # guided twice: refused


def test_image_jump_models_default_to_ot_within_classes(tmp_path, capsys):
    """--coupling auto: exact minibatch OT (within each class) for an image jump model, independent pairs for
    an image flow model; config.json keeps what was used."""
    small = ["--model", "mlp", "--hidden", "16", "--depth", "1", "--steps", "2", "--batch-size", "16",
             "--cond", "label", "--no-progress", "--device", "cpu"]
    for objective, expected in (("meanflow", "ot"), ("velocity", "independent")):
        out = tmp_path / objective
        assert main(["train", "--data", "digits", "--objective", objective, "--out", str(out), *small]) == 0
        assert f"{expected} coupling" in capsys.readouterr().err
        assert json.loads((out / "config.json").read_text())["train"]["coupling"] == expected

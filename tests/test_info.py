"""``noise2data info``: what a run folder holds, read from its files (config, log, checkpoints, eval.json)."""

from __future__ import annotations

import json

import numpy as np

from noise2data.cli import main
from noise2data.run import load_run

SMALL = ["--hidden", "16", "--depth", "1", "--batch-size", "32", "--no-progress", "--device", "cpu"]


def test_info_of_a_run_its_derived_run_and_a_labelled_one(tmp_path, capsys):
    run = tmp_path / "m"
    assert main(["train", "--data", "moons", "--steps", "30", "--checkpoint-every", "10", "--out", str(run),
                 *SMALL]) == 0
    assert main(["eval", str(run), "--n", "200", "--metrics", "w2", "--repeats", "1"]) == 0
    capsys.readouterr()
    assert main(["info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    params = sum(p.numel() for p in load_run(run).model.parameters())
    assert info["model"] == {"name": "mlp", "parameters": params}  # from the safetensors header alone
    assert info["step"] == 30 and info["checkpoints"] == [10, 20, 30] and info["last_loss"]["step"] == 30
    assert info["data"]["shape"] == [2] and info["modality"] == "vectors" and info["eval"]["step"] == 30
    assert main(["info", str(run)]) == 0
    text = capsys.readouterr().out
    assert f"mlp, {params:,} parameters" in text and "step 30 of 30 (finished)" in text
    assert "checkpoints  10, 20, 30" in text and "last evaluation (eval.json, step 30)" in text and "w2" in text
    assert "guidance" not in text  # nothing to guide

    derived = tmp_path / "d"
    assert main(["distill", str(run), "--steps", "5", "--out", str(derived), "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["info", str(derived)]) == 0
    text = capsys.readouterr().out
    assert f"made by      distill of {run.resolve()} at step 30" in text and "default solver meanflow" in text

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", images=(rng.random((20, 8, 8)) * 255).astype(np.uint8), labels=np.arange(20) % 2)
    images = tmp_path / "i"
    assert main(["train", "--data", f"images:{tmp_path / 'img.npz'}", "--cond", "label", "--minutes", "0.005",
                 "--out", str(images), "--batch-size", "4", "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["info", str(images)]) == 0
    text = capsys.readouterr().out
    assert "images run" in text and "2 classes (dropped with probability 0.1 for guidance)" in text
    assert "of 0.005 minutes" in text and "on t in [0.3, 1] unless --guidance-interval" in text


def test_info_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run folder not found" in err[0]
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 2
    assert "not a noise2data run" in capsys.readouterr().err

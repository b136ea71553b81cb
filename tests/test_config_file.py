"""``train --config FILE``: TOML or JSON options keyed by the flags' names; flags on the command line
win; a run's own config.json repeats that run bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from noise2data.cli import main

FAST = ["--steps", "30", "--batch-size", "64", "--hidden", "32", "--depth", "2", "--n-data", "1000",
        "--checkpoint-every", "15", "--no-progress", "--device", "cpu"]


def weights(run) -> dict[str, torch.Tensor]:  # noqa: ANN001
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    ema = {f"ema.{k}": v for k, v in load_file(ckpt / "ema.safetensors").items()}
    return load_file(ckpt / "model.safetensors") | ema


def test_a_runs_config_json_repeats_the_run_bit_for_bit(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--data", "8gaussians", "--out", str(a), "--seed", "3", "--lr", "3e-3", *FAST]) == 0
    assert main(["train", "--config", str(a / "config.json"), "--out", str(b), "--no-progress"]) == 0
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    cfg_a, cfg_b = (json.loads((r / "config.json").read_text()) for r in (a, b))
    assert cfg_a["cli"] == cfg_b["cli"] and cfg_a["model"] == cfg_b["model"]


def test_toml_and_json_options_with_the_command_line_winning(tmp_path):
    toml = tmp_path / "opts.toml"
    toml.write_text('data = "moons"\nbatch-size = 32\nsteps = 25\nhidden = 16\ndepth = 1\nn_data = 500\n'
                    'lr = 0.004\nhflip = false\n')
    out = tmp_path / "t"
    assert main(["train", "--config", str(toml), "--steps", "12", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    cli = json.loads((out / "config.json").read_text())["cli"]
    assert (cli["batch_size"], cli["steps"], cli["hidden"], cli["lr"], cli["n_data"]) == (32, 12, 16, 0.004, 500)
    js = tmp_path / "opts.json"
    js.write_text(json.dumps({"data": "circles", "batch_size": 16, "steps": 5, "hidden": 8, "depth": 1}))
    assert main(["train", f"--config={js}", "--out", str(tmp_path / "j"), "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "j" / "config.json").read_text())["cli"]["data"] == "circles"


@pytest.mark.parametrize("content, suffix, message", [
    ('batch-size = 64\nbatch-sise = 3\n', ".toml", "unknown training option(s) batch-sise; did you mean batch-size?"),
    ('zzz = 3\n', ".toml", "unknown training option(s) zzz; the options are"),
    ('steps = "many"\n', ".toml", "--steps: expected a positive integer, got 'many'"),
    ('steps = \n', ".toml", "is not valid TOML"),
    ('[1, 2]', ".json", "expected a table of options"),
    (None, ".toml", "config file not found"),
])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, suffix, message):
    f = tmp_path / f"c{suffix}"
    if content is not None:
        f.write_text(content)
    try:
        code = main(["train", "--data", "moons", "--config", str(f), "--out", str(tmp_path / "r")])
    except SystemExit as exc:  # argparse checks the values
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err

"""The modality contract: every registered kind of data goes through the same steps, so a new one
is tested the moment it is registered (load a small sample, train, resume, sample, write, read
back, evaluate), and shared code finds its modality from the data spec or the run's config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.modalities import MODALITIES, get_modality, modality_for_spec, modality_of
from noise2data.run import load_run

FAST = ["--steps", "4", "--checkpoint-every", "2", "--no-progress", "--device", "cpu"]
NEEDS = {"molecules": "rdkit", "images": "sklearn"}
SHARED = ("training", "run.py", "cli", "evaluation.py", "report.py", "models", "samplers", "paths", "meanflow.py",
          "lineage.py", "couplings.py")


def _length(samples: object) -> int:
    return len(samples) if isinstance(samples, list) else int(np.asarray(samples).shape[0])


@pytest.mark.parametrize("name", list(MODALITIES))
def test_every_modality_keeps_the_contract(name, tmp_path, capsys):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    modality = get_modality(name)
    spec, train_flags, eval_flags = modality.example(tmp_path)
    assert modality.matches(spec) and modality_for_spec(spec) is modality
    out = tmp_path / "run"
    assert main(["train", "--data", spec, "--out", str(out), *FAST, *train_flags]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["modality"] == name and cfg["model"]["name"] in modality.models
    # a run written before modalities were recorded is recognised from the rest of its config
    assert modality_of({k: v for k, v in cfg.items() if k != "modality"}) is modality
    assert main(["train", "--out", str(out), "--resume", "--steps", "6", "--no-progress"]) == 0
    run = load_run(out)
    assert run.step == 6 and run.modality is modality
    for suffix in modality.sample_suffixes:
        target = tmp_path / f"samples{suffix}"
        assert main(["sample", str(out), "--n", "6", "--steps", "2", "--out", str(target), "--device", "cpu"]) == 0
        back = modality.read_samples(target)
        if suffix not in (".png", ".gif"):  # a grid is one picture (animated: one per frame)
            assert _length(back) == 6
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--device", "cpu", *eval_flags]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["step"] == 6 and result["metrics"]
    assert json.loads((out / "eval.json").read_text()) == result


@pytest.mark.parametrize("name", list(MODALITIES))
def test_each_modality_declares_what_the_cli_needs(name):
    m = get_modality(name)
    assert m.name == name and m.models and m.sample_suffixes and m.default_metrics and m.data_help
    assert set(m.defaults) <= set(__import__("noise2data.cli.train_options", fromlist=["x"]).TRAIN_DEFAULTS)
    assert m.defaults.get("model", "mlp") in m.models


def test_shared_code_never_names_a_modality_or_its_model():
    """Only the registry (and the molecule data command) may name molecules or the EGNN."""
    root = Path(__import__("noise2data").__file__).parent
    for part in SHARED:
        files = [root / part] if part.endswith(".py") else sorted((root / part).rglob("*.py"))
        for f in files:
            if f.name == "data.py" and f.parent.name == "cli":
                continue  # 'noise2data data qm9' is the molecule command
            text = f.read_text().lower()
            assert "egnn" not in text and "molecule" not in text, f


def test_spec_routing_and_old_runs():
    assert modality_for_spec("moons").name == "vectors"
    assert modality_for_spec("x.npy").name == "vectors"
    assert modality_for_spec("digits").name == "images"
    assert modality_for_spec("mnist:/data/mnist").name == "images"
    assert modality_for_spec("molecules:q.npz").name == "molecules"
    old_molecules = {"data": {"spec": "molecules:q.npz"}, "model": {"name": "egnn"}, "molecules": {}}
    assert modality_of(old_molecules).name == "molecules"
    assert modality_of({"data": {"spec": "checkerboard"}, "model": {"name": "mlp"}}).name == "vectors"
    assert modality_of({"data": {"spec": "images:f.npz"}, "model": {"name": "unet"}}).name == "images"


def test_unknown_modality_and_wrong_model_are_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        get_modality("audio")
    assert main(["train", "--data", "moons", "--model", "egnn", "--out", str(tmp_path / "r")]) == 2
    assert "does not fit vectors data" in capsys.readouterr().err


def test_prior_comes_from_the_modality(tmp_path):
    assert main(["train", "--data", "moons", "--out", str(tmp_path / "r"), "--hidden", "16", "--depth", "1",
                 "--n-data", "500", *FAST]) == 0
    run = load_run(tmp_path / "r")
    x0 = run.modality.prior(run, 2000, torch.Generator().manual_seed(0))
    assert x0.shape == (2000, 2) and abs(float(x0.std()) - 1) < 0.05

"""The bad-input catalogue: every mistake gets a one-line error naming the problem, a non-zero
exit (CLI) or a ValueError (API), and leaves the existing run's checkpoints byte-for-byte intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from noise2data import make_path, make_schedule
from noise2data.cli import main
from noise2data.data import load_data
from noise2data.metrics import compare
from noise2data.metrics.features import load_extractor
from noise2data.models import MLP, MLPConfig, build_model
from noise2data.run import load_run
from noise2data.samplers import uniform_grid
from noise2data.training import TrainConfig, train
from noise2data.training.engine import check_compatible

FAST = ["--steps", "40", "--batch-size", "64", "--hidden", "32", "--depth", "2", "--n-data", "1000",
        "--checkpoint-every", "20", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "run"
    assert main(["train", "--data", "moons", "--out", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    np.save(d / "flat.npy", np.zeros(100, dtype=np.float32))
    nan = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    nan[5, 1] = np.nan
    np.save(d / "nan.npy", nan)
    inf = np.ones((100, 2), dtype=np.float32)
    inf[7, 0] = np.inf
    np.save(d / "inf.npy", inf)
    np.save(d / "empty.npy", np.zeros((0, 2), dtype=np.float32))
    np.save(d / "pts3.npy", np.zeros((10, 3), dtype=np.float32))
    (d / "corrupt.npy").write_bytes(b"\x93NUMPY garbage that is not an array")
    (d / "gmm.json").write_text("{not json")
    (d / "notarun").mkdir()
    (d / "badconfig").mkdir()
    (d / "badconfig" / "config.json").write_text("{oops")
    return d


def checkpoint_digest(run_dir) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run_dir / "checkpoints").rglob("*")) if p.is_file()}


CLI_CASES = [
    (["train", "--data", "FILES/missing.npy", "--out", "TMP/a"], "not found"),
    (["train", "--data", "FILES/corrupt.npy", "--out", "TMP/a"], "corrupt.npy"),
    (["train", "--data", "FILES/flat.npy", "--out", "TMP/a"], "shape"),
    (["train", "--data", "FILES/nan.npy", "--out", "TMP/a"], "NaN"),
    (["train", "--data", "FILES/inf.npy", "--out", "TMP/a"], "Inf"),
    (["train", "--data", "FILES/empty.npy", "--out", "TMP/a"], "empty"),
    (["train", "--data", "moons", "--steps", "0", "--out", "TMP/a"], "positive integer"),
    (["train", "--data", "moons", "--batch-size", "-4", "--out", "TMP/a"], "positive integer"),
    (["train", "--data", "moonz", "--out", "TMP/a"], "unknown dataset"),
    (["train", "--data", "gmm:FILES/gmm.json", "--out", "TMP/a"], "not valid JSON"),
    (["train", "--data", "moons", "--path", "vq", "--out", "TMP/a"], "unknown schedule"),
    (["train", "--data", "moons", "--precision", "fp8", "--out", "TMP/a"], "invalid choice"),
    (["train", "--data", "moons", "--device", "cuda:3", "--out", "TMP/a"], "CUDA"),
    (["train", "--data", "moons", "--out", "RUN"], "already holds a run"),
    (["train", "--out", "RUN", "--resume", "--hidden", "64"], "differs from the run"),
    (["train", "--out", "FILES/notarun", "--resume"], "not a noise2data run"),
    (["train", "--out", "FILES/badconfig", "--resume"], "not valid JSON"),
    (["train", "--data", "moons", "--hiden", "8", "--out", "TMP/a"],
     "noise2data train: error: unrecognized arguments: --hiden 8 (did you mean --hidden?) (see 'noise2data train"),
    (["sample", "RUN", "--guidence", "2", "--out", "TMP/s.npy"], "--guidence 2 (did you mean --guidance?)"),
    (["eval", "RUN", "--zzz"], "noise2data eval: error: unrecognized arguments: --zzz (see 'noise2data eval --help')"),
    (["sample", "RUN", "--solver", "rk45", "--out", "TMP/s.npy"], "unknown solver"),
    (["sample", "RUN", "--out", "TMP/s.txt"], ".npy"),
    (["sample", "FILES/notarun", "--out", "TMP/s.npy"], "not a noise2data run"),
    (["sample", "RUN", "--steps", "0", "--out", "TMP/s.npy"], "positive integer"),
    (["eval", "RUN", "--metrics", "w2,fid2"], "unknown metric"),
    (["eval", "RUN", "--metrics", "kid"], "feature extractor"),
    (["nll", "RUN", "--data", "FILES/pts3.npy"], "shape"),
    (["features", "--data", "cifar", "--out", "TMP/f.safetensors"], "no feature extractor is trained on vectors"),
    (["eval", "RUN", "--features", "FILES/missing.safetensors", "--metrics", "fid"], "not found"),
]


@pytest.mark.parametrize("argv,message", CLI_CASES, ids=[f"{a[0]}:{m}" for a, m in CLI_CASES])
def test_cli_bad_input(run_dir, files, tmp_path, capsys, argv, message):
    before = checkpoint_digest(run_dir)
    subs = {"RUN": str(run_dir)}
    argv = [subs.get(a, a.replace("FILES", str(files)).replace("TMP", str(tmp_path))) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (bad choices, bad numbers) exit from the parser
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and message in err[0], err
    assert checkpoint_digest(run_dir) == before


def test_corrupted_newest_checkpoint_falls_back_and_all_corrupted_is_an_error(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    newest = copy / "checkpoints" / "step_00000040" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])  # truncated
    assert load_run(copy).step == 20  # the previous intact one, with a warning
    assert "step_00000040" in capsys.readouterr().err
    for f in (copy / "checkpoints").rglob("ema.safetensors"):
        f.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="no intact checkpoint"):
        load_run(copy)


def test_foreign_checkpoint_is_named(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["model"]["hidden"] = 48  # config.json now describes another model than the weights
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="another model.*hidden is 32 in the checkpoint and 48 in config.json"):
        load_run(copy)
    with pytest.raises(ValueError, match="belong to another model"):
        check_compatible(MLP(MLPConfig(data_shape=(3,))), MLP(MLPConfig(data_shape=(2,))).state_dict(), "x")


API_CASES = [
    (lambda: build_model({"name": "transformer"}), "unknown model"),
    (lambda: make_schedule("linear-ish"), "unknown schedule"),
    (lambda: make_path("ve:sigma_max=-1"), "sigma"),
    (lambda: TrainConfig(lr=-1.0), "lr"),
    (lambda: TrainConfig(precision="fp8"), "precision"),
    (lambda: TrainConfig.from_dict({"steps": 10, "learning_rate": 1e-3}), "unknown training setting"),
    (lambda: uniform_grid(0), "steps"),
    (lambda: load_data("spirals2"), "unknown dataset"),
    (lambda: MLP(MLPConfig(data_shape=(2,), num_classes=3))(torch.zeros(4, 2), torch.zeros(4),
                                                             torch.tensor([0, 1, 5, 2])), "labels must lie"),
    (lambda: MLP(MLPConfig(data_shape=(2,)))(torch.zeros(4, 2), torch.zeros(4), torch.tensor([0, 1, 1, 2])),
     "without a condition"),
    (lambda: MLP(MLPConfig(data_shape=(2,)))(torch.zeros(4, 3), torch.zeros(4)), "shape"),
    (lambda: compare(torch.zeros(5, 2), torch.zeros(5, 2), metrics=["w9"]), "unknown metric"),
    (lambda: load_extractor("/nonexistent/fx.safetensors"), "not found"),
    (lambda: train(MLP(MLPConfig(data_shape=(2,))), make_path("condot"), torch.zeros(10, 2),
                   TrainConfig(steps=1, device="cpu"), resume=True, run_dir="/nonexistent/run"), "nothing to resume"),
]


@pytest.mark.parametrize("call,message", API_CASES, ids=[m for _, m in API_CASES])
def test_api_bad_input(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)

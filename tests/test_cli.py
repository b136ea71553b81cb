"""The CLI through main(argv) and as a subprocess; bad input exits non-zero with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from noise2data import __version__
from noise2data.cli import main

FAST = ["--steps", "60", "--batch-size", "64", "--hidden", "32", "--depth", "2", "--n-data", "2000",
        "--checkpoint-every", "30", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "moons"
    assert main(["train", "--data", "moons", "--out", str(out), *FAST]) == 0
    return out


def test_train_writes_a_run(run_dir):
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["data_shape"] == [2] and cfg["path"] == {"name": "condot"}
    assert cfg["train"]["steps"] == 60 and cfg["noise2data_version"] == __version__
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000030", "step_00000060"]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 1


@pytest.mark.parametrize("extra", [["--solver", "heun", "--steps", "4"], ["--solver", "dopri5"],
                                   ["--sde", "--diffusion", "0.5", "--steps", "20"],
                                   ["--solver", "rk4", "--grid", "edm", "--steps", "3"],
                                   ["--solver", "dpm++2m", "--nfe", "8"], ["--solver", "dpm++3m", "--grid", "logsnr"]])
def test_sample_writes_npy_in_data_units(run_dir, tmp_path, extra):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "--n", "300", "--out", str(out), "--device", "cpu", *extra]) == 0
    x = np.load(out)
    assert x.shape == (300, 2) and np.isfinite(x).all()


def test_sample_writes_the_formats_it_reads(run_dir, tmp_path, capsys):
    """.pt and .csv hold the same samples as .npy (the same seed); a .csv has a header row, reads back as
    training data, and is refused for samples that are not rows of numbers."""
    files = {suffix: tmp_path / f"s{suffix}" for suffix in (".npy", ".pt", ".csv")}
    for out in files.values():
        assert main(["sample", str(run_dir), "--n", "50", "--out", str(out), "--device", "cpu"]) == 0
    x = np.load(files[".npy"])
    assert np.array_equal(torch.load(files[".pt"]).numpy(), x)
    assert files[".csv"].read_text().splitlines()[0] == "x0,x1"
    assert np.allclose(np.loadtxt(files[".csv"], delimiter=",", skiprows=1), x, rtol=1e-7, atol=1e-9)
    assert main(["train", "--data", str(files[".csv"]), "--out", str(tmp_path / "again"), "--steps", "2",
                 "--batch-size", "16", "--no-progress", "--device", "cpu"]) == 0
    assert "(50, 2)" in capsys.readouterr().err
    images = tmp_path / "grid.npy"
    np.save(images, np.random.default_rng(0).normal(size=(64, 1, 4, 4)).astype("float32"))
    assert main(["train", "--data", str(images), "--out", str(tmp_path / "g"), "--steps", "2", "--batch-size", "16",
                 "--hidden", "16", "--depth", "1", "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "g"), "--n", "4", "--out", str(tmp_path / "g.csv")]) == 2
    err = capsys.readouterr().err
    assert "(1, 4, 4)" in err and "write .npy, .npz or .pt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.csv").exists()


def test_labelled_samples_carry_their_label(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(300, 2)).astype("float32"))
    np.save(tmp_path / "y.npy", np.arange(300) % 3)
    run = tmp_path / "r"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--steps", "2",
                 "--batch-size", "16", "--hidden", "16", "--depth", "1", "--no-progress", "--device", "cpu",
                 "--out", str(run)]) == 0
    for suffix in (".pt", ".csv"):
        out = tmp_path / f"s{suffix}"
        assert main(["sample", str(run), "--label", "2", "--n", "5", "--steps", "2", "--out", str(out)]) == 0
    saved = torch.load(tmp_path / "s.pt")
    assert saved["samples"].shape == (5, 2) and saved["labels"].tolist() == [2] * 5
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "x0,x1,label" and all(r.endswith(",2") for r in rows[1:]) and len(rows) == 6
    from noise2data.modalities.vectors import VECTORS

    assert np.allclose(VECTORS.read_samples(tmp_path / "s.csv"), saved["samples"].numpy(), atol=1e-6)


def test_sample_plots(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    png, traj = tmp_path / "s.png", tmp_path / "t.png"
    assert main(["sample", str(run_dir), "--n", "200", "--out", str(tmp_path / "s.npy"), "--plot", str(png),
                 "--trajectory-plot", str(traj), "--device", "cpu"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and traj.read_bytes()[:4] == b"\x89PNG"


def test_default_coupling_follows_the_dimension(run_dir, tmp_path, capsys):
    """--coupling auto (the default): OT in blocks for 2-D points, independent in 6-D; config.json keeps
    what was used, so a resume trains the same problem."""
    assert json.loads((run_dir / "config.json").read_text())["cli"]["coupling"] == "ot-blocks"
    out = tmp_path / "g6"
    assert main(["train", "--data", "gmm6", "--out", str(out), *FAST[:-2], "--steps", "2", "--device", "cpu"]) == 0
    assert "independent coupling" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["train"]["coupling"] == "independent"


def test_the_ot_block_size_is_chosen_stored_and_checked(tmp_path, capsys):
    out = tmp_path / "b32"
    assert main(["train", "--data", "moons", "--out", str(out), *FAST[:-2], "--steps", "2", "--coupling",
                 "ot-blocks:32", "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["coupling"] == "ot-blocks:32"
    assert main(["train", "--resume", "--out", str(out), "--steps", "4", "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["coupling"] == "ot-blocks:32"
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "moons", "--out", str(tmp_path / "bad"), "--coupling", "ot-blocks:1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "integer >= 2" in err[-1]


def test_minutes_is_a_time_budget_kept_in_the_run(tmp_path, capsys):
    out = tmp_path / "timed"
    assert main(["train", "--data", "moons", "--out", str(out), "--hidden", "32", "--depth", "2", "--minutes", "0.01",
                 "--batch-size", "64", "--no-progress", "--device", "cpu"]) == 0
    train_cfg = json.loads((out / "config.json").read_text())["train"]
    assert train_cfg["minutes"] == 0.01 and train_cfg["steps"] == 10**9  # no --steps: the clock ends the run
    assert "min of training" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert "nothing to train" in capsys.readouterr().err
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", "moons", "--out", str(tmp_path / "bad"), "--minutes", bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and "--minutes: expected a positive number" in err[-1]


def test_default_x_octaves_follow_the_dimension(run_dir, tmp_path):
    """The MLP gets 4 octaves of input features for 2-D points and none in 6-D (config.json keeps it); a
    run whose config predates the option resumes with none; the option is refused for other networks."""
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["cli"]["x_octaves"] == 4 and cfg["model"]["x_octaves"] == 4
    out = tmp_path / "g6"
    assert main(["train", "--data", "gmm6", "--out", str(out), *FAST[:-2], "--steps", "2", "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["x_octaves"] == 0
    old = tmp_path / "old"
    assert main(["train", "--data", "moons", "--out", str(old), *FAST[:-2], "--steps", "2", "--x-octaves", "0",
                 "--device", "cpu"]) == 0
    cfg = json.loads((old / "config.json").read_text())
    del cfg["cli"]["x_octaves"], cfg["model"]["x_octaves"]  # as written before the option existed
    (old / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", "--out", str(old), "--steps", "4", "--device", "cpu"]) == 0
    assert json.loads((old / "config.json").read_text())["model"].get("x_octaves", 0) == 0
    assert main(["train", "--data", "digits", "--model", "unet", "--x-octaves", "2", "--out",
                 str(tmp_path / "u"), "--steps", "1", "--device", "cpu"]) == 2


def test_nfe_sets_the_steps(run_dir, tmp_path, capsys):
    """--nfe N spends exactly N evaluations, whatever the solver's stages."""
    for solver in ("midpoint", "rk4", "dpm++2m", "euler"):
        assert main(["sample", str(run_dir), "--n", "20", "--out", str(tmp_path / "s.npy"), "--solver", solver,
                     "--nfe", "8", "--device", "cpu"]) == 0
        assert ", 8 NFE" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--n", "200", "--metrics", "energy_u", "--nfe", "4", "--json",
                 "--out", str(tmp_path / "e.json"), "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["sampler"] == res["sampler"] | {"solver": "midpoint", "steps": 2, "nfe": 4}
    assert {"ci_low", "ci_high", "within_noise"} <= set(res["metrics"]["energy_u"])


def test_same_seed_same_samples(run_dir, tmp_path):
    for name in ("a", "b"):
        main(["sample", str(run_dir), "--n", "50", "--sde", "--steps", "10", "--seed", "4",
              "--out", str(tmp_path / f"{name}.npy"), "--device", "cpu"])
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_resume_extends_and_refuses_changes(run_dir, capsys):
    assert main(["train", "--out", str(run_dir), "--resume", "--steps", "90", "--no-progress"]) == 0
    assert (run_dir / "checkpoints" / "step_00000090").is_dir()
    assert main(["train", "--out", str(run_dir), "--resume", "--hidden", "64"]) == 2
    assert "--hidden 64 differs from the run's 32" in capsys.readouterr().err
    # --steps is the total: fewer than the run has trained is refused, and config.json keeps its 90
    before = (run_dir / "config.json").read_bytes()
    assert main(["train", "--out", str(run_dir), "--resume", "--steps", "40", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already at step 90: --steps 40 is the total" in err[0]
    assert (run_dir / "config.json").read_bytes() == before
    assert json.loads(before)["train"]["steps"] == 90
    assert main(["train", "--out", str(run_dir), "--resume", "--steps", "90", "--no-progress"]) == 0  # at its end
    assert "nothing to train" in capsys.readouterr().err and (run_dir / "config.json").read_bytes() == before


@pytest.mark.parametrize("path, objective", [("vp", "noise"), ("cosine", "data"), ("ve:sigma_max=10", "score")])
def test_other_objectives_sample_as_ode_and_sde(tmp_path, path, objective):
    out = tmp_path / "r"
    assert main(["train", "--data", "8gaussians", "--out", str(out), "--path", path, "--objective", objective,
                 *FAST]) == 0
    for extra in (["--solver", "heun", "--steps", "6"], ["--sde", "--steps", "30"]):
        assert main(["sample", str(out), "--n", "100", "--out", str(tmp_path / "s.npy"), "--device", "cpu",
                     "--grid", "edm", *extra]) == 0
        assert np.isfinite(np.load(tmp_path / "s.npy")).all()


def test_array_file_of_any_shape(tmp_path):
    arr = np.random.default_rng(0).normal(size=(300, 3, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    out = tmp_path / "r"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--out", str(out), *FAST]) == 0
    assert main(["sample", str(out), "--n", "10", "--out", str(tmp_path / "s.npy"), "--device", "cpu"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (10, 3, 2)


BAD = [
    (["train", "--data", "nope.npy", "--out", "{tmp}/r"], "data file not found: nope.npy"),
    (["train", "--data", "mons", "--out", "{tmp}/r"], "unknown dataset 'mons'"),
    (["train", "--data", "moons", "--out", "{tmp}/r", "--path", "warp"], "unknown schedule 'warp'"),
    (["train", "--data", "moons", "--out", "{tmp}/r", "--steps", "0"], "expected a positive integer"),
    (["train", "--data", "moons", "--out", "{tmp}/r", "--lr", "-1"], "lr must be > 0"),
    (["train", "--data", "moons", "--out", "{tmp}/r", "--device", "cuda"], "CUDA is not available"),
    (["train", "--out", "{tmp}/r"], "train needs --data"),
    (["sample", "{tmp}", "--out", "{tmp}/s.npy"], "is not a noise2data run"),
    (["sample", "{tmp}/none", "--out", "{tmp}/s.npy"], "run folder not found"),
    (["sample", "{run}", "--out", "{tmp}/s.npy", "--solver", "rk5"], "unknown solver 'rk5'"),
    (["sample", "{run}", "--out", "{tmp}/s.txt"], "writes .npy, .npz"),
    (["sample", "{run}", "--out", "{tmp}/s.npy", "--solver", "heun", "--nfe", "7"], "multiple of 2"),
    (["sample", "{run}", "--out", "{tmp}/s.npy", "--nfe", "8", "--steps", "4"], "give --steps or --nfe, not both"),
    (["sample", "{run}", "--out", "{tmp}/s.npy", "--solver", "dopri5", "--nfe", "8"], "dopri5 chooses its own"),
    (["eval", "{run}", "--solver", "rk4", "--nfe", "6"], "multiple of 4"),
    (["report", "{run}", "--solver", "rk4", "--nfe", "6"], "multiple of 4"),
    (["nll", "{run}", "--solver", "dpm++2m"], "cannot integrate the likelihood"),
    (["train", "--data", "moons", "--out", "{run}"], "already holds a run"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv, words", BAD)
def test_bad_input_one_line_nonzero(run_dir, tmp_path, capsys, argv, words):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    ckpts_before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert words in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ckpts_before


def test_subprocess_version_help_and_error(run_dir, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "noise2data", *args], capture_output=True, text=True,
                              timeout=120)

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"noise2data {__version__}"
    for cmd in ("train", "sample", "plot-path"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "usage: noise2data" in r.stdout
    r = run("sample", str(run_dir), "--n", "20", "--out", str(tmp_path / "s.npy"), "--device", "cpu")
    assert r.returncode == 0 and np.load(tmp_path / "s.npy").shape == (20, 2)
    r = run("train", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"noise2data: error: data file not found: {tmp_path / 'missing.csv'}"]
    assert "Traceback" not in r.stderr


def test_damaged_checkpoint_falls_back_when_sampling(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", "moons", "--out", str(out), *FAST]) == 0
    newest = out / "checkpoints" / "step_00000060" / "ema.safetensors"
    newest.write_bytes(b"garbage")
    assert main(["sample", str(out), "--n", "10", "--out", str(tmp_path / "s.npy"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "skipping damaged checkpoint" in err and "step 30" in err


def test_freed_memory_is_kept_on_linux():
    import sys

    from noise2data.cpu_memory import keep_freed_memory

    assert keep_freed_memory() == sys.platform.startswith("linux")

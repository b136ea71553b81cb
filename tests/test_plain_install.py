"""A plain ``pip install noise2data`` (no extras) trains, checkpoints, resumes and samples; each
feature that needs an extra names it in one line when asked for."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

# every optional dependency, made unimportable (a None entry in sys.modules makes `import` fail)
EXTRAS = ("matplotlib", "ot", "rdkit", "PIL", "sklearn", "tensorboard", "torchdiffeq", "scipy")
RUNNER = ("import sys\n"
          "for name in {extras!r}:\n"
          "    sys.modules[name] = None\n"
          "from noise2data.cli import main\n"
          "sys.exit(main(sys.argv[1:]))\n")
FAST = ["--steps", "40", "--batch-size", "64", "--hidden", "32", "--depth", "2", "--n-data", "1000",
        "--checkpoint-every", "20", "--no-progress", "--device", "cpu"]


def cli(*argv: str) -> subprocess.CompletedProcess:
    code = RUNNER.format(extras=EXTRAS)
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)


def test_core_loop_without_any_extra_and_each_extra_named_when_needed(tmp_path):
    run = tmp_path / "moons"
    done = cli("train", "--data", "moons", "--out", str(run), *FAST)
    assert done.returncode == 0, done.stderr
    done = cli("train", "--out", str(run), "--resume", "--steps", "60", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert (run / "checkpoints" / "step_00000060").is_dir()
    done = cli("sample", str(run), "--n", "100", "--out", str(tmp_path / "x.npy"), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (100, 2) and np.isfinite(x).all()
    for argv, extra in [(["sample", str(run), "--out", str(tmp_path / "y.npy"), "--plot", str(tmp_path / "p.png")],
                         "noise2data[plot]"),
                        (["eval", str(run), "--n", "100", "--metrics", "w2"], "noise2data[metrics]"),
                        (["sample", str(run), "--solver", "dopri5", "--out", str(tmp_path / "z.npy")],
                         "noise2data[ode]")]:
        done = cli(*argv, "--device", "cpu")
        err = done.stderr.strip()
        assert done.returncode == 2 and extra in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "y.npy").exists()  # the missing extra is found before sampling, not after
